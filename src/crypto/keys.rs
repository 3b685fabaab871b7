//! The key ring: one active signing key and the keys that still verify, each named
//! by a `kid`. Verification picks the key by `kid` and pins that key's algorithm.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use crate::domain::Secret;

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

/// A key that verifies tokens carrying its `kid`, for exactly one algorithm.
pub struct VerifyingKey {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

pub struct KeyRing {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    /// HS256: `current` signs and verifies; `previous` secrets only verify.
    pub fn hs256(current: &Secret, previous: &[Secret]) -> Self {
        let mut verifying = HashMap::new();
        for s in previous.iter().chain(std::iter::once(current)) {
            verifying.insert(
                hs256_kid(s),
                VerifyingKey {
                    alg: Algorithm::HS256,
                    decoding: DecodingKey::from_secret(s.expose()),
                },
            );
        }
        Self {
            signing: SigningKey {
                kid: hs256_kid(current),
                alg: Algorithm::HS256,
                encoding: EncodingKey::from_secret(current.expose()),
            },
            verifying,
        }
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }
}

/// Names an HS256 secret by a truncated SHA-256 of it: stable across restarts and
/// instances, and reveals nothing usable about a 32+ byte random secret.
pub fn hs256_kid(secret: &Secret) -> String {
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

/// Read the HS256 secret kept in `path`, or generate one there (48 OS-random bytes,
/// base64url, file mode 0600) when it does not exist yet.
pub fn load_or_create_secret(path: &std::path::Path) -> Result<(Secret, SecretSource), String> {
    use base64::Engine as _;
    use std::io::Write as _;

    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = crate::config::check_secret(text.trim())
                .map_err(|m| format!("the secret in {} {m}", path.display()))?;
            return Ok((secret, SecretSource::Loaded));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut raw = [0u8; 48];
    getrandom::fill(&mut raw).map_err(|e| format!("no OS randomness: {e}"))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((Secret::new(text.into_bytes()), SecretSource::Generated))
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
    fn secret_file_is_created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.secret");
        let (a, src) = load_or_create_secret(&path).unwrap();
        assert_eq!(src, SecretSource::Generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (b, src) = load_or_create_secret(&path).unwrap();
        assert_eq!(src, SecretSource::Loaded);
        assert_eq!(a, b);
    }

    #[test]
    fn previous_secrets_verify_but_do_not_sign() {
        let cur = Secret::new(b"current-secret-current-secret-0123456789".to_vec());
        let old = Secret::new(b"previous-secret-previous-secret-0123456789".to_vec());
        let ring = KeyRing::hs256(&cur, std::slice::from_ref(&old));
        assert_eq!(ring.signing().kid, hs256_kid(&cur));
        assert!(ring.verifying(&hs256_kid(&old)).is_some());
        assert!(ring.verifying(&hs256_kid(&cur)).is_some());
        assert!(ring.verifying("hs256-0000000000000000").is_none());
    }
}
