//! What a start needs for keys, from the configuration: the encryption vault, the key
//! settings, and the key ring (through [`KeyService`], which owns keys and secrets).

use std::path::PathBuf;

use super::error::StartError;
use super::purpose::Purpose;
use crate::auth::keys::{KeyConfig, KeyError, KeyMode, KeyService};
use crate::config::{ConfigError, Settings};
use crate::crypto::at_rest::{EncryptionKey, Vault};
use crate::crypto::keys::{KeyRing, SigningAlgorithm};
use crate::domain::{Secret, UnixTime};
use crate::store::DatabaseUrl;

/// The encryption keys of the configuration, ready to seal and open.
pub fn vault(settings: &Settings) -> Result<Vault, StartError> {
    let key = |var: &'static str, s: &Secret| {
        EncryptionKey::from_base64(&String::from_utf8_lossy(s.expose())).map_err(|m| ConfigError::new(var, m))
    };
    let current = settings
        .encryption
        .key
        .as_ref()
        .map(|s| key("TOKENGATE_ENCRYPTION_KEY", s))
        .transpose()?;
    let previous = settings
        .encryption
        .previous
        .iter()
        .map(|s| key("TOKENGATE_PREVIOUS_ENCRYPTION_KEYS", s))
        .collect::<Result<_, _>>()?;
    Ok(Vault::new(current, previous))
}

/// The HS256 secret file this configuration uses or may have left, if any (SQLite
/// without `TOKENGATE_SECRET_KEY`).
pub fn hs256_secret_file(settings: &Settings) -> Option<PathBuf> {
    match (&settings.tokens.secret_key, &settings.store.database_url) {
        (None, DatabaseUrl::Sqlite { path }) => Some(secret_path(path)),
        _ => None,
    }
}

/// `tokengate.db` keeps its secret in `tokengate.secret`.
pub fn secret_path(db: &std::path::Path) -> PathBuf {
    db.with_extension("secret")
}

/// The key settings of the configuration.
pub fn key_config(settings: &Settings) -> KeyConfig {
    KeyConfig {
        algorithm: settings.tokens.algorithm,
        secret: settings.tokens.secret_key.clone(),
        previous: settings.tokens.previous_secret_keys.clone(),
        secret_file: hs256_secret_file(settings),
    }
}

/// A key error at start: what the operator must change in the configuration names its
/// variable (exit code 2); the rest is a runtime failure.
pub fn start_error(e: KeyError) -> StartError {
    match e {
        e @ KeyError::ConflictingAlgorithm { .. } => ConfigError::new("TOKENGATE_ALGORITHM", e.to_string()).into(),
        e @ KeyError::SecretKeyRequired => ConfigError::new("TOKENGATE_SECRET_KEY", e.to_string()).into(),
        e @ KeyError::Unsealed { .. } => ConfigError::new("TOKENGATE_ENCRYPTION_KEY", e.to_string()).into(),
        e => StartError::Runtime(e.to_string()),
    }
}

/// The algorithm to sign with: configured, or decided by the database's active key.
pub async fn signing_algorithm(settings: &Settings, keys: &KeyService) -> Result<SigningAlgorithm, StartError> {
    keys.algorithm(settings.tokens.algorithm).await.map_err(start_error)
}

/// The key ring and where it comes from, for `purpose`.
pub(super) async fn signing_keys(
    settings: &Settings,
    keys: &KeyService,
    now: UnixTime,
    purpose: Purpose,
) -> Result<(KeyRing, KeyMode), StartError> {
    if purpose == Purpose::Operate {
        // Operator commands sign and verify nothing: they get a random key that dies
        // with them, and never read, make or rotate the real ones (a `user` command run
        // with another TOKENGATE_ALGORITHM must not give the fleet a new key).
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| StartError::Runtime(format!("no OS randomness: {e}")))?;
        return Ok((KeyRing::hs256(&Secret::new(raw.to_vec()), &[]), KeyMode::Hs256));
    }
    keys.bootstrap(&key_config(settings), now).await.map_err(start_error)
}
