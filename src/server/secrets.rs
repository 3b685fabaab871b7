//! The signing keys and server secrets a start needs: the encryption vault, the HS256
//! secret (configured, or a file beside the SQLite database), the key ring, the
//! algorithm, and the HMAC keys kept in the database.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Purpose, StartError, absolute};
use crate::auth::keys::{
    Ensured, KeyAdminError, KeyMode, KeyStore, ResolveError, ensure_active_key, load_ring, resolve_algorithm,
    server_secret,
};
use crate::clock::Clock;
use crate::config::{ConfigError, Settings};
use crate::crypto::at_rest::{EncryptionKey, Vault};
use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::keys::{KeyRing, SecretSource, load_or_create_secret};
use crate::crypto::mac::MacKey;
use crate::domain::Secret;
use crate::store::{DatabaseUrl, Store};

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

/// The HS256 secret: configured, or kept in a file beside the SQLite database.
fn signing_secret(settings: &Settings, vault: &Vault) -> Result<Secret, StartError> {
    if let Some(s) = &settings.tokens.secret_key {
        tracing::info!("signing key: HS256 secret from TOKENGATE_SECRET_KEY");
        return Ok(s.clone());
    }
    let Some(file) = hs256_secret_file(settings) else {
        return Err(ConfigError::new(
            "TOKENGATE_SECRET_KEY",
            "must be set with a shared database (every instance needs the same key)",
        )
        .into());
    };
    let (secret, source) = load_or_create_secret(&file, vault).map_err(StartError::Runtime)?;
    match source {
        SecretSource::Generated => {
            tracing::info!(path = %absolute(&file).display(), "signing key: generated a new HS256 secret (mode 0600)")
        }
        SecretSource::Loaded => {
            tracing::info!(path = %absolute(&file).display(), "signing key: HS256 secret loaded")
        }
    }
    Ok(secret)
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

/// The key ring and where it comes from: the HS256 secret, or keys in the store
/// (generated at first start, shared by every instance).
pub(super) async fn signing_keys(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    vault: &Arc<Vault>,
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
    let algorithm = signing_algorithm(settings, store.as_ref()).await?;
    if algorithm == SigningAlgorithm::Hs256 {
        let secret = signing_secret(settings, vault)?;
        return Ok((
            KeyRing::hs256(&secret, &settings.tokens.previous_secret_keys),
            KeyMode::Hs256,
        ));
    }
    let runtime = |e: KeyAdminError| StartError::Runtime(e.to_string());
    let now = clock.now();
    let keys = KeyStore {
        store: store.as_ref(),
        vault,
    };
    match ensure_active_key(keys, algorithm, settings.tokens.access_ttl_secs, now)
        .await
        .map_err(runtime)?
    {
        Ensured::Generated(kid) => {
            tracing::info!(%kid, "signing key: generated a new {} key (kept in the database)", algorithm.jose_name());
            // Tokens signed with the HS256 secret before the switch die with it: say so,
            // and how to keep them until they expire.
            if let Some(file) = hs256_secret_file(settings).filter(|f| f.exists())
                && settings.tokens.previous_secret_keys.is_empty()
            {
                tracing::warn!(
                    path = %absolute(&file).display(),
                    "switched from HS256 to {}: access tokens signed before are refused from now on (their users log in \
                     again); to accept them until they expire, restart with TOKENGATE_PREVIOUS_SECRET_KEYS set to that \
                     file's text",
                    algorithm.jose_name()
                );
            }
        }
        Ensured::Rotated(kid) => {
            tracing::info!(%kid, "signing key: algorithm changed; new active key, the old one retired")
        }
        Ensured::Existing(_) => tracing::info!("signing key: {} keys loaded from the database", algorithm.jose_name()),
    }
    let ring = load_ring(keys, now, &settings.tokens.previous_secret_keys)
        .await
        .map_err(runtime)?;
    let mode = KeyMode::Stored {
        algorithm,
        hs256_previous: settings.tokens.previous_secret_keys.clone(),
        vault: vault.clone(),
    };
    Ok((ring, mode))
}

/// The algorithm to sign with: configured, or decided by the database's active key.
pub async fn signing_algorithm(settings: &Settings, store: &dyn Store) -> Result<SigningAlgorithm, StartError> {
    resolve_algorithm(store, settings.tokens.algorithm)
        .await
        .map_err(|e| match e {
            ResolveError::Conflicting(message) => StartError::Config(ConfigError::new("TOKENGATE_ALGORITHM", message)),
            ResolveError::Store(e) => StartError::Runtime(e.to_string()),
        })
}

/// An HMAC key kept in the database (made at first start, shared by every instance).
pub(super) async fn server_mac(
    store: &dyn Store,
    name: &'static str,
    clock: &Arc<dyn Clock>,
    vault: &Vault,
) -> Result<MacKey, StartError> {
    let key = server_secret(store, name, clock.now(), vault)
        .await
        .map_err(StartError::Runtime)?;
    Ok(MacKey::new(Secret::new(key), name))
}
