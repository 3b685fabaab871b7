//! A layer over any `Store` that times each operation into
//! `tokengate_store_operation_duration_seconds{op}`, counts failures, and traces each
//! as a `db.<op>` span. It sits below the cache, so it measures what reaches the
//! database, and it is where an unreachable database is noticed: while it is known
//! down ([`Health`]), every call fails at once.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument as _;

use futures_util::future::BoxFuture;

use super::health::Health;
use super::layer::Over;
use super::{Lifecycle, PoolStats, Store, StoreError};
use crate::domain::UnixTime;
use crate::metrics::{DATABASE_UP, STORE_DURATION, STORE_ERRORS};

pub struct MeteredStore {
    inner: Arc<dyn Store>,
    health: Arc<Health>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        metrics::gauge!(DATABASE_UP).set(1.0);
        Self {
            inner,
            health: Arc::default(),
        }
    }

    /// After a failed call: a lost database is confirmed in the background.
    fn watch<T>(&self, out: &Result<T, StoreError>) {
        if matches!(out, Err(StoreError::Unavailable(_))) {
            self.health.suspect(&self.inner);
        }
    }
}

fn observe(op: &'static str, started: Instant, failed: bool) {
    metrics::histogram!(STORE_DURATION, "op" => op).record(started.elapsed().as_secs_f64());
    if failed {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// Every data role passes through here: refused at once while the database is known
/// down, else timed under the method's name, traced as `db.<op>`, and watched.
impl<R> Over<R> for MeteredStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }

    fn around<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        call: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            if self.health.is_down() {
                return Err(Health::refusal());
            }
            let started = Instant::now();
            let span = tracing::debug_span!("db", otel.name = %format_args!("db.{op}"), db.operation.name = op);
            let out = call.instrument(span).await;
            observe(op, started, out.is_err());
            self.watch(&out);
            out
        })
    }
}

#[async_trait]
impl Lifecycle for MeteredStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let inner = self.inner.as_ref();
        Over::<()>::around(self, "migrate", Box::pin(inner.migrate())).await
    }

    /// Readiness: the known state while down, else one ping bounded by
    /// [`super::health::PING_TIMEOUT`].
    async fn ping(&self) -> Result<(), StoreError> {
        if self.health.is_down() {
            return Err(Health::refusal());
        }
        let out = Health::ping(self.inner.as_ref()).await;
        self.watch(&out);
        out
    }

    async fn reachable(&self, within: std::time::Duration) -> Result<(), StoreError> {
        self.inner.reachable(within).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pool_stats()
    }

    fn cache_trusted(&self) -> Option<bool> {
        self.inner.cache_trusted()
    }

    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let inner = self.inner.as_ref();
        Over::<()>::around(self, "purge_expired", Box::pin(inner.purge_expired(cutoff))).await
    }
}
