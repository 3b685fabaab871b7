//! Signing-key rules: exactly one active key; a rotation retires the active key, which
//! keeps verifying until every token it signed has expired (one access lifetime);
//! every instance loads the same keys from the store and picks up a rotation at its
//! next reload.

use serde_json::Value;

use super::AuthError;
use super::AuthService;
use std::sync::Arc;

use crate::crypto::at_rest::Vault;
use crate::crypto::keygen::{self, jose_algorithm};
use crate::crypto::keys::KeyRing;
use crate::crypto::keys::SigningAlgorithm;
use crate::domain::{Secret, UnixTime};
use crate::store::{Store, StoreError, StoredKey};

/// How often a running server re-reads the keys (so a rotation applies everywhere).
pub const KEY_RELOAD_SECS: u64 = 5;

/// How long a rotated-in key is published before it signs, and how long verifiers may
/// cache the JWKS: a verifier that honours the cache lifetime knows every key before
/// its first token. At most 5 minutes, and half an access-token lifetime.
pub fn publish_ahead_secs(access_ttl_secs: u64) -> u64 {
    300.min(access_ttl_secs / 2)
}

/// Where signing keys come from.
#[derive(Clone, Debug)]
pub enum KeyMode {
    /// A configured HS256 secret (and previous secrets); nothing in the store.
    Hs256,
    /// Asymmetric keys kept in the store, shared by every instance.
    Stored {
        algorithm: SigningAlgorithm,
        /// HS256 secrets still accepted while moving from HS256 to this algorithm.
        hs256_previous: Vec<Secret>,
        /// Seals private keys at rest (and opens them).
        vault: Arc<Vault>,
    },
}

/// The stored signing keys, as auth handles them: private keys are sealed on the way
/// into the store and opened on the way out when the vault has an encryption key.
#[derive(Clone, Copy)]
pub struct KeyStore<'a> {
    pub store: &'a dyn Store,
    pub vault: &'a Vault,
}

/// What a sealed private key is bound to (so sealed keys cannot be swapped).
fn sealing_context(kid: &str) -> String {
    format!("signing key {kid}")
}

impl KeyStore<'_> {
    /// Every stored key, private keys opened.
    pub async fn all(&self) -> Result<Vec<StoredKey>, KeyAdminError> {
        let mut keys = self.store.signing_keys().await?;
        for k in &mut keys {
            k.private_der = self
                .vault
                .open(&k.private_der, &sealing_context(&k.kid))
                .map_err(|e| KeyAdminError(e.to_string()))?;
        }
        Ok(keys)
    }

    /// `key` with its private key as it is to be stored.
    pub fn sealed(&self, mut key: StoredKey) -> Result<StoredKey, KeyAdminError> {
        key.private_der = self
            .vault
            .seal(&key.private_der, &sealing_context(&key.kid))
            .map_err(|e| KeyAdminError(e.to_string()))?;
        Ok(key)
    }
}

/// A key-management failure, worded for an operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyAdminError(pub String);

impl From<StoreError> for KeyAdminError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

fn jose_name(alg: SigningAlgorithm) -> Result<String, KeyAdminError> {
    jose_algorithm(alg)
        .map(|a| format!("{a:?}"))
        .ok_or_else(|| KeyAdminError("HS256 uses TOKENGATE_SECRET_KEY; there are no stored keys to manage".into()))
}

fn parse_jose(name: &str) -> Option<SigningAlgorithm> {
    match name {
        "EdDSA" => Some(SigningAlgorithm::EdDsa),
        "ES256" => Some(SigningAlgorithm::Es256),
        "RS256" => Some(SigningAlgorithm::Rs256),
        _ => None,
    }
}

/// A new active key of `alg` (its private key in the clear; [`KeyStore::sealed`] before storing).
pub fn new_key(alg: SigningAlgorithm, now: UnixTime, signs_from: UnixTime) -> Result<StoredKey, KeyAdminError> {
    let algorithm = jose_name(alg)?;
    let (kid, private_der) = keygen::generate(alg).map_err(|e| KeyAdminError(e.to_string()))?;
    Ok(StoredKey {
        kid,
        algorithm,
        private_der,
        active: true,
        created_at: now,
        signs_from,
        retires_at: None,
    })
}

/// How a new key takes over from the active one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotateMode {
    /// Routine: published now, signing after the publish-ahead time; the old key
    /// verifies one more access lifetime after that.
    Scheduled,
    /// The configured algorithm changed: the new key signs at once; the old one still
    /// verifies the tokens it signed for one access lifetime.
    SignNow,
    /// The old key is compromised: the new key signs at once and the old one stops
    /// verifying and leaves the JWKS at once; every token it signed is refused.
    Revoke,
}

/// What [`ensure_active_key`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Existing(String),
    Generated(String),
    /// The configured algorithm changed: the old key was retired.
    Rotated(String),
}

/// Make sure an active key of `alg` exists: generate one at first start, rotate when
/// the configured algorithm changed. Safe when several instances start at once.
pub async fn ensure_active_key(
    keys: KeyStore<'_>,
    alg: SigningAlgorithm,
    access_ttl_secs: u64,
    now: UnixTime,
) -> Result<Ensured, KeyAdminError> {
    let want = jose_name(alg)?;
    let active = keys.store.signing_keys().await?.into_iter().find(|k| k.active);
    match active {
        Some(k) if k.algorithm == want => Ok(Ensured::Existing(k.kid)),
        // A new algorithm comes with a restart anyway: switch at once.
        Some(_) => rotate_key(keys, alg, access_ttl_secs, now, RotateMode::SignNow)
            .await
            .map(|k| Ensured::Rotated(k.kid)),
        None => {
            let key = keys.sealed(new_key(alg, now, now)?)?;
            let kid = key.kid.clone();
            match keys.store.add_active_key(key).await {
                Ok(()) => Ok(Ensured::Generated(kid)),
                // Another instance won the race: use its key.
                Err(StoreError::Conflict) => Ok(Ensured::Existing(String::new())),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Make a new active key, retiring the active one as `mode` says. A key that signs at
/// once may be refused by verifiers until they refetch the JWKS.
pub async fn rotate_key(
    keys: KeyStore<'_>,
    alg: SigningAlgorithm,
    access_ttl_secs: u64,
    now: UnixTime,
    mode: RotateMode,
) -> Result<StoredKey, KeyAdminError> {
    let (signs_from, old_retires_at) = match mode {
        RotateMode::Scheduled => {
            let from = now.plus(publish_ahead_secs(access_ttl_secs));
            (from, from.plus(access_ttl_secs))
        }
        RotateMode::SignNow => (now, now.plus(access_ttl_secs)),
        RotateMode::Revoke => (now, now),
    };
    let key = new_key(alg, now, signs_from)?;
    keys.store
        .rotate_key(keys.sealed(key.clone())?, now, old_retires_at)
        .await?;
    Ok(key)
}

/// Stop trusting key `kid` at once (it leaves the JWKS, its tokens are refused): the
/// active key is replaced by a new one that signs at once; a retired key just ends.
/// The new active kid, when the active key was revoked.
pub async fn revoke_key(
    keys: KeyStore<'_>,
    kid: &str,
    access_ttl_secs: u64,
    now: UnixTime,
) -> Result<Option<StoredKey>, KeyAdminError> {
    let stored = keys.store.signing_keys().await?;
    let Some(key) = stored.iter().find(|k| k.kid == kid) else {
        return Err(KeyAdminError(format!(
            "no signing key with kid {kid:?} (see: tokengate keys list)"
        )));
    };
    if key.active {
        let alg = parse_jose(&key.algorithm)
            .ok_or_else(|| KeyAdminError(format!("key {kid} has an unknown algorithm {:?}", key.algorithm)))?;
        return rotate_key(keys, alg, access_ttl_secs, now, RotateMode::Revoke)
            .await
            .map(Some);
    }
    keys.store.retire_key_at(kid, now).await?;
    Ok(None)
}

/// What a stored key is doing at a moment, as the key ring built from the same rows
/// would use it (`load_ring`, `KeyRing::signing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens now (the active key once due, or the retired key that signs
    /// until it is; or the active key before its time when no retired key is left).
    Signing,
    /// Active, published, not signing yet.
    Next,
    /// Retired: verifies the tokens it signed until they expire.
    Verifying,
    /// Stopped verifying before the tokens it signed would have expired.
    Revoked,
    /// Retired, and every token it signed has expired.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Next => "next (published)",
            Self::Verifying => "retired (verifying)",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// The state of each of `keys` (as `signing_keys` lists them) at `now`.
pub fn key_states(keys: &[StoredKey], access_ttl_secs: u64, now: UnixTime) -> Vec<KeyState> {
    let live = |k: &StoredKey| k.retires_at.is_some_and(|t| now < t);
    let active = keys.iter().find(|k| k.active);
    // The newest retired key still verifying signs until the active key is due.
    let stand_in = keys
        .iter()
        .filter(|k| !k.active && live(k))
        .max_by_key(|k| (k.created_at, k.signs_from))
        .filter(|_| active.is_some_and(|a| now < a.signs_from));
    keys.iter()
        .map(|k| {
            if k.active {
                return if now < k.signs_from && stand_in.is_some() {
                    KeyState::Next
                } else {
                    KeyState::Signing
                };
            }
            if stand_in.is_some_and(|s| s.kid == k.kid) {
                return KeyState::Signing;
            }
            if live(k) {
                return KeyState::Verifying;
            }
            // It stopped signing when its successor did (or when it was cut off); its
            // last token expired one lifetime after that.
            let successor_from = keys
                .iter()
                .filter(|s| s.created_at >= k.created_at && s.kid != k.kid)
                .map(|s| s.signs_from)
                .min();
            let retires = k.retires_at.unwrap_or(now);
            let stopped = successor_from.map_or(retires, |f| f.min(retires));
            if retires < stopped.plus(access_ttl_secs) {
                KeyState::Revoked
            } else {
                KeyState::Expired
            }
        })
        .collect()
}

/// Why [`resolve_algorithm`] found no algorithm.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// HS256 is configured over an active asymmetric key: the message says what to set.
    #[error("{0}")]
    Conflicting(String),
    #[error("{0}")]
    Store(#[from] KeyAdminError),
}

/// The algorithm to sign with: the configured one, or else that of the database's
/// active key, or else HS256. Configured HS256 over an active asymmetric key would
/// silently void every outstanding token, so it is refused.
pub async fn resolve_algorithm(
    store: &dyn Store,
    configured: Option<SigningAlgorithm>,
) -> Result<SigningAlgorithm, ResolveError> {
    let keys = store.signing_keys().await.map_err(KeyAdminError::from)?;
    let active = keys.into_iter().find(|k| k.active);
    let stored = active.as_ref().and_then(|k| parse_jose(&k.algorithm));
    match (configured, stored) {
        (Some(SigningAlgorithm::Hs256), Some(alg)) => Err(ResolveError::Conflicting(format!(
            "HS256 is set, but this database signs with {} key {}; set TOKENGATE_ALGORITHM={} (or unset it)",
            alg.jose_name(),
            active.map(|k| k.kid).unwrap_or_default(),
            alg.jose_name(),
        ))),
        (Some(alg), _) | (None, Some(alg)) => Ok(alg),
        (None, None) => Ok(SigningAlgorithm::Hs256),
    }
}

/// The ring of stored keys at `now`: the active key signs, live retired keys verify.
pub async fn load_ring(keys: KeyStore<'_>, now: UnixTime, hs256_previous: &[Secret]) -> Result<KeyRing, KeyAdminError> {
    let mut active: Option<(_, UnixTime)> = None;
    let mut retired = Vec::new();
    for k in keys.all().await? {
        let alg = parse_jose(&k.algorithm)
            .ok_or_else(|| KeyAdminError(format!("key {} has an unknown algorithm {:?}", k.kid, k.algorithm)))?;
        let live_until = k.retires_at.filter(|t| now < *t);
        if !k.active && live_until.is_none() {
            continue;
        }
        let loaded = keygen::load(&k.kid, alg, &k.private_der).map_err(|e| KeyAdminError(format!("{}: {e}", k.kid)))?;
        match (k.active, live_until) {
            (true, _) => active = Some((loaded, k.signs_from)),
            (false, Some(until)) => retired.push((loaded, until)),
            (false, None) => {}
        }
    }
    let active = active.ok_or_else(|| KeyAdminError("no active signing key (run: tokengate keys generate)".into()))?;
    Ok(KeyRing::asymmetric(active.0, active.1, retired, hs256_previous))
}

impl AuthService {
    /// Re-read the stored keys (asymmetric modes); HS256 keys come from configuration.
    pub async fn reload_keys(&self) -> Result<(), KeyAdminError> {
        if let KeyMode::Stored {
            hs256_previous, vault, ..
        } = &self.keys
        {
            let keys = KeyStore {
                store: self.store.as_ref(),
                vault,
            };
            let ring = load_ring(keys, self.clock.now(), hs256_previous).await?;
            self.tokens.replace_keys(ring);
        }
        Ok(())
    }

    /// The public JWK Set (empty for HS256).
    pub fn jwks(&self) -> Value {
        self.tokens.jwks(self.clock.now())
    }

    /// The JOSE name of the algorithm new tokens are signed with.
    pub fn signing_algorithm(&self) -> String {
        self.tokens.signing_algorithm()
    }

    pub fn issuer(&self) -> &str {
        self.tokens.issuer()
    }

    /// The access-token lifetime (JWKS caching must stay below it).
    pub fn access_ttl_secs(&self) -> u64 {
        self.tokens.ttl_secs()
    }

    /// Revoke key `kid` (the operator's `keys revoke`), then reload.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<(), AuthError> {
        let KeyMode::Stored { vault, .. } = &self.keys else {
            return Err(AuthError::internal("HS256 has no stored keys to revoke"));
        };
        let keys = KeyStore {
            store: self.store.as_ref(),
            vault,
        };
        revoke_key(keys, kid, self.tokens.ttl_secs(), self.clock.now())
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)
    }

    /// Rotate (the operator's `keys rotate`, also used by tests), then reload; the new kid.
    pub async fn rotate_keys(&self, mode: RotateMode) -> Result<String, AuthError> {
        let KeyMode::Stored { algorithm, vault, .. } = &self.keys else {
            return Err(AuthError::internal(
                "HS256 keys rotate through TOKENGATE_PREVIOUS_SECRET_KEYS",
            ));
        };
        let keys = KeyStore {
            store: self.store.as_ref(),
            vault,
        };
        let key = rotate_key(keys, *algorithm, self.tokens.ttl_secs(), self.clock.now(), mode)
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)?;
        Ok(key.kid)
    }
}

/// Server secret `name` in the clear: the stored one (opened by `vault`), or a fresh
/// one made now and stored sealed when there is none yet.
pub async fn server_secret(store: &dyn Store, name: &str, now: UnixTime, vault: &Vault) -> Result<Vec<u8>, String> {
    let mut fresh = vec![0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| e.to_string())?;
    let context = server_secret_context(name);
    let fresh = vault.seal(&fresh, &context).map_err(|e| e.to_string())?;
    let stored = store
        .server_secret(name, fresh, now)
        .await
        .map_err(|e| format!("cannot load the {name} key: {e}"))?;
    vault.open(&stored, &context).map_err(|e| e.to_string())
}

/// The server's HMAC keys kept in the database, by name.
pub const SERVER_SECRETS: [&str; 3] = ["csrf", "device", "refresh"];

/// What a sealed server secret is bound to.
pub fn server_secret_context(name: &str) -> String {
    format!("server secret {name}")
}

/// How many secrets at rest are sealed and unsealed: the signing keys, the server
/// secrets and (given) the HS256 secret file. Reads raw values; creates a missing server
/// secret (sealed), as a start does anyway.
async fn count_sealed(
    store: &dyn Store,
    vault: &Vault,
    secret_file: Option<&std::path::Path>,
    now: UnixTime,
) -> Result<(usize, usize), KeyAdminError> {
    use crate::crypto::at_rest::sealed_with;
    let mut raw: Vec<Vec<u8>> = store.signing_keys().await?.into_iter().map(|k| k.private_der).collect();
    for name in SERVER_SECRETS {
        let mut fresh = vec![0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| KeyAdminError(e.to_string()))?;
        let fresh = vault
            .seal(&fresh, &server_secret_context(name))
            .map_err(|e| KeyAdminError(e.to_string()))?;
        raw.push(store.server_secret(name, fresh, now).await?);
    }
    if let Some(Ok(bytes)) = secret_file.map(std::fs::read) {
        raw.push(bytes.trim_ascii().to_vec());
    }
    let sealed = raw.iter().filter(|v| sealed_with(v).is_some()).count();
    Ok((sealed, raw.len() - sealed))
}

/// Seal every secret at rest with `vault`'s current key: the signing keys, the server
/// secrets and (given) the HS256 secret file. `vault` opens what is sealed with a
/// previous key, and (made with [`Vault::accepting_unsealed`]) what is not sealed yet.
/// How many signing keys and server secrets, and whether the file, were sealed.
pub async fn seal_at_rest(
    store: &dyn Store,
    vault: &Vault,
    secret_file: Option<&std::path::Path>,
    now: UnixTime,
) -> Result<(usize, usize, bool), KeyAdminError> {
    let fail = |e: String| KeyAdminError(e);
    let keys = KeyStore { store, vault };
    let opened = keys.all().await?;
    let key_count = opened.len();
    for key in opened {
        let sealed = keys.sealed(key)?;
        store.replace_key_material(&sealed.kid, sealed.private_der).await?;
    }
    for name in SERVER_SECRETS {
        let plain = server_secret(store, name, now, vault).await.map_err(fail)?;
        let context = server_secret_context(name);
        let sealed = vault.seal(&plain, &context).map_err(|e| fail(e.to_string()))?;
        store.replace_server_secret(name, sealed).await?;
    }
    let mut file = false;
    if let Some(path) = secret_file
        && let Some(secret) = crate::crypto::keys::read_secret_file(path, vault).map_err(fail)?
    {
        crate::crypto::keys::write_secret_file(path, &secret, vault, false).map_err(fail)?;
        file = true;
    }
    Ok((key_count, SERVER_SECRETS.len(), file))
}

/// At start with an encryption key: every secret at rest must be sealed. One stored in
/// the clear is refused, with a line naming `tokengate keys reencrypt`: sealing it here
/// would seal whatever a database writer planted (all of it, if they replaced every
/// value), so only the operator's explicit command seals what is in the clear.
pub async fn refuse_unsealed_at_start(
    store: &dyn Store,
    vault: &Vault,
    secret_file: Option<&std::path::Path>,
    now: UnixTime,
) -> Result<(), KeyAdminError> {
    let (sealed, unsealed) = count_sealed(store, vault, secret_file, now).await?;
    if unsealed == 0 {
        return Ok(());
    }
    Err(KeyAdminError(format!(
        "{unsealed} secret(s) at rest are stored unencrypted ({sealed} encrypted) although it is set: \
         if they are this server's own (a database from before the key was set), seal them with \
         `tokengate keys reencrypt`; if not, they were written into the database by someone else"
    )))
}

#[cfg(test)]
mod tests {
    use super::{KeyState, key_states};
    use crate::domain::UnixTime;
    use crate::store::StoredKey;

    const TTL: u64 = 900;

    fn key(kid: &str, active: bool, created: i64, signs_from: i64, retires_at: Option<i64>) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            private_der: Vec::new(),
            active,
            created_at: UnixTime(created),
            signs_from: UnixTime(signs_from),
            retires_at: retires_at.map(UnixTime),
        }
    }

    #[test]
    fn a_scheduled_rotation_keeps_the_old_key_signing_until_the_new_one_is_due() {
        // Rotated at 1000: the new key signs from 1300, the old verifies until 2200.
        let keys = [key("new", true, 1000, 1300, None), key("old", false, 0, 0, Some(2200))];
        let at = |t| key_states(&keys, TTL, UnixTime(t));
        assert_eq!(at(1000), [KeyState::Next, KeyState::Signing]);
        assert_eq!(at(1300), [KeyState::Signing, KeyState::Verifying]);
        assert_eq!(at(2200), [KeyState::Signing, KeyState::Expired]);
    }

    #[test]
    fn a_revoked_key_is_called_revoked_and_the_next_key_signs_at_once() {
        // After the scheduled rotation above, the old key is revoked at 1100.
        let keys = [key("new", true, 1000, 1300, None), key("old", false, 0, 0, Some(1100))];
        assert_eq!(
            key_states(&keys, TTL, UnixTime(1100)),
            [KeyState::Signing, KeyState::Revoked]
        );
        assert_eq!(
            key_states(&keys, TTL, UnixTime(9999)),
            [KeyState::Signing, KeyState::Revoked]
        );
        // `rotate --now` at 1000: the new key signs at once, the old stopped verifying then.
        let keys = [key("new", true, 1000, 1000, None), key("old", false, 0, 0, Some(1000))];
        assert_eq!(
            key_states(&keys, TTL, UnixTime(1000)),
            [KeyState::Signing, KeyState::Revoked]
        );
    }
}
