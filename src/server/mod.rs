//! Start-up and shutdown: open the store, load keys, build the service, serve.

mod error;
mod jobs;
pub mod listen;
mod purpose;
mod secrets;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Settings;
use crate::http::AppState;
use crate::http::ConnectionLimits;

pub use crate::auth::keys::{SERVER_SECRETS, server_secret_context};
pub use error::StartError;
pub use purpose::Purpose;
pub use secrets::{hs256_secret_file, key_config, secret_path, signing_algorithm, start_error, vault};
pub use wire::{OpenMode, absolute, app_state, build_auth, build_state, open_store};

/// Serve `state` on `listener` until `shutdown` resolves, then finish in-flight
/// requests for up to 10 seconds, under `limits` (see [`listen::serve_with`]).
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let exempt = state.trusted_proxies.clone();
    let app = crate::http::app(state, Duration::from_secs(limits.request_timeout_secs));
    listen::serve_with(listener, app, limits, exempt, shutdown).await
}

/// `tokengate serve`.
pub async fn serve(mut settings: Settings, clock: Arc<dyn Clock>) -> Result<(), StartError> {
    let listener = TcpListener::bind(settings.http.bind).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another process listens there: stop it, or choose another address with TOKENGATE_BIND)"
        } else {
            ""
        };
        StartError::Runtime(format!(
            "cannot listen on {} (TOKENGATE_BIND): {e}{hint}",
            settings.http.bind
        ))
    })?;
    let addr = listener.local_addr().map_err(|e| StartError::Runtime(e.to_string()))?;
    // Port 0 picks one: URLs we emit name the one we got.
    settings.http.bind = addr;
    let state = build_state(&settings, clock.clone()).await?;
    let shutdown = shutdown_signal();
    // Both addresses listen before the log says so.
    let metrics = match settings.http.metrics_bind {
        Some(bind) => Some(serve_metrics(bind, state.clone()).await?),
        None => None,
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), address = %addr, "tokengate {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    let auth = state.auth.clone();
    let purge = tokio::spawn(jobs::purge_loop(auth.clone(), settings.tokens.refresh_ttl_secs));
    let reload = tokio::spawn(jobs::reload_loop(auth.clone()));
    let mail = tokio::spawn(auth.mail_service().run());
    serve_on(listener, state, settings.http.connections, shutdown)
        .await
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    purge.abort();
    reload.abort();
    mail.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    auth.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `/metrics` alone on its own address (`TOKENGATE_METRICS_BIND`).
async fn serve_metrics(bind: std::net::SocketAddr, state: AppState) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| StartError::Runtime(format!("cannot listen on {bind} (TOKENGATE_METRICS_BIND): {e}")))?;
    tracing::info!(address = %bind, "metrics on http://{bind}/metrics");
    let app = crate::http::metrics_router(state);
    // A scraper needs few connections: a small cap of its own, so idle connections
    // there can never take the file descriptors the main address needs.
    let limits = ConnectionLimits {
        header_timeout_secs: 10,
        request_timeout_secs: 10,
        max_connections: 32,
        max_connections_per_client: 8,
        ..ConnectionLimits::default()
    };
    let app = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .service(app);
    Ok(tokio::spawn(async move {
        if let Err(e) = listen::serve_with(listener, app, limits, Arc::from([]), std::future::pending()).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// SIGTERM or Ctrl-C. The handlers are installed now, before the server says it is
/// listening, so a signal sent right after that line is never the default (a kill).
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
