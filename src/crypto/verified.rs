//! A bounded memo of access tokens whose signature and claims have been verified. A
//! client presents the same access token on every call for its whole life, and
//! checking it again finds nothing new: the bytes, and so the signature and claims,
//! are the same. What can change is checked on every hit by the caller: the time
//! (`exp`, `nbf`) and whether the signing key still verifies (retired, revoked or
//! rotated away). Revocation of the session is checked after this, as for any token.
//!
//! A layer, not a rule: with the memo empty every token takes the full path.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Entries at most; a full memo is emptied and starts over (cheap, and bounded).
const CAPACITY: usize = 4096;

/// What a verified token said (`T`: its claims), and the key that verified it.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    pub token: T,
    pub kid: Box<str>,
}

/// Keys are whole tokens (hundreds of bytes): SipHash over them was most of a memo
/// hit. foldhash is keyed per process, and only tokens that verified are ever
/// inserted, so a client cannot fill the map with colliding keys.
pub struct VerifiedTokens<T> {
    entries: RwLock<HashMap<Box<str>, Verified<T>, foldhash::fast::RandomState>>,
}

impl<T> Default for VerifiedTokens<T> {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
        }
    }
}

impl<T: Clone> VerifiedTokens<T> {
    /// The earlier verification of exactly these bytes, if remembered.
    pub fn get(&self, token: &str) -> Option<Verified<T>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(token).cloned()
    }

    /// Remember a token that verified in full.
    pub fn insert(&self, token: &str, verified: Verified<T>) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), verified);
    }

    /// Forget everything (the keys changed).
    pub fn clear(&self) {
        self.entries.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How many tokens are remembered (for tests).
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.entries.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}
