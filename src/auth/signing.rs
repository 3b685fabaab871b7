//! The running service's keys: reload after a rotation anywhere, the JWKS, and the
//! operator's rotate and revoke (through [`KeyService`], which owns the rules).

use serde_json::Value;

use super::AuthError;
use super::AuthService;
use super::keys::{KeyError, KeyMode, RotateMode};

impl AuthService {
    /// Re-read the stored keys (asymmetric modes); HS256 keys come from configuration.
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        if let KeyMode::Stored { hs256_previous, .. } = &self.key_mode {
            let ring = self.keys.ring(self.clock.now(), hs256_previous).await?;
            self.tokens.replace_keys(ring);
        }
        Ok(())
    }

    /// The public JWK Set: the access tokens' keys (none for HS256), and the key that
    /// signs id_tokens once the provider made one.
    pub async fn jwks(&self) -> Result<Value, AuthError> {
        let mut set = self.tokens.jwks(self.clock.now());
        if let Some(key) = self.existing_id_token_key().await?
            && let Some(keys) = set["keys"].as_array_mut()
        {
            keys.push(key.jwk.clone());
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

    /// Revoke key `kid` (the operator's `keys revoke`), then reload.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<(), AuthError> {
        // An instance signing with HS256 (or an operator command's throwaway ring) has
        // no stored keys of its own to revoke.
        if !matches!(self.key_mode, KeyMode::Stored { .. }) {
            return Err(AuthError::internal(KeyError::Hs256HasNoStoredKeys));
        }
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
            .rotate(*algorithm, self.clock.now(), mode)
            .await
            .map_err(AuthError::internal)?;
        self.reload_keys().await.map_err(AuthError::internal)?;
        Ok(key.kid)
    }
}
