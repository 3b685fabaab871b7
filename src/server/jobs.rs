//! What a serving instance does besides answering: picking up key changes made
//! elsewhere, and purging what expired.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::AuthService;

/// Re-read the signing keys every few seconds: a `keys rotate` run anywhere applies
/// here without a restart.
pub(super) async fn reload_loop(auth: Arc<AuthService>) {
    let mut tick = tokio::time::interval(Duration::from_secs(crate::auth::keys::KEY_RELOAD_SECS));
    loop {
        tick.tick().await;
        if let Err(e) = auth.reload_keys().await {
            tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
        }
    }
}

/// Hourly: drop refresh tokens and sessions long expired (kept one refresh lifetime
/// past expiry so late reuse of a stolen token is still recognised).
/// Hourly: what expired goes (`AuthService::purge_expired` says what).
pub(super) async fn purge_loop(auth: Arc<AuthService>, grace_secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match auth.purge_expired(grace_secs).await {
            Ok(n) if n > 0 => {
                tracing::info!(rows = n, "purged expired sessions and refresh tokens")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
}
