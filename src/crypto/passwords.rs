//! argon2id password hashing on a bounded blocking pool, so a login storm cannot
//! starve the async threads that verify tokens.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::Argon2Params;
use crate::domain::Password;

/// A PHC string (`$argon2id$v=19$m=...`), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHashString(pub String);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("hashing task failed: {0}")]
    Join(String),
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that costs one hash too.
    dummy: Arc<PasswordHashString>,
}

impl PasswordHasher {
    /// `concurrency` hashes at most run at once (the number of cores is right).
    pub fn new(params: Argon2Params, concurrency: usize) -> Result<Self, HashError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| HashError::Argon2(e.to_string()))?;
        let dummy_password =
            Password::candidate(&hex(&raw)).ok_or_else(|| HashError::Argon2("dummy".into()))?;
        let dummy = hash_with(&argon2, &dummy_password)?;
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    /// Hash a new password with a fresh random salt.
    pub async fn hash(&self, password: Password) -> Result<PasswordHashString, HashError> {
        let argon2 = self.argon2.clone();
        self.run(move || hash_with(&argon2, &password)).await?
    }

    /// Check a password against a stored hash. `None` (no such user) still costs one
    /// full verification against a dummy hash and answers `false`.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<PasswordHashString>,
    ) -> Result<bool, HashError> {
        let argon2 = self.argon2.clone();
        let (target, real) = match stored {
            Some(h) => (h, true),
            None => ((*self.dummy).clone(), false),
        };
        let ok = self
            .run(move || {
                // A stored hash we cannot parse verifies nothing; it is not the client's fault.
                PasswordHash::new(&target.0)
                    .map(|parsed| {
                        argon2
                            .verify_password(password.expose().as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Join(e.to_string()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| HashError::Join(e.to_string()))
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &Password) -> Result<PasswordHashString, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| PasswordHashString(h.to_string()))
        .map_err(|e| HashError::Argon2(e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = cheap();
        let pw = Password::parse("correct horse battery").unwrap();
        let stored = h.hash(pw.clone()).await.unwrap();
        assert!(stored.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(pw, Some(stored.clone())).await.unwrap());
        let wrong = Password::parse("correct horse battery!").unwrap();
        assert!(!h.verify(wrong, Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = cheap();
        let pw = Password::parse("anything at all").unwrap();
        assert!(!h.verify(pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn garbage_hash_is_false_not_error() {
        let h = cheap();
        let pw = Password::parse("anything at all").unwrap();
        let bad = PasswordHashString("not-a-phc-string".into());
        assert!(!h.verify(pw, Some(bad)).await.unwrap());
    }
}
