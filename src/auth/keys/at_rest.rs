//! Secrets at rest: the server secrets (HMAC keys) kept in the database, and sealing
//! every secret at rest with the vault's current key.

use std::path::Path;

use super::{KeyError, KeyService, at_rest};

use crate::crypto::at_rest::{Vault, sealed_with};
use crate::domain::UnixTime;

/// What `keys reencrypt` sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resealed {
    pub signing_keys: usize,
    pub server_secrets: usize,
    pub totp_secrets: usize,
    /// The HS256 secret file was sealed too.
    pub secret_file: bool,
}

/// The server's HMAC keys kept in the database, by name.
pub const SERVER_SECRETS: [&str; 4] = ["csrf", "device", "refresh", "passkey-decoy"];

/// What a sealed server secret is bound to.
pub fn server_secret_context(name: &str) -> String {
    format!("server secret {name}")
}

/// What a sealed TOTP secret is bound to: its user (a secret copied into another
/// user's row does not open).
pub fn totp_secret_context(user: crate::domain::UserId) -> String {
    format!("totp secret {user}")
}

fn random_32() -> Result<Vec<u8>, KeyError> {
    let mut fresh = vec![0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| KeyError::Randomness(e.to_string()))?;
    Ok(fresh)
}

impl KeyService {
    /// Server secret `name` as stored (sealed or not): the stored one, or a fresh one
    /// stored sealed by `vault` when there is none yet.
    async fn stored_secret(&self, name: &str, vault: &Vault, now: UnixTime) -> Result<Vec<u8>, KeyError> {
        let fresh = vault
            .seal(&random_32()?, &server_secret_context(name))
            .map_err(at_rest)?;
        Ok(self.store.server_secret(name, fresh, now).await?)
    }

    /// Server secret `name` in the clear (made now when there is none yet).
    pub async fn server_secret(&self, name: &str, now: UnixTime) -> Result<Vec<u8>, KeyError> {
        let stored = self.stored_secret(name, &self.vault, now).await?;
        self.vault.open(&stored, &server_secret_context(name)).map_err(at_rest)
    }

    /// How many secrets at rest are sealed and unsealed: the signing keys, the server
    /// secrets and (given) the HS256 secret file. Reads raw values; creates a missing
    /// server secret (sealed), as a start does anyway.
    async fn count_sealed(&self, secret_file: Option<&Path>, now: UnixTime) -> Result<(usize, usize), KeyError> {
        let mut raw: Vec<Vec<u8>> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| k.private_der)
            .collect();
        for name in SERVER_SECRETS {
            raw.push(self.stored_secret(name, &self.vault, now).await?);
        }
        raw.extend(self.store.totp_secrets().await?.into_iter().map(|(_, secret)| secret));
        if let Some(Ok(bytes)) = secret_file.map(std::fs::read) {
            raw.push(bytes.trim_ascii().to_vec());
        }
        let sealed = raw.iter().filter(|v| sealed_with(v).is_some()).count();
        Ok((sealed, raw.len() - sealed))
    }

    /// At start with an encryption key: every secret at rest must be sealed. One stored
    /// in the clear is refused, naming `tokengate keys reencrypt`: sealing it here would
    /// seal whatever a database writer planted (all of it, if they replaced every
    /// value), so only the operator's explicit command seals what is in the clear.
    pub async fn refuse_unsealed(&self, secret_file: Option<&Path>, now: UnixTime) -> Result<(), KeyError> {
        if !self.vault.seals() {
            return Ok(());
        }
        match self.count_sealed(secret_file, now).await? {
            (_, 0) => Ok(()),
            (sealed, unsealed) => Err(KeyError::Unsealed { sealed, unsealed }),
        }
    }

    /// The operator's `keys reencrypt`: seal every secret at rest with the vault's
    /// current key: the signing keys, the server secrets, the users' TOTP secrets and
    /// (given) the HS256 secret file. This service's vault must open what is sealed with
    /// a previous key and what is not sealed yet ([`Vault::accepting_unsealed`]). Each
    /// value is replaced on its own (a TOTP secret only while it is the one read), so an
    /// interrupted run is finished by running it again. How many signing keys, server
    /// secrets and TOTP secrets, and whether the file, were sealed.
    pub async fn reencrypt(&self, secret_file: Option<&Path>, now: UnixTime) -> Result<Resealed, KeyError> {
        let opened = self.opened().await?;
        let key_count = opened.len();
        for key in opened {
            let sealed = self.sealed(key)?;
            self.store.replace_key_material(&sealed.kid, sealed.private_der).await?;
        }
        for name in SERVER_SECRETS {
            let plain = self.server_secret(name, now).await?;
            let sealed = self.vault.seal(&plain, &server_secret_context(name)).map_err(at_rest)?;
            self.store.replace_server_secret(name, sealed).await?;
        }
        let mut totp_secrets = 0;
        for (user, stored) in self.store.totp_secrets().await? {
            let context = totp_secret_context(user);
            let plain = self.vault.open(&stored, &context).map_err(at_rest)?;
            let sealed = self.vault.seal(&plain, &context).map_err(at_rest)?;
            totp_secrets += usize::from(self.store.reseal_totp_secret(user, stored, sealed).await?);
        }
        let mut file = false;
        if let Some(path) = secret_file
            && let Some(secret) =
                crate::crypto::keys::read_secret_file(path, &self.vault).map_err(KeyError::SecretFile)?
        {
            crate::crypto::keys::write_secret_file(path, &secret, &self.vault, false).map_err(KeyError::SecretFile)?;
            file = true;
        }
        Ok(Resealed {
            signing_keys: key_count,
            server_secrets: SERVER_SECRETS.len(),
            totp_secrets,
            secret_file: file,
        })
    }
}
