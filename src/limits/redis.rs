//! Rate limits shared by every instance, counted in Redis: one GCRA step per attempt,
//! done atomically by a Lua script on the server (never read-then-write), under keys
//! that expire by themselves and start with the configured prefix.
//!
//! Redis is a cache of counters, not a source of truth: while it cannot be reached,
//! each instance counts in its own memory (the log says so once), and requests go on.
//! A call that fails or times out opens a breaker: for [`BACKOFF`] every attempt is
//! counted in memory at once, so a hung Redis costs one timeout, not one per request.
//!
//! Time comes from Redis (`TIME`), never from the instance: instances whose clocks
//! disagree still agree on every budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use async_trait::async_trait;

use super::memory::{MemoryLimiter, Rates};
use super::{ClientNet, Decision, LimitError, LimitKey, Limiter, Rate, RetryAfter};
use crate::clock::Clock;

/// One GCRA step. KEYS[1]: the counter. ARGV: the emission interval (ms), the burst.
/// The stored value is the "theoretical arrival time" on Redis's clock; returns 0 when
/// the attempt is allowed, else the milliseconds until one would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - interval * (burst - 1)
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return 0
";

/// Give one attempt back (GCRA: the arrival time one interval earlier; a time in the
/// past is a full budget, so the key goes). KEYS[1]: the counter. ARGV: the interval (ms).
const REFUND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
end
return 0
";

/// The distinct networks that failed against a username within the window: a sorted
/// set of network -> time of its last failure. KEYS[1]: the set. ARGV: the window (ms),
/// the failing network or '' (only count).
const FAILING_NETWORKS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], window)
end
return redis.call('ZCARD', KEYS[1])
";

/// How long one Redis call may take before the attempt is counted locally instead.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// After a failed call, how long attempts are counted in memory without asking Redis.
pub const BACKOFF: Duration = Duration::from_secs(5);

pub struct RedisLimiter {
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    prefix: String,
    rates: Rates,
    gcra: ::redis::Script,
    refund: ::redis::Script,
    failing: ::redis::Script,
    /// Counts while Redis cannot be reached.
    fallback: MemoryLimiter,
    degraded: AtomicBool,
    /// The breaker: Redis is not asked before this many ms after `started`.
    skip_until_ms: AtomicU64,
    started: Instant,
}

impl RedisLimiter {
    /// Connect to `url` (or keep trying in the background while it is down).
    pub async fn connect(
        url: &str,
        prefix: String,
        rates: Rates,
        max_keys: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, LimitError> {
        let client = ::redis::Client::open(url).map_err(|e| LimitError(e.to_string()))?;
        let limiter = Arc::new(Self {
            conn: Arc::new(RwLock::new(None)),
            prefix,
            rates,
            gcra: ::redis::Script::new(GCRA),
            refund: ::redis::Script::new(REFUND),
            failing: ::redis::Script::new(FAILING_NETWORKS),
            fallback: MemoryLimiter::new(rates, max_keys, clock),
            degraded: AtomicBool::new(false),
            skip_until_ms: AtomicU64::new(0),
            started: Instant::now(),
        });
        // One real call at start: what fails here for want of a connection is an outage
        // (serve degraded, reconnect); anything else (a wrong password or database
        // index, an ACL without the commands we run) is configuration, and no
        // reconnect would mend it.
        let probe = match manager(client.clone()).await {
            Ok(mut m) => {
                // The failing-networks script with no member only reads (an empty key).
                let mut call = limiter.failing.key(format!("{}rl:probe", limiter.prefix));
                call.arg(1).arg("");
                call.invoke_async::<u64>(&mut m).await.map(|_| m)
            }
            Err(e) => Err(e),
        };
        match probe {
            Ok(m) => limiter.install(m),
            Err(e) if is_outage(&e) => {
                limiter.mark_degraded(&e.to_string());
                tokio::spawn(reconnect(client, Arc::downgrade(&limiter)));
            }
            Err(e) => {
                return Err(LimitError(format!(
                    "Redis refused what this URL asks (not an outage): {e}"
                )));
            }
        }
        Ok(limiter)
    }

    fn install(&self, m: ConnectionManager) {
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(m);
        }
    }

    /// The connection to ask, unless there is none or the breaker is open.
    fn manager(&self) -> Option<ConnectionManager> {
        if self.elapsed_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        self.conn.read().ok().and_then(|c| c.clone())
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_degraded(&self, why: &str) {
        let backoff = u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
        self.skip_until_ms
            .store(self.elapsed_ms().saturating_add(backoff), Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %why, "Redis unreachable: rate limits are counted per instance until it is back");
        }
    }

    fn mark_healthy(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis reachable again: rate limits are shared again");
        }
    }

    fn key_and_rate(&self, key: &LimitKey) -> (String, Rate) {
        let p = &self.prefix;
        match key {
            LimitKey::LoginIp(net) => (format!("{p}rl:login-ip:{}", net.as_ip()), self.rates.login),
            LimitKey::LoginUserNet(name, net) => {
                (format!("{p}rl:login-user-net:{}:{name}", net.as_ip()), self.rates.login)
            }
            LimitKey::LoginUser(name) => (format!("{p}rl:login-user:{name}"), self.rates.login),
            LimitKey::LoginDevice(nonce) => (format!("{p}rl:login-device:{nonce}"), self.rates.login),
            LimitKey::RefreshIp(net) => (format!("{p}rl:refresh-ip:{}", net.as_ip()), self.rates.refresh),
            LimitKey::RegisterIp(net) => (format!("{p}rl:register-ip:{}", net.as_ip()), self.rates.register),
            LimitKey::PasswordSession(id) => (format!("{p}rl:password-session:{id}"), self.rates.login),
            LimitKey::MailRecipient(digest) => (format!("{p}rl:mail-recipient:{digest}"), self.rates.mail),
            LimitKey::MailIp(net) => (format!("{p}rl:mail-ip:{}", net.as_ip()), self.rates.mail_network),
            LimitKey::Mfa(user) => (format!("{p}rl:mfa:{user}"), self.rates.mfa),
            LimitKey::MfaDevice(nonce) => (format!("{p}rl:mfa-device:{nonce}"), self.rates.mfa),
            LimitKey::MfaSession(id) => (format!("{p}rl:mfa-session:{id}"), self.rates.mfa),
            LimitKey::CeremonyIp(net) => (format!("{p}rl:ceremony-ip:{}", net.as_ip()), self.rates.refresh),
            LimitKey::CeremonyOwner(owner) => (format!("{p}rl:ceremony-owner:{owner}"), self.rates.refresh),
        }
    }

    /// Run `call` in Redis, unless the breaker is open; `None` when it is or the call
    /// fails (the caller then counts in memory).
    async fn in_redis<T: ::redis::FromRedisValue>(&self, call: &::redis::ScriptInvocation<'_>) -> Option<T> {
        let mut m = self.manager()?;
        match call.invoke_async(&mut m).await {
            Ok(v) => {
                self.mark_healthy();
                Some(v)
            }
            Err(e) => {
                self.mark_degraded(&e.to_string());
                None
            }
        }
    }
}

/// GCRA's emission interval: one attempt's share of the window, in ms.
fn interval_ms(rate: Rate) -> u64 {
    (rate.window_secs.max(1) * 1000).div_ceil(u64::from(rate.count.max(1)))
}

/// A connection manager that gives up on a call quickly (then we count locally).
async fn manager(client: ::redis::Client) -> ::redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(RESPONSE_TIMEOUT)
        .set_number_of_retries(1)
        .set_max_delay(500);
    ConnectionManager::new_with_config(client, config).await
}

/// Whether an error means Redis could not be reached or is briefly busy (an outage:
/// degrade and retry) rather than that it refuses what we are configured to do.
fn is_outage(e: &::redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY" | "OOM")
        )
        // A full server (or a replica during a failover) is load, not configuration.
        || e.to_string().contains("max number of clients")
}

/// Redis was down at start: try again every 2 s until it answers (the manager then
/// reconnects by itself).
async fn reconnect(client: ::redis::Client, limiter: std::sync::Weak<RedisLimiter>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(l) = limiter.upgrade() else { return };
        if let Ok(m) = manager(client.clone()).await {
            l.install(m);
            l.mark_healthy();
            return;
        }
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn hit(&self, key: &LimitKey) -> Result<Decision, LimitError> {
        let (name, rate) = self.key_and_rate(key);
        let mut call = self.gcra.key(name);
        call.arg(interval_ms(rate)).arg(rate.count.max(1));
        Ok(match self.in_redis::<u64>(&call).await {
            Some(0) => Decision::Allowed,
            Some(wait_ms) => Decision::Limited(RetryAfter(Duration::from_millis(wait_ms))),
            None => self.fallback.decide(key),
        })
    }

    async fn refund(&self, key: &LimitKey) -> Result<(), LimitError> {
        let (name, rate) = self.key_and_rate(key);
        let mut call = self.refund.key(name);
        call.arg(interval_ms(rate));
        if self.in_redis::<u64>(&call).await.is_none() {
            self.fallback.give_back(key);
        }
        Ok(())
    }

    async fn failing_networks(&self, username: &str, failed: Option<ClientNet>) -> Result<usize, LimitError> {
        let mut call = self
            .failing
            .key(format!("{}rl:login-failing-nets:{username}", self.prefix));
        call.arg(self.rates.login.window_secs.max(1) * 1000)
            .arg(failed.map(|n| n.as_ip().to_string()).unwrap_or_default());
        Ok(match self.in_redis(&call).await {
            Some(n) => n,
            None => self.fallback.networks_failing(username, failed),
        })
    }

    /// The in-process fallback's keys: counted while Redis is unreachable.
    fn keys_in_memory(&self) -> Vec<(&'static str, usize)> {
        self.fallback.key_counts().to_vec()
    }

    fn health(&self) -> Option<&'static str> {
        Some(if self.degraded.load(Ordering::Relaxed) {
            "degraded"
        } else {
            "ok"
        })
    }
}
