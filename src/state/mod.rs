//! Fast, shared-nothing-or-shared state: rate limits. `memory.rs` serves one instance;
//! a Redis-backed implementation for many instances is one more file.

pub mod memory;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

/// What an attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Login attempts from one client IP.
    LoginIp(IpAddr),
    /// Login attempts for one username (lower-cased), from anywhere.
    LoginUser(String),
    /// Refreshes from one client IP.
    RefreshIp(IpAddr),
}

/// An attempt over the limit may be retried after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (for the `Retry-After` header).
    pub fn secs(self) -> u64 {
        let d = self.0;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// Counts attempts; `Err` once a key is over its rate.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    async fn hit(&self, key: &LimitKey) -> Result<(), RetryAfter>;
}
