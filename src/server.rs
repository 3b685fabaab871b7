//! Start-up and shutdown: open the store, load keys, build the service, serve.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::AuthService;
use crate::auth::keys::{Ensured, KeyAdminError, KeyMode, ensure_active_key, load_ring};
use crate::clock::Clock;
use crate::config::{ConfigError, DatabaseUrl, Settings, SigningAlgorithm};
use crate::crypto::keys::{KeyRing, SecretSource, load_or_create_secret};
use crate::crypto::passwords::PasswordHasher;
use crate::crypto::tokens::AccessTokens;
use crate::domain::Secret;
use crate::http::AppState;
use crate::state::memory::MemoryLimiter;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Why the server (or a command) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Fix the named variable; exit code 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

/// Open the configured database and bring its schema up to date.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    let store: Arc<dyn Store> = match &settings.database_url {
        DatabaseUrl::Sqlite { path } => {
            let s = SqliteStore::open(path)
                .await
                .map_err(|e| StartError::Runtime(format!("cannot open {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "database: embedded SQLite");
            Arc::new(s)
        }
        DatabaseUrl::Postgres(_) => {
            return Err(ConfigError::new(
                "TOKENGATE_DATABASE_URL",
                "PostgreSQL is not supported by this version yet; use sqlite://FILE",
            )
            .into());
        }
    };
    store
        .migrate()
        .await
        .map_err(|e| StartError::Runtime(format!("migration failed: {e}")))?;
    Ok(store)
}

/// The HS256 secret: configured, or kept in a file beside the SQLite database.
fn signing_secret(settings: &Settings) -> Result<Secret, StartError> {
    if let Some(s) = &settings.secret_key {
        tracing::info!("signing key: HS256 secret from TOKENGATE_SECRET_KEY");
        return Ok(s.clone());
    }
    let DatabaseUrl::Sqlite { path } = &settings.database_url else {
        return Err(ConfigError::new(
            "TOKENGATE_SECRET_KEY",
            "must be set with a shared database (every instance needs the same key)",
        )
        .into());
    };
    let file = secret_path(path);
    let (secret, source) = load_or_create_secret(&file).map_err(StartError::Runtime)?;
    match source {
        SecretSource::Generated => {
            tracing::info!(path = %file.display(), "signing key: generated a new HS256 secret (mode 0600)")
        }
        SecretSource::Loaded => {
            tracing::info!(path = %file.display(), "signing key: HS256 secret loaded")
        }
    }
    Ok(secret)
}

/// `tokengate.db` keeps its secret in `tokengate.secret`.
pub fn secret_path(db: &std::path::Path) -> PathBuf {
    db.with_extension("secret")
}

/// The key ring and where it comes from: the HS256 secret, or keys in the store
/// (generated at first start, shared by every instance).
async fn signing_keys(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<(KeyRing, KeyMode), StartError> {
    if settings.algorithm == SigningAlgorithm::Hs256 {
        let secret = signing_secret(settings)?;
        return Ok((KeyRing::hs256(&secret, &settings.previous_secret_keys), KeyMode::Hs256));
    }
    let runtime = |e: KeyAdminError| StartError::Runtime(e.to_string());
    let now = clock.now();
    match ensure_active_key(store.as_ref(), settings.algorithm, settings.access_ttl_secs, now)
        .await
        .map_err(runtime)?
    {
        Ensured::Generated(kid) => {
            tracing::info!(%kid, "signing key: generated a new {:?} key (kept in the database)", settings.algorithm)
        }
        Ensured::Rotated(kid) => {
            tracing::info!(%kid, "signing key: algorithm changed; new active key, the old one retired")
        }
        Ensured::Existing(_) => tracing::info!("signing key: {:?} keys loaded from the database", settings.algorithm),
    }
    let ring = load_ring(store.as_ref(), now, &settings.previous_secret_keys)
        .await
        .map_err(runtime)?;
    let mode = KeyMode::Stored {
        algorithm: settings.algorithm,
        hs256_previous: settings.previous_secret_keys.clone(),
    };
    Ok((ring, mode))
}

/// Everything the routes need, from validated settings.
pub async fn build_state(settings: &Settings, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    if settings.redis_url.is_some() {
        tracing::warn!("TOKENGATE_REDIS_URL is set but not used by this version yet");
    }
    let store = open_store(settings).await?;
    let (keys, key_mode) = signing_keys(settings, &store, &clock).await?;
    let tokens = AccessTokens::new(
        keys,
        settings.issuer.clone(),
        settings.audience.clone(),
        settings.access_ttl_secs,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hasher = PasswordHasher::new(settings.argon2, cores)
        .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_ARGON2_MEMORY_KIB", e.to_string())))?;
    let limiter = Arc::new(MemoryLimiter::new(
        settings.login_rate,
        settings.refresh_rate,
        crate::state::memory::DEFAULT_MAX_KEYS,
    ));
    let auth = AuthService::new(
        store,
        hasher,
        tokens,
        limiter,
        clock,
        settings.refresh_ttl_secs,
        key_mode,
    );
    if !settings.cookie_secure {
        tracing::warn!(
            "TOKENGATE_COOKIE_SECURE=false: cookies lack the Secure attribute; use this only for plain-HTTP local development"
        );
    }
    let cors_origins = settings
        .cors_origins
        .iter()
        .filter_map(|o| axum::http::HeaderValue::from_str(o).ok())
        .collect::<Vec<_>>();
    Ok(AppState {
        auth: Arc::new(auth),
        trusted_proxies: settings.trusted_proxies.clone().into(),
        cookies: crate::http::cookies::CookiePolicy {
            secure: settings.cookie_secure,
            access_ttl_secs: settings.access_ttl_secs,
            refresh_ttl_secs: settings.refresh_ttl_secs,
        },
        cors_origins: cors_origins.into(),
    })
}

/// Serve `state` on `listener` until `shutdown` resolves, then finish in-flight
/// requests for up to 10 seconds.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = crate::http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut server = Box::pin(server.into_future());
    let mut stop_rx = stop_rx;
    tokio::select! {
        res = &mut server => return res,
        _ = stop_rx.wait_for(|stop| *stop) => {}
    }
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!("in-flight requests still running after 10 s; stopping anyway");
            Ok(())
        }
    }
}

/// `tokengate serve`.
pub async fn serve(settings: Settings, clock: Arc<dyn Clock>) -> Result<(), StartError> {
    let state = build_state(&settings, clock.clone()).await?;
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind(settings.bind)
        .await
        .map_err(|e| StartError::Runtime(format!("cannot listen on {}: {e}", settings.bind)))?;
    let addr = listener.local_addr().map_err(|e| StartError::Runtime(e.to_string()))?;
    tracing::info!(address = %addr, "listening on http://{addr}");
    let store = state.auth.store().clone();
    let purge = tokio::spawn(purge_loop(store.clone(), clock, settings.refresh_ttl_secs));
    let reload = tokio::spawn(reload_loop(state.auth.clone()));
    serve_on(listener, state, shutdown)
        .await
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    purge.abort();
    reload.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Re-read the signing keys every few seconds: a `keys rotate` run anywhere applies
/// here without a restart.
async fn reload_loop(auth: Arc<AuthService>) {
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
async fn purge_loop(store: Arc<dyn Store>, clock: Arc<dyn Clock>, grace_secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cutoff = crate::domain::UnixTime(clock.now().0 - i64::try_from(grace_secs).unwrap_or(0));
        match store.purge_expired(cutoff).await {
            Ok(n) if n > 0 => {
                tracing::info!(rows = n, "purged expired sessions and refresh tokens")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
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
