//! Whether the database answers, as the layer that watches every call sees it. Once a
//! call has failed for want of the database and a short ping confirms it, every call
//! fails at once (503) instead of waiting out the pool's timeout, and `/readyz` answers
//! from this state within its probe's timeout, until a background ping sees the
//! database back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Store, StoreError};
use crate::metrics::DATABASE_UP;

/// A readiness ping slower than this counts as no answer: well inside an orchestrator's
/// default 1 s probe timeout.
pub const PING_TIMEOUT: Duration = Duration::from_millis(800);
/// The check that decides "down" opens a connection of its own (outside the pool, so
/// that a busy pool or a long lock is not taken for an outage) and may take this long.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the background check pings while the database is down.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    /// A check is running (at most one at a time).
    checking: AtomicBool,
}

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// What a call gets while the database is known down.
    pub fn refusal() -> StoreError {
        StoreError::Unavailable("the database is unreachable (failing fast until it answers again)".into())
    }

    /// One ping of `store`, bounded by [`PING_TIMEOUT`].
    pub async fn ping(store: &dyn Store) -> Result<(), StoreError> {
        match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer a ping within {} ms",
                PING_TIMEOUT.as_millis()
            ))),
        }
    }

    /// A call failed as if the database were gone: confirm in the background with a
    /// connection of its own and, if the database does not answer it, fail fast until
    /// it does again.
    pub fn suspect(self: &Arc<Self>, store: &Arc<dyn Store>) {
        if self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let (health, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            while let Err(e) = store.reachable(CONFIRM_TIMEOUT).await {
                if !health.down.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "database unreachable: answering 503 at once until it is back");
                    metrics::gauge!(DATABASE_UP).set(0.0);
                }
                tokio::time::sleep(RECHECK_EVERY).await;
            }
            if health.down.swap(false, Ordering::AcqRel) {
                tracing::info!("database reachable again");
                metrics::gauge!(DATABASE_UP).set(1.0);
            }
            health.checking.store(false, Ordering::Release);
        });
    }
}
