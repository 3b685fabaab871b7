//! The running service's keys: reload after a rotation anywhere, the JWKS, and the
//! operator's rotate and revoke (through [`KeyService`], which owns the rules).

use serde_json::Value;

use super::AuthError;
use super::AuthService;
use super::keys::{KeyError, KeyMode, RotateMode};
use crate::crypto::keys::SigningAlgorithm;
use crate::domain::KeyPurpose;

impl AuthService {
    /// Re-read the stored keys: the access-token keys (asymmetric modes; HS256 keys come
    /// from configuration) and the id_token keys once this instance has loaded them (a
    /// server that never serves the provider reads nothing more than before it existed;
    /// one that does loads them at its first use, from the database).
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        if let KeyMode::Stored { hs256_previous, .. } = &self.key_mode {
            let ring = self.keys.ring(self.clock.now(), hs256_previous).await?;
            self.tokens.replace_keys(ring);
        }
        if self.has_loaded_id_token_keys() {
            self.reload_id_token_keys().await?;
        }
        Ok(())
    }

    /// The public JWK Set: the access tokens' keys (none for HS256), and the id_token
    /// keys once the provider made one (a new one ahead of its use, a retired one while
    /// id_tokens it signed live).
    pub async fn jwks(&self) -> Result<Value, AuthError> {
        let now = self.clock.now();
        let mut set = self.tokens.jwks(now);
        if let Some(ring) = self.existing_id_token_keys().await?
            && let (Some(keys), Value::Array(id_keys)) = (set["keys"].as_array_mut(), ring.jwks(now)["keys"].take())
        {
            keys.extend(id_keys);
        }
        Ok(set)
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

    /// Revoke stored key `kid` (the operator's `keys revoke`: an access-token key, or an
    /// id_token key), then reload.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<(), AuthError> {
        self.keys
            .revoke(kid, self.clock.now())
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)
    }

    /// Rotate (the operator's `keys rotate`, also used by tests), then reload; the new kid.
    pub async fn rotate_keys(&self, mode: RotateMode) -> Result<String, AuthError> {
        let KeyMode::Stored { algorithm, .. } = &self.key_mode else {
            return Err(AuthError::internal(KeyError::Hs256HasNoStoredKeys));
        };
        let key = self
            .keys
            .rotate(KeyPurpose::Access, *algorithm, self.clock.now(), mode)
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)?;
        Ok(key.kid)
    }

    /// Rotate the id_token key (as `keys rotate` does once the provider has one), then
    /// reload; the new kid.
    pub async fn rotate_id_token_keys(&self, mode: RotateMode) -> Result<String, AuthError> {
        let key = self
            .keys
            .rotate(KeyPurpose::IdToken, SigningAlgorithm::Rs256, self.clock.now(), mode)
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)?;
        Ok(key.kid)
    }
}
