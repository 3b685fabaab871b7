//! Rate limits shared by every instance, counted in Redis: one GCRA step per attempt,
//! done atomically by a Lua script on the server (never read-then-write), under keys
//! that expire by themselves and start with the configured prefix.
//!
//! Redis is a cache of counters, not a source of truth: while it cannot be reached,
//! each instance counts in its own memory (the log says so once), and requests go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use async_trait::async_trait;

use super::memory::{MemoryLimiter, Rates};
use super::{Decision, LimitError, LimitKey, Limiter, Rate, RetryAfter};
use crate::clock::Clock;

/// One GCRA step. KEYS[1]: the counter. ARGV: now (ms), the emission interval (ms),
/// the burst. The stored value is the "theoretical arrival time"; returns 0 when the
/// attempt is allowed, else the milliseconds until one would be.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - interval * (burst - 1)
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return 0
";

/// How long one Redis call may take before the attempt is counted locally instead.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

pub struct RedisLimiter {
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    prefix: String,
    rates: Rates,
    script: ::redis::Script,
    clock: Arc<dyn Clock>,
    /// Counts while Redis cannot be reached.
    fallback: MemoryLimiter,
    degraded: AtomicBool,
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
            script: ::redis::Script::new(GCRA),
            clock: clock.clone(),
            fallback: MemoryLimiter::new(rates, max_keys, clock),
            degraded: AtomicBool::new(false),
        });
        match manager(client.clone()).await {
            Ok(m) => limiter.install(m),
            Err(e) => {
                limiter.mark_degraded(&e.to_string());
                tokio::spawn(reconnect(client, Arc::downgrade(&limiter)));
            }
        }
        Ok(limiter)
    }

    fn install(&self, m: ConnectionManager) {
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(m);
        }
    }

    fn manager(&self) -> Option<ConnectionManager> {
        self.conn.read().ok().and_then(|c| c.clone())
    }

    fn mark_degraded(&self, why: &str) {
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
            LimitKey::LoginUser(name) => (format!("{p}rl:login-user:{name}"), self.rates.login),
            LimitKey::LoginDevice(nonce) => (format!("{p}rl:login-device:{nonce}"), self.rates.login),
            LimitKey::RefreshIp(net) => (format!("{p}rl:refresh-ip:{}", net.as_ip()), self.rates.refresh),
            LimitKey::RegisterIp(net) => (format!("{p}rl:register-ip:{}", net.as_ip()), self.rates.register),
        }
    }

    async fn count(&self, mut m: ConnectionManager, key: &LimitKey) -> ::redis::RedisResult<Decision> {
        let (name, rate) = self.key_and_rate(key);
        let burst = rate.count.max(1);
        let interval_ms = (rate.window_secs.max(1) * 1000).div_ceil(u64::from(burst));
        let now_ms = u64::try_from(self.clock.now_precise().as_millis()).unwrap_or(u64::MAX);
        let wait_ms: u64 = self
            .script
            .key(name)
            .arg(now_ms)
            .arg(interval_ms)
            .arg(burst)
            .invoke_async(&mut m)
            .await?;
        Ok(if wait_ms == 0 {
            Decision::Allowed
        } else {
            Decision::Limited(RetryAfter(Duration::from_millis(wait_ms)))
        })
    }
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
        if let Some(m) = self.manager() {
            match self.count(m, key).await {
                Ok(decision) => {
                    self.mark_healthy();
                    return Ok(decision);
                }
                Err(e) => self.mark_degraded(&e.to_string()),
            }
        }
        Ok(self.fallback.decide(key))
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
