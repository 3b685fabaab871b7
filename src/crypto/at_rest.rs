//! Secrets at rest: private signing keys, the server's MAC keys and the HS256 secret
//! file, sealed with AES-256-GCM (aws-lc-rs) under `TOKENGATE_ENCRYPTION_KEY`, so that
//! a backup or a copied database file cannot mint tokens.
//!
//! A sealed value is `tgenc1:<key id>:<base64(nonce || ciphertext || tag)>`: the id of the
//! encryption key sits beside each ciphertext, so the key can be rotated (`tokengate keys
//! reencrypt`) and a wrong key is named, not guessed at. The associated data binds each
//! value to what it is (a key's `kid`, a secret's name), so values cannot be swapped.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

const PREFIX: &str = "tgenc1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AtRestError {
    #[error(
        "{what} is encrypted (with encryption key {sealed_with}) and no TOKENGATE_ENCRYPTION_KEY is set; set it, or TOKENGATE_ENCRYPTION_KEY_FILE"
    )]
    NoKey { what: String, sealed_with: String },
    #[error(
        "{what} is encrypted with encryption key {sealed_with}, but TOKENGATE_ENCRYPTION_KEY is {have}; set the key it was sealed with (after a key change, run `tokengate keys reencrypt` with TOKENGATE_PREVIOUS_ENCRYPTION_KEYS)"
    )]
    WrongKey {
        what: String,
        sealed_with: String,
        have: String,
    },
    #[error("{what} is encrypted but does not decrypt: the value is damaged or was swapped")]
    Corrupt { what: String },
    #[error(
        "{what} is stored unencrypted although TOKENGATE_ENCRYPTION_KEY is set (written into the database in the clear?); check it, then run `tokengate keys reencrypt`"
    )]
    Unsealed { what: String },
    #[error("no OS randomness for a nonce")]
    NoRandomness,
}

/// One AES-256 key and its id (`ek-` and 16 hex digits of a hash of the key).
pub struct EncryptionKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.id)
    }
}

impl EncryptionKey {
    /// 32 bytes, base64 (standard or URL-safe, padded or not).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let raw = B64
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "is not base64 (make one with: openssl rand -base64 32)".to_owned())?;
        if raw.len() != 32 {
            return Err(format!(
                "must be 32 bytes, base64; this is {} bytes (make one with: openssl rand -base64 32)",
                raw.len()
            ));
        }
        let digest = Sha256::new()
            .chain_update(b"tokengate encryption key id\0")
            .chain_update(&raw)
            .finalize();
        let id = format!(
            "ek-{}",
            digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| "is not an AES-256 key".to_owned())?;
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `plaintext` sealed, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, AtRestError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| AtRestError::NoRandomness)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| AtRestError::NoRandomness)?;
        let mut body = nonce.to_vec();
        body.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}:{}", self.id, B64.encode(body)).into_bytes())
    }

    fn open(&self, body_b64: &str, context: &str) -> Result<Vec<u8>, AtRestError> {
        let corrupt = || AtRestError::Corrupt {
            what: context.to_owned(),
        };
        let body = B64.decode(body_b64).map_err(|_| corrupt())?;
        if body.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| corrupt())?;
        Ok(plain.to_vec())
    }
}

/// The id of the key `stored` was sealed with, if it is sealed.
pub fn sealed_with(stored: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(stored).ok()?.strip_prefix(PREFIX)?;
    text.split_once(':').map(|(id, _)| id)
}

/// The encryption keys of this process: the current one seals; it and the previous
/// ones open. Without a current key, values are stored as they are. With one, a value
/// stored unsealed is refused (whoever could write it could pick the server's keys),
/// except by a vault made to seal what is still unsealed ([`Vault::accepting_unsealed`]).
#[derive(Debug, Default)]
pub struct Vault {
    current: Option<EncryptionKey>,
    previous: Vec<EncryptionKey>,
    accept_unsealed: bool,
}

impl Vault {
    pub fn new(current: Option<EncryptionKey>, previous: Vec<EncryptionKey>) -> Self {
        Self {
            current,
            previous,
            accept_unsealed: false,
        }
    }

    /// This vault, opening unsealed values too: for sealing them (`keys reencrypt`, and
    /// the first start with a key on a database that has none sealed).
    pub fn accepting_unsealed(mut self) -> Self {
        self.accept_unsealed = true;
        self
    }

    /// Values are sealed (a key is set).
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(EncryptionKey::id)
    }

    /// What to store for `plain` (named `context`).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, AtRestError> {
        match &self.current {
            Some(k) => k.seal(plain, context),
            None => Ok(plain.to_vec()),
        }
    }

    /// The plain value of `stored` (sealed or not).
    pub fn open(&self, stored: &[u8], context: &str) -> Result<Vec<u8>, AtRestError> {
        let Some(id) = sealed_with(stored) else {
            if self.current.is_some() && !self.accept_unsealed {
                return Err(AtRestError::Unsealed {
                    what: context.to_owned(),
                });
            }
            return Ok(stored.to_vec());
        };
        let text = std::str::from_utf8(stored).unwrap_or_default();
        let body = &text[PREFIX.len() + id.len() + 1..];
        let key = self.current.iter().chain(&self.previous).find(|k| k.id == id);
        match (key, &self.current) {
            (Some(k), _) => k.open(body, context),
            (None, None) => Err(AtRestError::NoKey {
                what: context.to_owned(),
                sealed_with: id.to_owned(),
            }),
            (None, Some(current)) => Err(AtRestError::WrongKey {
                what: context.to_owned(),
                sealed_with: id.to_owned(),
                have: current.id.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_base64(&B64.encode([byte; 32])).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let vault = Vault::new(Some(key(1)), Vec::new());
        let sealed = vault.seal(b"private key bytes", "signing key es-1").unwrap();
        assert!(
            !sealed.windows(7).any(|w| w == b"private"),
            "no plaintext in the sealed value"
        );
        assert_eq!(sealed_with(&sealed), Some(key(1).id()));
        assert_eq!(vault.open(&sealed, "signing key es-1").unwrap(), b"private key bytes");
        // Another value's context: refused (values cannot be swapped).
        assert!(matches!(
            vault.open(&sealed, "signing key es-2"),
            Err(AtRestError::Corrupt { .. })
        ));
        // Damaged: refused.
        let mut damaged = sealed.clone();
        let last = damaged.len() - 3;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert!(vault.open(&damaged, "signing key es-1").is_err());
        // Two seals of one value differ (fresh nonce each time).
        assert_ne!(sealed, vault.seal(b"private key bytes", "signing key es-1").unwrap());
    }

    #[test]
    fn no_key_or_the_wrong_key_is_named() {
        let sealed = Vault::new(Some(key(1)), Vec::new()).seal(b"x", "c").unwrap();
        let none = Vault::default();
        assert!(matches!(none.open(&sealed, "c"), Err(AtRestError::NoKey { .. })));
        let wrong = Vault::new(Some(key(2)), Vec::new());
        match wrong.open(&sealed, "c") {
            Err(AtRestError::WrongKey { sealed_with, have, .. }) => {
                assert_eq!((sealed_with.as_str(), have.as_str()), (key(1).id(), key(2).id()));
            }
            other => panic!("{other:?}"),
        }
        // After a key change, the previous key still opens.
        let rotated = Vault::new(Some(key(2)), vec![key(1)]);
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"x");
    }

    #[test]
    fn with_a_key_an_unsealed_value_is_refused_unless_sealing() {
        let vault = Vault::new(Some(key(1)), Vec::new());
        assert!(matches!(vault.open(b"plain", "c"), Err(AtRestError::Unsealed { .. })));
        let sealing = Vault::new(Some(key(1)), Vec::new()).accepting_unsealed();
        assert_eq!(sealing.open(b"plain", "c").unwrap(), b"plain");
    }

    #[test]
    fn without_a_key_values_pass_through() {
        let vault = Vault::default();
        assert!(!vault.seals());
        assert_eq!(vault.seal(b"plain", "c").unwrap(), b"plain");
        assert_eq!(vault.open(b"plain", "c").unwrap(), b"plain");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(EncryptionKey::from_base64("short").is_err());
        assert!(EncryptionKey::from_base64(&B64.encode([0u8; 16])).is_err());
        assert!(EncryptionKey::from_base64(&B64.encode([0u8; 32])).is_ok());
        assert_eq!(key(1).id(), key(1).id());
        assert_ne!(key(1).id(), key(2).id());
        assert!(key(1).id().starts_with("ek-") && key(1).id().len() == 19);
    }
}
