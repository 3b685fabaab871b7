//! The key ring: one active signing key and the keys that still verify, each named
//! by a `kid`. Verification picks the key by `kid` and pins that key's algorithm.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use crate::crypto::algorithm::SigningAlgorithm;
use crate::crypto::at_rest::Vault;
use crate::crypto::jws::JwsSigner;
use crate::crypto::keygen::AsymmetricKey;
use crate::domain::{Secret, UnixTime};

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub signer: Arc<JwsSigner>,
}

/// A key that verifies tokens carrying its `kid`, for exactly one algorithm, until
/// `valid_until` (a retired key: until every token it signed has expired).
pub struct VerifyingKey {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
    pub valid_until: Option<UnixTime>,
}

pub struct KeyRing {
    /// Newest first, each with the time it signs from; the first due one signs.
    signers: Vec<(SigningKey, UnixTime)>,
    verifying: HashMap<String, VerifyingKey>,
    /// Public JWKs of the asymmetric keys, with their end of validity.
    public: Vec<(Value, Option<UnixTime>)>,
}

impl KeyRing {
    /// HS256: `current` signs and verifies; `previous` secrets only verify.
    pub fn hs256(current: &Secret, previous: &[Secret]) -> Self {
        let mut ring = Self {
            signers: vec![(
                SigningKey {
                    kid: hs256_kid(current),
                    alg: Algorithm::HS256,
                    signer: Arc::new(JwsSigner::hs256(current.expose())),
                },
                UnixTime(i64::MIN),
            )],
            verifying: HashMap::new(),
            public: Vec::new(),
        };
        ring.add_hs256_verifiers(previous.iter().chain(std::iter::once(current)));
        ring
    }

    /// Asymmetric: `active` signs from `signs_from` on; until then the newest
    /// `retired` key still signs. All of them verify (retired ones until their time) and
    /// are published, so a pre-published key is known before its first token. Previous
    /// HS256 secrets may still verify during a switch of algorithm.
    pub fn asymmetric(
        active: AsymmetricKey,
        signs_from: UnixTime,
        retired: Vec<(AsymmetricKey, UnixTime)>,
        hs256_previous: &[Secret],
    ) -> Self {
        let signer = |k: &AsymmetricKey| SigningKey {
            kid: k.kid.clone(),
            alg: k.alg,
            signer: Arc::clone(&k.signer),
        };
        let mut signers = vec![(signer(&active), signs_from)];
        if let Some((newest_retired, _)) = retired.first() {
            signers.push((signer(newest_retired), UnixTime(i64::MIN)));
        }
        let all = std::iter::once((active, None)).chain(retired.into_iter().map(|(k, until)| (k, Some(until))));
        let mut verifying = HashMap::new();
        let mut public = Vec::new();
        for (k, valid_until) in all {
            public.push((k.jwk, valid_until));
            verifying.insert(
                k.kid,
                VerifyingKey {
                    alg: k.alg,
                    decoding: k.decoding,
                    valid_until,
                },
            );
        }
        let mut ring = Self {
            signers,
            verifying,
            public,
        };
        ring.add_hs256_verifiers(hs256_previous.iter());
        ring
    }

    fn add_hs256_verifiers<'a>(&mut self, secrets: impl Iterator<Item = &'a Secret>) {
        for s in secrets {
            for kid in [hs256_kid(s), legacy_hs256_kid(s)] {
                self.verifying.insert(
                    kid,
                    VerifyingKey {
                        alg: Algorithm::HS256,
                        decoding: DecodingKey::from_secret(s.expose()),
                        valid_until: None,
                    },
                );
            }
        }
    }

    /// The key that signs at `now`: the newest one due (the oldest if none is).
    pub fn signing(&self, now: UnixTime) -> &SigningKey {
        let due = self.signers.iter().find(|(_, from)| *from <= now);
        let (key, _) = due.unwrap_or_else(|| &self.signers[self.signers.len() - 1]);
        key
    }

    /// The key configured to sign (possibly not yet due).
    pub fn active(&self) -> &SigningKey {
        &self.signers[0].0
    }

    /// The key for `kid`, if it still verifies at `now`.
    pub fn verifying(&self, kid: &str, now: UnixTime) -> Option<&VerifyingKey> {
        self.verifying
            .get(kid)
            .filter(|k| k.valid_until.is_none_or(|until| now < until))
    }

    /// The JWK Set: public keys only (never an HS256 secret), retired ones while they
    /// still verify.
    pub fn jwks(&self, now: UnixTime) -> Value {
        let keys: Vec<&Value> = self
            .public
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| now < u))
            .map(|(jwk, _)| jwk)
            .collect();
        json!({ "keys": keys })
    }
}

/// Names an HS256 secret by a truncated HMAC keyed with the secret itself: stable across
/// restarts and instances, and no cheaper to test a guessed secret against than the
/// token's own signature (a plain hash of the secret was: one SHA-256 per guess).
pub fn hs256_kid(secret: &Secret) -> String {
    let mac = crate::crypto::mac::MacKey::new(secret.clone(), "tokengate hs256 kid");
    let tag = mac.raw_tag(b"");
    let hex: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("hs256-{hex}")
}

/// The kid that releases before 0.2 gave a secret (a truncated SHA-256): still accepted
/// for verification, so access tokens signed before an upgrade live out their time.
fn legacy_hs256_kid(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("hs256-{hex}")
}

/// Where a signing secret came from (said in the start-up log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Generated,
    Loaded,
}

/// What the sealed HS256 secret file is bound to.
const SECRET_FILE_CONTEXT: &str = "HS256 secret file";

/// Read the HS256 secret kept in `path`, or generate one there (48 OS-random bytes,
/// base64url, file mode 0600) when it does not exist yet; sealed by `vault` when it
/// has an encryption key.
pub fn load_or_create_secret(path: &std::path::Path, vault: &Vault) -> Result<(Secret, SecretSource), String> {
    use base64::Engine as _;

    if let Some(text) = read_secret_file(path, vault)? {
        let secret =
            super::secret_strength::check_secret(&text).map_err(|m| format!("the secret in {} {m}", path.display()))?;
        return Ok((secret, SecretSource::Loaded));
    }
    let mut raw = [0u8; 48];
    getrandom::fill(&mut raw).map_err(|e| format!("no OS randomness: {e}"))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    write_secret_file(path, &text, vault, true)?;
    Ok((Secret::new(text.into_bytes()), SecretSource::Generated))
}

/// Write the HS256 secret file (sealed by `vault` when it has a key), mode 0600: a new
/// file, or (`create == false`) a replacement written beside it and renamed over it.
pub fn write_secret_file(path: &std::path::Path, secret: &str, vault: &Vault, create: bool) -> Result<(), String> {
    use std::io::Write as _;

    let stored = vault
        .seal(secret.as_bytes(), SECRET_FILE_CONTEXT)
        .map_err(|e| e.to_string())?;
    let target = if create {
        path.to_path_buf()
    } else {
        path.with_extension("secret.new")
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    file.write_all(&stored)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    if !create {
        std::fs::rename(&target, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The HS256 secret kept in `path`, opened (for `keys reencrypt`); `None` if there is no file.
pub fn read_secret_file(path: &std::path::Path, vault: &Vault) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(stored) => vault
            .open(stored.trim_ascii(), SECRET_FILE_CONTEXT)
            .map(|p| Some(String::from_utf8_lossy(&p).trim().to_owned()))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_stable_and_does_not_contain_the_secret() {
        let s = Secret::new(b"q3vJ9c1XkP0sZb7Lr2mYt8Wn5Hd4Ga6Fe".to_vec());
        assert_eq!(hs256_kid(&s), hs256_kid(&s.clone()));
        assert!(hs256_kid(&s).starts_with("hs256-"));
        assert!(!hs256_kid(&s).contains("q3vJ"));
    }

    #[test]
    fn the_kid_is_not_a_plain_hash_of_the_secret() {
        // One SHA-256 of a guessed secret must not be enough to test the guess.
        let s = Secret::new(b"q3vJ9c1XkP0sZb7Lr2mYt8Wn5Hd4Ga6Fe".to_vec());
        let digest = Sha256::digest(s.expose());
        let plain: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(hs256_kid(&s), format!("hs256-{plain}"));
        // Tokens signed under the old kid still verify until they expire.
        let ring = KeyRing::hs256(&s, &[]);
        assert!(ring.verifying(&format!("hs256-{plain}"), UnixTime(0)).is_some());
        assert_eq!(ring.signing(UnixTime(0)).kid, hs256_kid(&s));
    }

    #[test]
    fn secret_file_is_created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.secret");
        let (a, src) = load_or_create_secret(&path, &Vault::default()).unwrap();
        assert_eq!(src, SecretSource::Generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (b, src) = load_or_create_secret(&path, &Vault::default()).unwrap();
        assert_eq!(src, SecretSource::Loaded);
        assert_eq!(a, b);
    }

    #[test]
    fn previous_secrets_verify_but_do_not_sign() {
        let cur = Secret::new(b"current-secret-current-secret-0123456789".to_vec());
        let old = Secret::new(b"previous-secret-previous-secret-0123456789".to_vec());
        let ring = KeyRing::hs256(&cur, std::slice::from_ref(&old));
        assert_eq!(ring.signing(UnixTime(0)).kid, hs256_kid(&cur));
        let now = UnixTime(1_800_000_000);
        assert!(ring.verifying(&hs256_kid(&old), now).is_some());
        assert!(ring.verifying(&hs256_kid(&cur), now).is_some());
        assert!(ring.verifying("hs256-0000000000000000", now).is_none());
        assert_eq!(ring.jwks(now), json!({"keys": []}), "never an HS256 secret in the JWKS");
    }

    #[test]
    fn retired_keys_verify_until_their_time() {
        use crate::crypto::keygen::{generate, load};
        let (k1, d1) = generate(SigningAlgorithm::EdDsa).unwrap();
        let (k2, d2) = generate(SigningAlgorithm::EdDsa).unwrap();
        let until = UnixTime(1_800_000_900);
        let signs_from = UnixTime(1_800_000_000);
        let ring = KeyRing::asymmetric(
            load(&k2, SigningAlgorithm::EdDsa, &d2).unwrap(),
            signs_from,
            vec![(load(&k1, SigningAlgorithm::EdDsa, &d1).unwrap(), until)],
            &[],
        );
        // Pre-published: the old key signs until the new one is due.
        assert_eq!(ring.signing(UnixTime(signs_from.0 - 1)).kid, k1);
        assert_eq!(ring.signing(signs_from).kid, k2);
        let before = UnixTime(until.0 - 1);
        assert!(ring.verifying(&k1, before).is_some());
        assert!(ring.verifying(&k1, until).is_none());
        assert_eq!(ring.jwks(before)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(ring.jwks(until)["keys"].as_array().unwrap().len(), 1);
        assert!(ring.verifying(&k2, UnixTime(i64::MAX)).is_some());
    }
}
