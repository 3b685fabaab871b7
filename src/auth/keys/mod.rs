//! Signing keys and server secrets, with one owner: [`KeyService`]. Its rules: exactly
//! one active key per purpose (access tokens; the provider's id_tokens, RS256 whatever
//! the access tokens use); a rotation retires the active key, which keeps verifying until every
//! token it signed has expired (one access lifetime); every instance loads the same
//! keys from the store and picks up a rotation at its next reload; with an encryption
//! key, every secret at rest is sealed. The server's start and `tokengate keys ...`
//! call only this.

mod at_rest;
mod error;
mod hs256;
mod states;

pub use at_rest::{Resealed, SERVER_SECRETS, server_secret_context, totp_secret_context};
pub use error::KeyError;
pub use hs256::{Hs256Key, Hs256Source};
pub use states::{KeyState, key_states};

use std::path::PathBuf;
use std::sync::Arc;

use crate::crypto::at_rest::Vault;
use crate::crypto::keygen;
use crate::crypto::keys::{KeyRing, SigningAlgorithm};
use crate::crypto::mac::MacKey;
use crate::domain::{KeyPurpose, Secret, UnixTime};
use crate::store::{Store, StoreError, StoredKey};

/// How often a running server re-reads the keys (so a rotation applies everywhere).
pub const KEY_RELOAD_SECS: u64 = 5;

/// How long a rotated-in key is published before it signs, and how long verifiers may
/// cache the JWKS: a verifier that honours the cache lifetime knows every key before
/// its first token. At most 5 minutes, and half an access-token lifetime.
pub fn publish_ahead_secs(access_ttl_secs: u64) -> u64 {
    300.min(access_ttl_secs / 2)
}

/// What the configuration says about keys.
#[derive(Clone, Debug, Default)]
pub struct KeyConfig {
    /// `None`: an active key in the database decides, else HS256.
    pub algorithm: Option<SigningAlgorithm>,
    /// The configured HS256 secret.
    pub secret: Option<Secret>,
    /// HS256 secrets that still verify (a rotation, or a move to asymmetric keys).
    pub previous: Vec<Secret>,
    /// Where the HS256 secret is kept when none is configured (beside a SQLite file).
    pub secret_file: Option<PathBuf>,
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
    },
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

/// What [`KeyService::ensure_active`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Existing(String),
    Generated(String),
    /// The configured algorithm changed: the old key was retired.
    Rotated(String),
}

/// The keys and secrets of one database, sealed at rest by one vault.
#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    access_ttl_secs: u64,
}

/// What a sealed private key is bound to (so sealed keys cannot be swapped).
fn sealing_context(kid: &str) -> String {
    format!("signing key {kid}")
}

fn at_rest(e: impl std::fmt::Display) -> KeyError {
    KeyError::AtRest(e.to_string())
}

impl KeyService {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, access_ttl_secs: u64) -> Self {
        Self {
            store,
            vault,
            access_ttl_secs,
        }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Every stored key, private keys opened.
    pub async fn opened(&self) -> Result<Vec<StoredKey>, KeyError> {
        let mut keys = self.store.signing_keys().await?;
        for k in &mut keys {
            k.private_der = self
                .vault
                .open(&k.private_der, &sealing_context(&k.kid))
                .map_err(at_rest)?;
        }
        Ok(keys)
    }

    /// `key` with its private key as it is to be stored.
    fn sealed(&self, mut key: StoredKey) -> Result<StoredKey, KeyError> {
        key.private_der = self
            .vault
            .seal(&key.private_der, &sealing_context(&key.kid))
            .map_err(at_rest)?;
        Ok(key)
    }

    /// The active key of `purpose` as stored, if any.
    async fn active(&self, purpose: KeyPurpose) -> Result<Option<StoredKey>, KeyError> {
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.active && k.purpose == purpose))
    }

    /// The algorithm to sign with: the configured one, or else that of the database's
    /// active key, or else HS256. Configured HS256 over an active asymmetric key would
    /// silently void every outstanding token, so it is refused.
    pub async fn algorithm(&self, configured: Option<SigningAlgorithm>) -> Result<SigningAlgorithm, KeyError> {
        let active = self.active(KeyPurpose::Access).await?;
        match (configured, active) {
            (Some(SigningAlgorithm::Hs256), Some(k)) => Err(KeyError::ConflictingAlgorithm {
                stored: k.algorithm,
                kid: k.kid,
            }),
            (Some(alg), _) => Ok(alg),
            (None, Some(k)) => Ok(k.algorithm),
            (None, None) => Ok(SigningAlgorithm::Hs256),
        }
    }

    /// The key ring a serving instance starts with, and where its keys come from:
    /// HS256 from the configured secret or the secret file (made at first start), or
    /// stored keys (generated at first start, rotated when the configured algorithm
    /// changed).
    pub async fn bootstrap(&self, config: &KeyConfig, now: UnixTime) -> Result<(KeyRing, KeyMode), KeyError> {
        let algorithm = self.algorithm(config.algorithm).await?;
        if algorithm == SigningAlgorithm::Hs256 {
            let secret = self.hs256_secret(config)?;
            return Ok((KeyRing::hs256(&secret, &config.previous), KeyMode::Hs256));
        }
        match self.ensure_active(algorithm, now).await? {
            Ensured::Generated(kid) => {
                tracing::info!(%kid, "signing key: generated a new {} key (kept in the database)", algorithm.jose_name());
                self.warn_of_a_left_secret_file(config, algorithm);
            }
            Ensured::Rotated(kid) => {
                tracing::info!(%kid, "signing key: algorithm changed; new active key, the old one retired")
            }
            Ensured::Existing(_) => {
                tracing::info!("signing key: {} keys loaded from the database", algorithm.jose_name())
            }
        }
        let ring = self.ring(now, &config.previous).await?;
        let mode = KeyMode::Stored {
            algorithm,
            hs256_previous: config.previous.clone(),
        };
        Ok((ring, mode))
    }

    /// Tokens signed with the HS256 secret before a switch die with it: say so, and how
    /// to keep them until they expire.
    fn warn_of_a_left_secret_file(&self, config: &KeyConfig, algorithm: SigningAlgorithm) {
        if let Some(file) = config.secret_file.as_ref().filter(|f| f.exists())
            && config.previous.is_empty()
        {
            tracing::warn!(
                path = %std::path::absolute(file).unwrap_or_else(|_| file.clone()).display(),
                "switched from HS256 to {}: access tokens signed before are refused from now on (their users log in \
                 again); to accept them until they expire, restart with TOKENGATE_PREVIOUS_SECRET_KEYS set to that \
                 file's text",
                algorithm.jose_name()
            );
        }
    }

    /// Make sure an active key of `alg` exists: generate one at first start, rotate when
    /// the configured algorithm changed. Safe when several instances start at once.
    pub async fn ensure_active(&self, alg: SigningAlgorithm, now: UnixTime) -> Result<Ensured, KeyError> {
        match self.active(KeyPurpose::Access).await? {
            Some(k) if k.algorithm == alg => Ok(Ensured::Existing(k.kid)),
            // A new algorithm comes with a restart anyway: switch at once.
            Some(_) => self
                .rotate(KeyPurpose::Access, alg, now, RotateMode::SignNow)
                .await
                .map(|k| Ensured::Rotated(k.kid)),
            None => {
                let key = self.sealed(new_key(KeyPurpose::Access, alg, now, now)?)?;
                let kid = key.kid.clone();
                match self.store.add_active_key(key).await {
                    Ok(()) => Ok(Ensured::Generated(kid)),
                    // Another instance won the race: use its key.
                    Err(StoreError::Conflict) => Ok(Ensured::Existing(String::new())),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The operator's `keys generate`: the first active key of `alg`; refused when one
    /// exists (that is a rotation).
    pub async fn generate(&self, alg: SigningAlgorithm, now: UnixTime) -> Result<StoredKey, KeyError> {
        if let Some(active) = self.active(KeyPurpose::Access).await? {
            return Err(KeyError::ActiveKeyExists {
                kid: active.kid,
                algorithm: active.algorithm,
            });
        }
        let key = new_key(KeyPurpose::Access, alg, now, now)?;
        match self.store.add_active_key(self.sealed(key.clone())?).await {
            Ok(()) => Ok(key),
            // Another `keys generate` (or a start) got there first.
            Err(StoreError::Conflict) => match self.active(KeyPurpose::Access).await? {
                Some(active) => Err(KeyError::ActiveKeyExists {
                    kid: active.kid,
                    algorithm: active.algorithm,
                }),
                None => Err(StoreError::Conflict.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Make a new active key of `purpose`, retiring its active one as `mode` says. A key
    /// that signs at once may be refused by verifiers until they refetch the JWKS.
    pub async fn rotate(
        &self,
        purpose: KeyPurpose,
        alg: SigningAlgorithm,
        now: UnixTime,
        mode: RotateMode,
    ) -> Result<StoredKey, KeyError> {
        let ttl = self.access_ttl_secs;
        let (signs_from, old_retires_at) = match mode {
            RotateMode::Scheduled => {
                let from = now.plus(publish_ahead_secs(ttl));
                (from, from.plus(ttl))
            }
            RotateMode::SignNow => (now, now.plus(ttl)),
            RotateMode::Revoke => (now, now),
        };
        let key = new_key(purpose, alg, now, signs_from)?;
        self.store
            .rotate_key(self.sealed(key.clone())?, now, old_retires_at)
            .await?;
        if mode == RotateMode::Revoke {
            // During a scheduled rotation the key that signs is a retired one (the
            // active key is only published): a compromise cuts off every key of this
            // purpose that still verifies, not just the one marked active.
            for k in self.store.signing_keys().await? {
                if k.purpose == purpose && !k.active && k.retires_at.is_some_and(|t| now < t) {
                    self.store.retire_key_at(&k.kid, now).await?;
                }
            }
        }
        Ok(key)
    }

    /// Stop trusting key `kid` at once (it leaves the JWKS, its tokens are refused): the
    /// active key is replaced by a new one that signs at once; a retired key just ends.
    /// The new active key, when the active key was revoked.
    pub async fn revoke(&self, kid: &str, now: UnixTime) -> Result<Option<StoredKey>, KeyError> {
        let stored = self.store.signing_keys().await?;
        let Some(key) = stored.iter().find(|k| k.kid == kid) else {
            return Err(KeyError::NoSuchKey { kid: kid.to_owned() });
        };
        if key.active {
            return self
                .rotate(key.purpose, key.algorithm, now, RotateMode::Revoke)
                .await
                .map(Some);
        }
        self.store.retire_key_at(kid, now).await?;
        Ok(None)
    }

    /// Every stored key (private keys as stored) with what it is doing at `now`: access
    /// keys first, then id_token keys.
    pub async fn list(&self, now: UnixTime) -> Result<Vec<(StoredKey, KeyState)>, KeyError> {
        let keys = self.store.signing_keys().await?;
        let mut listed = Vec::with_capacity(keys.len());
        for purpose in [KeyPurpose::Access, KeyPurpose::IdToken] {
            let mine: Vec<StoredKey> = keys.iter().filter(|k| k.purpose == purpose).cloned().collect();
            let states = key_states(&mine, self.access_ttl_secs, now);
            listed.extend(mine.into_iter().zip(states));
        }
        Ok(listed)
    }

    /// The ring of stored access-token keys at `now`: the active key signs, live retired
    /// keys verify.
    pub async fn ring(&self, now: UnixTime, hs256_previous: &[Secret]) -> Result<KeyRing, KeyError> {
        self.ring_of(KeyPurpose::Access, now, hs256_previous).await
    }

    /// The ring of id_token keys at `now`; `None` until the provider made its first.
    pub async fn id_token_ring(&self, now: UnixTime) -> Result<Option<KeyRing>, KeyError> {
        match self.ring_of(KeyPurpose::IdToken, now, &[]).await {
            Ok(ring) => Ok(Some(ring)),
            Err(KeyError::NoActiveKey) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The id_token key: made at the provider's first use (RSA-2048: at the first client
    /// registered, never at a start). Safe when several instances ask at once.
    pub async fn ensure_id_token_key(&self, now: UnixTime) -> Result<(), KeyError> {
        if self.active(KeyPurpose::IdToken).await?.is_some() {
            return Ok(());
        }
        let key = self.sealed(new_key(KeyPurpose::IdToken, SigningAlgorithm::Rs256, now, now)?)?;
        match self.store.add_active_key(key).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn ring_of(
        &self,
        purpose: KeyPurpose,
        now: UnixTime,
        hs256_previous: &[Secret],
    ) -> Result<KeyRing, KeyError> {
        let mut active: Option<(_, UnixTime)> = None;
        let mut retired = Vec::new();
        for k in self.opened().await?.into_iter().filter(|k| k.purpose == purpose) {
            let live_until = k.retires_at.filter(|t| now < *t);
            if !k.active && live_until.is_none() {
                continue;
            }
            let loaded = keygen::load(&k.kid, k.algorithm, &k.private_der).map_err(|e| KeyError::BadKey {
                kid: k.kid.clone(),
                why: e.to_string(),
            })?;
            match (k.active, live_until) {
                (true, _) => active = Some((loaded, k.signs_from)),
                (false, Some(until)) => retired.push((loaded, until)),
                (false, None) => {}
            }
        }
        let (signer, signs_from) = active.ok_or(KeyError::NoActiveKey)?;
        Ok(KeyRing::asymmetric(signer, signs_from, retired, hs256_previous))
    }

    /// HMAC key `name`, kept in the database: made (and stored sealed) at first start,
    /// shared by every instance.
    pub async fn mac(&self, name: &'static str, now: UnixTime) -> Result<MacKey, KeyError> {
        Ok(MacKey::new(Secret::new(self.server_secret(name, now).await?), name))
    }
}

/// A new active key of `alg` (its private key in the clear; sealed before storing).
fn new_key(
    purpose: KeyPurpose,
    alg: SigningAlgorithm,
    now: UnixTime,
    signs_from: UnixTime,
) -> Result<StoredKey, KeyError> {
    if alg == SigningAlgorithm::Hs256 {
        return Err(KeyError::Hs256HasNoStoredKeys);
    }
    let (kid, private_der) = keygen::generate(alg).map_err(|e| KeyError::BadKey {
        kid: "(new)".into(),
        why: e.to_string(),
    })?;
    Ok(StoredKey {
        kid,
        purpose,
        algorithm: alg,
        private_der,
        active: true,
        created_at: now,
        signs_from,
        retires_at: None,
    })
}
