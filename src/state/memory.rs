//! In-process rate limits with `governor` (GCRA), one keyed limiter per kind of key.
//!
//! Memory is bounded: keys whose state is back to "fresh" are swept out at least once
//! a minute, and past `max_keys` live keys per kind, new keys share one overflow
//! bucket instead of growing the map (an attacker cycling usernames then limits only
//! the overflow bucket, and the per-IP limit still applies to them).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{LimitKey, Limiter, RetryAfter};
use crate::config::Rate;

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, DefaultClock>;

/// A keyed limiter with a bounded number of keys.
struct Bounded<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    overflow: K,
    max_keys: usize,
    last_sweep: Mutex<Instant>,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(rate: Rate, overflow: K, max_keys: usize) -> Self {
        let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(rate.window_secs.max(1)) / count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count);
        Self {
            limiter: RateLimiter::hashmap(quota),
            overflow,
            max_keys,
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    fn hit(&self, key: &K) -> Result<(), RetryAfter> {
        self.sweep_if_due();
        let key = if self.limiter.len() >= self.max_keys {
            // Sweep now (rarely: at most once a second), then decide.
            self.sweep(Duration::from_secs(1));
            if self.limiter.len() >= self.max_keys {
                &self.overflow
            } else {
                key
            }
        } else {
            key
        };
        self.limiter
            .check_key(key)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
    }

    fn sweep_if_due(&self) {
        self.sweep(Duration::from_secs(60));
    }

    /// Drop keys that are back to a fresh state, if the last sweep is `min_gap` old.
    fn sweep(&self, min_gap: Duration) {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return; // another request is sweeping
        };
        if last.elapsed() < min_gap {
            return;
        }
        *last = Instant::now();
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// Rate limits kept in this process.
pub struct MemoryLimiter {
    login_ip: Bounded<std::net::IpAddr>,
    login_user: Bounded<String>,
    refresh_ip: Bounded<std::net::IpAddr>,
}

/// Live keys per kind before new ones share the overflow bucket (~100 bytes each).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

impl MemoryLimiter {
    pub fn new(login: Rate, refresh: Rate, max_keys: usize) -> Self {
        let unspecified = std::net::IpAddr::from([0, 0, 0, 0]);
        Self {
            login_ip: Bounded::new(login, unspecified, max_keys),
            // No valid username contains a space, so this key is no one's.
            login_user: Bounded::new(login, " overflow".to_owned(), max_keys),
            refresh_ip: Bounded::new(refresh, unspecified, max_keys),
        }
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn hit(&self, key: &LimitKey) -> Result<(), RetryAfter> {
        match key {
            LimitKey::LoginIp(ip) => self.login_ip.hit(ip),
            LimitKey::LoginUser(name) => self.login_user.hit(name),
            LimitKey::RefreshIp(ip) => self.refresh_ip.hit(ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_PER_MINUTE: Rate = Rate {
        count: 10,
        window_secs: 60,
    };

    #[tokio::test]
    async fn burst_then_limited_with_retry_after() {
        let l = MemoryLimiter::new(TEN_PER_MINUTE, TEN_PER_MINUTE, 1000);
        let key = LimitKey::LoginUser("alzy".into());
        for _ in 0..10 {
            assert!(l.hit(&key).await.is_ok());
        }
        let retry = l.hit(&key).await.unwrap_err();
        // One attempt comes back every 6 s under 10/1m.
        assert!((1..=6).contains(&retry.secs()), "{retry:?}");
        // Keys are independent.
        assert!(l.hit(&LimitKey::LoginUser("other".into())).await.is_ok());
        assert!(l.hit(&LimitKey::LoginIp([127, 0, 0, 1].into())).await.is_ok());
    }

    #[test]
    fn keys_are_bounded() {
        let b = Bounded::new(TEN_PER_MINUTE, "overflow".to_owned(), 100);
        for i in 0..1000 {
            let _ = b.hit(&format!("user{i}"));
        }
        assert!(b.len() <= 101, "{}", b.len());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(5001)).secs(), 6);
        assert_eq!(RetryAfter(Duration::from_secs(6)).secs(), 6);
    }
}
