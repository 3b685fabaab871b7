//! What can go wrong with keys and secrets, as an operator reads it. An operator's
//! mistake (a wrong kid, HS256 with stored-key commands, an active key already there)
//! is its own variant, never an internal error.

use crate::crypto::keys::SigningAlgorithm;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing key with kid {kid:?} (see: tokengate keys list)")]
    NoSuchKey { kid: String },
    #[error("an active key exists already ({kid} {}); use `tokengate keys rotate` for a new one", algorithm.jose_name())]
    ActiveKeyExists { kid: String, algorithm: SigningAlgorithm },
    #[error("no active signing key (run: tokengate keys generate)")]
    NoActiveKey,
    #[error(
        "HS256 signs with TOKENGATE_SECRET_KEY: to rotate, set a new secret and move the old one into \
         TOKENGATE_PREVIOUS_SECRET_KEYS until its tokens expire (or choose TOKENGATE_ALGORITHM=EdDSA, ES256 or RS256)"
    )]
    Hs256HasNoStoredKeys,
    /// HS256 is configured over an active asymmetric key (it would void every token).
    #[error(
        "HS256 is set, but this database signs with {} key {kid}; set TOKENGATE_ALGORITHM={} (or unset it)",
        stored.jose_name(),
        stored.jose_name()
    )]
    ConflictingAlgorithm { stored: SigningAlgorithm, kid: String },
    /// HS256 on a shared database, without a configured secret (each instance would
    /// make its own).
    #[error("must be set with a shared database (every instance needs the same key)")]
    SecretKeyRequired,
    /// With an encryption key set, secrets at rest in the clear.
    #[error(
        "{unsealed} secret(s) at rest are stored unencrypted ({sealed} encrypted) although it is set: if they are \
         this server's own (a database from before the key was set), seal them with `tokengate keys reencrypt`; if \
         not, they were written into the database by someone else"
    )]
    Unsealed { sealed: usize, unsealed: usize },
    /// A stored key's material does not load.
    #[error("{kid}: {why}")]
    BadKey { kid: String, why: String },
    /// Sealing or opening a secret at rest failed (a wrong or missing encryption key).
    #[error("{0}")]
    AtRest(String),
    /// The secret file beside the SQLite database.
    #[error("{0}")]
    SecretFile(String),
    #[error("no OS randomness: {0}")]
    Randomness(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}
