//! In-process rate limits with `governor` (GCRA), one keyed limiter per kind of key.
//!
//! Memory is bounded by our own state store: keys untouched for a whole window (their
//! budget is full again, the same as a fresh key) are swept out at least once a minute,
//! and while `max_keys` keys are live, keys already in the map keep their own budget
//! and only new keys share one overflow budget. An attacker cycling usernames or
//! addresses then throttles only other newcomers, never a client already counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::{ClientNet, Decision, LimitError, LimitKey, Limiter, Rate, RetryAfter};
use crate::clock::Clock;
use crate::domain::{SessionId, UserId};

/// The injected clock, as governor reads time: a duration since the Unix epoch.
#[derive(Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.now_precise()
    }
}

/// One key's GCRA state (governor's "theoretical arrival time") and its last use.
struct Slot {
    tat: Nanos,
    touched: Duration,
}

/// A keyed state store with at most `max_keys` keys.
struct BoundedStore<K> {
    map: Arc<Mutex<HashMap<K, Slot>>>,
    /// The budget new keys share while the map is full.
    overflow: Mutex<Option<Nanos>>,
    max_keys: usize,
    /// A key untouched this long has a full budget again (one window).
    forget_after: Duration,
    last_sweep: Mutex<Duration>,
    clock: LimiterClock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the counters inside are whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    fn new(max_keys: usize, forget_after: Duration, clock: LimiterClock) -> Self {
        let now = governor::clock::Clock::now(&clock);
        Self {
            map: Arc::new(Mutex::new(HashMap::new())),
            overflow: Mutex::new(None),
            max_keys,
            forget_after,
            last_sweep: Mutex::new(now),
            clock,
        }
    }

    fn now(&self) -> Duration {
        governor::clock::Clock::now(&self.clock)
    }

    /// Drop keys back to a fresh state, if the last sweep is `min_gap` old.
    fn sweep(&self, map: &mut HashMap<K, Slot>, min_gap: Duration) {
        let now = self.now();
        let mut last = lock(&self.last_sweep);
        if now.saturating_sub(*last) < min_gap {
            return;
        }
        *last = now;
        map.retain(|_, slot| now.saturating_sub(slot.touched) < self.forget_after);
        map.shrink_to_fit();
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let now = self.now();
        let mut map = lock(&self.map);
        if let Some(slot) = map.get_mut(key) {
            let (out, tat) = f(Some(slot.tat))?;
            *slot = Slot { tat, touched: now };
            return Ok(out);
        }
        self.sweep(&mut map, Duration::from_secs(60));
        if map.len() >= self.max_keys {
            // Full: sweep now (at most once a second), then decide.
            self.sweep(&mut map, Duration::from_secs(1));
        }
        if map.len() >= self.max_keys {
            let mut shared = lock(&self.overflow);
            let (out, tat) = f(*shared)?;
            *shared = Some(tat);
            return Ok(out);
        }
        let (out, tat) = f(None)?;
        map.insert(key.clone(), Slot { tat, touched: now });
        Ok(out)
    }
}

/// A keyed limiter with a bounded number of keys.
struct Bounded<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, BoundedStore<K>, LimiterClock, NoOpMiddleware<Duration>>,
    clock: LimiterClock,
    /// The store's map, for its size and for refunds.
    map: Arc<Mutex<HashMap<K, Slot>>>,
    /// One attempt's share of the window (GCRA's emission interval).
    period: Nanos,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(rate: Rate, max_keys: usize, clock: LimiterClock) -> Self {
        let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
        let window = Duration::from_secs(rate.window_secs.max(1));
        let period = window / count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count);
        let store = BoundedStore::new(max_keys, window, clock.clone());
        let map = store.map.clone();
        Self {
            limiter: RateLimiter::new(quota, store, clock.clone()),
            clock,
            map,
            period: Nanos::from(quota.replenish_interval()),
        }
    }

    /// Give one attempt back to `key` (GCRA: its arrival time one interval earlier; an
    /// arrival time in the past is a full budget, so it never goes above one).
    fn refund(&self, key: &K) {
        if let Some(slot) = lock(&self.map).get_mut(key) {
            slot.tat = slot.tat.saturating_sub(self.period);
        }
    }

    /// Keys held now (swept ones are gone).
    fn len(&self) -> usize {
        lock(&self.map).len()
    }

    fn hit(&self, key: &K) -> Decision {
        match self.limiter.check_key(key) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => {
                let now = governor::clock::Clock::now(&self.clock);
                Decision::Limited(RetryAfter(not_until.wait_time_from(now)))
            }
        }
    }
}

/// The client networks that failed logins as one username lately, oldest first; at
/// most [`FAILING_NETWORKS_KEPT`] per username, and at most `max_keys` usernames.
struct FailingNetworks {
    map: Mutex<HashMap<String, Vec<(ClientNet, Duration)>>>,
    window: Duration,
    max_keys: usize,
    clock: LimiterClock,
}

/// Networks remembered per username: enough to tell a distributed attack (contract:
/// 5 networks) without letting one username grow without bound.
const FAILING_NETWORKS_KEPT: usize = 16;

impl FailingNetworks {
    fn count(&self, username: &str, failed: Option<ClientNet>) -> usize {
        let now = governor::clock::Clock::now(&self.clock);
        let recent = |at: &Duration| now.saturating_sub(*at) < self.window;
        let mut map = lock(&self.map);
        if let Some(net) = failed {
            if !map.contains_key(username) && map.len() >= self.max_keys {
                map.retain(|_, nets| nets.iter().any(|(_, at)| recent(at)));
            }
            if map.contains_key(username) || map.len() < self.max_keys {
                let nets = map.entry(username.to_owned()).or_default();
                nets.retain(|(n, at)| *n != net && recent(at));
                if nets.len() >= FAILING_NETWORKS_KEPT {
                    nets.remove(0);
                }
                nets.push((net, now));
            }
        }
        map.get(username)
            .map_or(0, |nets| nets.iter().filter(|(_, at)| recent(at)).count())
    }

    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Rate limits kept in this process.
pub struct MemoryLimiter {
    login_ip: Bounded<ClientNet>,
    login_user_net: Bounded<(String, ClientNet)>,
    login_user: Bounded<String>,
    login_device: Bounded<String>,
    refresh_ip: Bounded<ClientNet>,
    register_ip: Bounded<ClientNet>,
    password_session: Bounded<SessionId>,
    mail_recipient: Bounded<String>,
    mail_ip: Bounded<ClientNet>,
    mfa: Bounded<UserId>,
    mfa_device: Bounded<String>,
    mfa_session: Bounded<SessionId>,
    ceremony_ip: Bounded<ClientNet>,
    ceremony_owner: Bounded<String>,
    failing: FailingNetworks,
}

/// Live keys per kind before new ones share the overflow budget (~100 bytes each).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The rates of each kind of key.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub login: Rate,
    pub refresh: Rate,
    pub register: Rate,
    /// Mail to one address (verification, reset, magic link).
    pub mail: Rate,
    /// Mail asked for from one client network.
    pub mail_network: Rate,
    /// Second-factor codes tried for one account.
    pub mfa: Rate,
}

impl MemoryLimiter {
    /// Limits on `clock`'s time (the server's clock; tests pass their manual one).
    pub fn new(rates: Rates, max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        Self {
            login_ip: Bounded::new(rates.login, max_keys, clock.clone()),
            login_user_net: Bounded::new(rates.login, max_keys, clock.clone()),
            login_user: Bounded::new(rates.login, max_keys, clock.clone()),
            login_device: Bounded::new(rates.login, max_keys, clock.clone()),
            refresh_ip: Bounded::new(rates.refresh, max_keys, clock.clone()),
            register_ip: Bounded::new(rates.register, max_keys, clock.clone()),
            password_session: Bounded::new(rates.login, max_keys, clock.clone()),
            mail_recipient: Bounded::new(rates.mail, max_keys, clock.clone()),
            mail_ip: Bounded::new(rates.mail_network, max_keys, clock.clone()),
            mfa: Bounded::new(rates.mfa, max_keys, clock.clone()),
            mfa_device: Bounded::new(rates.mfa, max_keys, clock.clone()),
            mfa_session: Bounded::new(rates.mfa, max_keys, clock.clone()),
            ceremony_ip: Bounded::new(rates.refresh, max_keys, clock.clone()),
            ceremony_owner: Bounded::new(rates.refresh, max_keys, clock.clone()),
            failing: FailingNetworks {
                map: Mutex::new(HashMap::new()),
                window: Duration::from_secs(rates.login.window_secs.max(1)),
                max_keys,
                clock,
            },
        }
    }

    /// Keys held per kind, for `/metrics`: with `max_keys`, what bounds the memory.
    pub fn key_counts(&self) -> [(&'static str, usize); 15] {
        [
            ("login_ip", self.login_ip.len()),
            ("login_user_net", self.login_user_net.len()),
            ("login_user", self.login_user.len()),
            ("login_device", self.login_device.len()),
            ("login_failing_networks", self.failing.len()),
            ("refresh_ip", self.refresh_ip.len()),
            ("register_ip", self.register_ip.len()),
            ("password_session", self.password_session.len()),
            ("mail_recipient", self.mail_recipient.len()),
            ("mail_ip", self.mail_ip.len()),
            ("mfa", self.mfa.len()),
            ("mfa_device", self.mfa_device.len()),
            ("mfa_session", self.mfa_session.len()),
            ("ceremony_ip", self.ceremony_ip.len()),
            ("ceremony_owner", self.ceremony_owner.len()),
        ]
    }

    /// The decision for `key`; in memory, counting cannot fail.
    pub fn decide(&self, key: &LimitKey) -> Decision {
        match key {
            LimitKey::LoginIp(net) => self.login_ip.hit(net),
            LimitKey::LoginUserNet(name, net) => self.login_user_net.hit(&(name.clone(), *net)),
            LimitKey::LoginUser(name) => self.login_user.hit(name),
            LimitKey::LoginDevice(nonce) => self.login_device.hit(nonce),
            LimitKey::RefreshIp(net) => self.refresh_ip.hit(net),
            LimitKey::RegisterIp(net) => self.register_ip.hit(net),
            LimitKey::PasswordSession(id) => self.password_session.hit(id),
            LimitKey::MailRecipient(digest) => self.mail_recipient.hit(digest),
            LimitKey::MailIp(net) => self.mail_ip.hit(net),
            LimitKey::Mfa(user) => self.mfa.hit(user),
            LimitKey::MfaDevice(nonce) => self.mfa_device.hit(nonce),
            LimitKey::MfaSession(id) => self.mfa_session.hit(id),
            LimitKey::CeremonyIp(net) => self.ceremony_ip.hit(net),
            LimitKey::CeremonyOwner(owner) => self.ceremony_owner.hit(owner),
        }
    }

    /// Give one attempt back to `key`.
    pub fn give_back(&self, key: &LimitKey) {
        match key {
            LimitKey::LoginIp(net) => self.login_ip.refund(net),
            LimitKey::LoginUserNet(name, net) => self.login_user_net.refund(&(name.clone(), *net)),
            LimitKey::LoginUser(name) => self.login_user.refund(name),
            LimitKey::LoginDevice(nonce) => self.login_device.refund(nonce),
            LimitKey::RefreshIp(net) => self.refresh_ip.refund(net),
            LimitKey::RegisterIp(net) => self.register_ip.refund(net),
            LimitKey::PasswordSession(id) => self.password_session.refund(id),
            LimitKey::MailRecipient(digest) => self.mail_recipient.refund(digest),
            LimitKey::MailIp(net) => self.mail_ip.refund(net),
            LimitKey::Mfa(user) => self.mfa.refund(user),
            LimitKey::MfaDevice(nonce) => self.mfa_device.refund(nonce),
            LimitKey::MfaSession(id) => self.mfa_session.refund(id),
            LimitKey::CeremonyIp(net) => self.ceremony_ip.refund(net),
            LimitKey::CeremonyOwner(owner) => self.ceremony_owner.refund(owner),
        }
    }

    /// See [`Limiter::failing_networks`].
    pub fn networks_failing(&self, username: &str, failed: Option<ClientNet>) -> usize {
        self.failing.count(username, failed)
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn hit(&self, key: &LimitKey) -> Result<Decision, LimitError> {
        Ok(self.decide(key))
    }

    async fn refund(&self, key: &LimitKey) -> Result<(), LimitError> {
        self.give_back(key);
        Ok(())
    }

    async fn failing_networks(&self, username: &str, failed: Option<ClientNet>) -> Result<usize, LimitError> {
        Ok(self.networks_failing(username, failed))
    }

    fn keys_in_memory(&self) -> Vec<(&'static str, usize)> {
        self.key_counts().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TEN_PER_MINUTE: Rate = Rate {
        count: 10,
        window_secs: 60,
    };

    fn rates(r: Rate) -> Rates {
        Rates {
            login: r,
            refresh: r,
            register: r,
            mail: r,
            mail_network: r,
            mfa: r,
        }
    }

    fn manual() -> (ManualClock, LimiterClock) {
        let clock = ManualClock::new();
        (clock.clone(), LimiterClock(Arc::new(clock)))
    }

    #[test]
    fn burst_then_limited_then_back_as_the_clock_moves() {
        let clock = ManualClock::new();
        let l = MemoryLimiter::new(rates(TEN_PER_MINUTE), 1000, Arc::new(clock.clone()));
        let key = LimitKey::LoginUser("alzy".into());
        for _ in 0..10 {
            assert_eq!(l.decide(&key), Decision::Allowed);
        }
        let Decision::Limited(retry) = l.decide(&key) else {
            panic!("the 11th attempt in a minute is limited")
        };
        // One attempt comes back every 6 s under 10/1m.
        assert_eq!(retry.secs(), 6);
        // Keys are independent.
        assert_eq!(l.decide(&LimitKey::LoginUser("other".into())), Decision::Allowed);
        let ip = ClientNet::of([127, 0, 0, 1].into());
        assert_eq!(l.decide(&LimitKey::LoginIp(ip)), Decision::Allowed);
        // Six seconds later, one more attempt; a minute later, the whole burst.
        clock.advance(6);
        assert_eq!(l.decide(&key), Decision::Allowed);
        assert!(matches!(l.decide(&key), Decision::Limited(_)));
        clock.advance(60);
        for _ in 0..10 {
            assert_eq!(l.decide(&key), Decision::Allowed);
        }
    }

    #[test]
    fn keys_are_bounded() {
        let b = Bounded::new(TEN_PER_MINUTE, 100, manual().1);
        for i in 0..1000 {
            let _ = b.hit(&format!("user{i}"));
        }
        assert!(b.len() <= 100, "{}", b.len());
    }

    #[test]
    fn a_full_map_throttles_only_new_keys() {
        let (clock, limiter_clock) = manual();
        let two_a_minute = Rate {
            count: 2,
            window_secs: 60,
        };
        let b = Bounded::new(two_a_minute, 3, limiter_clock);
        let allowed = |k: &str| b.hit(&k.to_owned()) == Decision::Allowed;
        for k in ["a", "b", "c"] {
            assert!(allowed(k));
        }
        // The map is full. Newcomers share one budget of 2...
        assert!(allowed("new1"));
        assert!(allowed("new2"));
        assert!(!allowed("new3"));
        // ...while every key already counted keeps its own.
        for k in ["a", "b", "c"] {
            assert!(allowed(k), "{k}");
            assert!(!allowed(k), "{k}");
        }
        // A window later the old keys are swept out and newcomers get their own again.
        clock.advance(61);
        assert!(allowed("new3"));
        assert!(allowed("new3"));
        assert!(!allowed("new3"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(5001)).secs(), 6);
        assert_eq!(RetryAfter(Duration::from_secs(6)).secs(), 6);
    }
}
