//! Revocation push: when this instance revokes something, it says so on a Redis
//! pub/sub channel, and every instance that hears it reads the revocation log at once
//! instead of at its next tick. Only a hint: pub/sub delivers at most once, so the log
//! (read on a timer anyway) stays the source of truth, and a lost message costs at
//! most one tick.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use futures_util::StreamExt as _;

use crate::store::cache::{CachedStore, RevocationSignal};

/// The channel, under the deployment's key prefix.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}revocations")
}

/// Publishes "something was revoked" and nudges the local cache on every such message.
pub struct RedisFanout {
    client: ::redis::Client,
    channel: String,
    publisher: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl RedisFanout {
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, ::redis::RedisError> {
        Ok(Arc::new(Self {
            client: ::redis::Client::open(url)?,
            channel: channel(prefix),
            publisher: tokio::sync::Mutex::new(None),
        }))
    }

    /// Listen for the other instances' messages for as long as `cache` lives,
    /// resubscribing after every disconnect.
    pub fn listen(self: &Arc<Self>, cache: Weak<CachedStore>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if cache.strong_count() == 0 {
                    return;
                }
                if let Ok(mut pubsub) = this.client.get_async_pubsub().await
                    && pubsub.subscribe(&this.channel).await.is_ok()
                {
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        match cache.upgrade() {
                            Some(c) => c.nudge(),
                            None => return,
                        }
                    }
                }
                // Down or disconnected: the timer keeps the cache correct meanwhile.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn publish(&self) -> ::redis::RedisResult<()> {
        let mut slot = self.publisher.lock().await;
        if slot.is_none() {
            let config = ::redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(1))
                .set_response_timeout(Duration::from_millis(250))
                .set_number_of_retries(1);
            *slot = Some(ConnectionManager::new_with_config(self.client.clone(), config).await?);
        }
        if let Some(conn) = slot.as_mut() {
            let _: i64 = ::redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg("1")
                .query_async(conn)
                .await?;
        }
        Ok(())
    }
}

impl RevocationSignal for RedisFanout {
    fn announce(self: Arc<Self>) {
        // Never on the request's path: a slow Redis must not slow a logout.
        tokio::spawn(async move {
            if let Err(e) = self.publish().await {
                tracing::debug!(error = %e, "revocation push not sent; other instances catch up on their timer");
            }
        });
    }
}
