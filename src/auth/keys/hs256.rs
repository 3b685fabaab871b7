//! HS256: the secret is configuration (or a file beside the SQLite database, made at
//! first start), never a stored key.

use super::{KeyConfig, KeyError, KeyService};
use crate::crypto::keys::{SecretSource, hs256_kid, load_or_create_secret, read_secret_file};
use crate::domain::Secret;

/// Where an HS256 key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hs256Source {
    /// `TOKENGATE_SECRET_KEY`: signs.
    Configured,
    /// The secret file beside the SQLite database: signs.
    File,
    /// `TOKENGATE_PREVIOUS_SECRET_KEYS`: verifies only.
    Previous,
}

/// An HS256 key as `keys list` shows it.
#[derive(Clone, Debug)]
pub struct Hs256Key {
    pub kid: String,
    pub source: Hs256Source,
}

impl KeyService {
    /// The HS256 secret that signs: configured, or kept in the secret file (made now,
    /// mode 0600, when there is none).
    pub fn hs256_secret(&self, config: &KeyConfig) -> Result<Secret, KeyError> {
        if let Some(s) = &config.secret {
            tracing::info!("signing key: HS256 secret from TOKENGATE_SECRET_KEY");
            return Ok(s.clone());
        }
        let Some(file) = &config.secret_file else {
            return Err(KeyError::SecretKeyRequired);
        };
        let (secret, source) = load_or_create_secret(file, &self.vault).map_err(KeyError::SecretFile)?;
        let path = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        match source {
            SecretSource::Generated => {
                tracing::info!(path = %path.display(), "signing key: generated a new HS256 secret (mode 0600)")
            }
            SecretSource::Loaded => tracing::info!(path = %path.display(), "signing key: HS256 secret loaded"),
        }
        Ok(secret)
    }

    /// The HS256 keys of `config`: the one that signs (configured, or in the secret
    /// file if it exists and holds an acceptable secret), then those that only verify.
    pub fn hs256_keys(&self, config: &KeyConfig) -> Result<Vec<Hs256Key>, KeyError> {
        let current = match (&config.secret, &config.secret_file) {
            (Some(s), _) => Some((s.clone(), Hs256Source::Configured)),
            (None, Some(file)) => read_secret_file(file, &self.vault)
                .map_err(KeyError::SecretFile)?
                .and_then(|t| crate::crypto::secret_strength::check_secret(&t).ok())
                .map(|s| (s, Hs256Source::File)),
            (None, None) => None,
        };
        let previous = config.previous.iter().map(|s| (s.clone(), Hs256Source::Previous));
        Ok(current
            .into_iter()
            .chain(previous)
            .map(|(s, source)| Hs256Key {
                kid: hs256_kid(&s),
                source,
            })
            .collect())
    }
}
