//! Start-up and shutdown: open the store, load keys, build the service, serve.

pub mod listen;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::keys::{
    Ensured, KeyAdminError, KeyMode, KeyStore, ResolveError, ensure_active_key, load_ring, resolve_algorithm,
};
use crate::auth::{AuthParts, AuthService, ServerMacs, SessionPolicy};
use crate::clock::Clock;
use crate::config::{ConfigError, Settings};
use crate::crypto::at_rest::{EncryptionKey, Vault};
use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::keys::{KeyRing, SecretSource, load_or_create_secret};
use crate::crypto::mac::MacKey;
use crate::crypto::passwords::PasswordHasher;
use crate::crypto::tokens::AccessTokens;
use crate::domain::Secret;
use crate::fanout::RedisFanout;
use crate::http::AppState;
use crate::http::ConnectionLimits;
use crate::limits::Limiter;
use crate::limits::memory::{MemoryLimiter, Rates};
use crate::limits::redis::RedisLimiter;
use crate::store::DatabaseUrl;
use crate::store::Store;
use crate::store::cache::CachedStore;
use crate::store::metered::MeteredStore;

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

/// Whether opening a database may create it. Only `serve` and `migrate` may: an
/// operator command pointed at the wrong directory must not make an empty database
/// and report "no such user".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// Whom the state is built for. An operator command (`user ...`) signs no token and
/// counts no rate: it needs no signing secret, no rate-limit store, and prints none of
/// the server's warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Operate,
}

/// An absolute form of `path` for logs and messages (as given if that fails).
pub fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Open the configured database and bring its schema up to date.
pub async fn open_store(settings: &Settings, mode: OpenMode) -> Result<Arc<dyn Store>, StartError> {
    let described = settings.store.database_url.describe();
    if let DatabaseUrl::Sqlite { path } = &settings.store.database_url
        && mode == OpenMode::MustExist
        && !path.exists()
    {
        return Err(StartError::Runtime(format!(
            "no database at {}; run this where `tokengate serve` runs, or point TOKENGATE_DATABASE_URL \
             (or --database-url) at its file",
            absolute(path).display()
        )));
    }
    let store = crate::store::open(&settings.store)
        .await
        .map_err(|e| StartError::Runtime(format!("cannot open the database ({described}): {e}")))?;
    tracing::info!("database: {described}");
    Ok(store)
}

/// The encryption keys of the configuration, ready to seal and open.
pub fn vault(settings: &Settings) -> Result<Vault, StartError> {
    let key = |var: &'static str, s: &Secret| {
        EncryptionKey::from_base64(&String::from_utf8_lossy(s.expose())).map_err(|m| ConfigError::new(var, m))
    };
    let current = settings
        .encryption
        .key
        .as_ref()
        .map(|s| key("TOKENGATE_ENCRYPTION_KEY", s))
        .transpose()?;
    let previous = settings
        .encryption
        .previous
        .iter()
        .map(|s| key("TOKENGATE_PREVIOUS_ENCRYPTION_KEYS", s))
        .collect::<Result<_, _>>()?;
    Ok(Vault::new(current, previous))
}

/// The HS256 secret: configured, or kept in a file beside the SQLite database.
fn signing_secret(settings: &Settings, vault: &Vault) -> Result<Secret, StartError> {
    if let Some(s) = &settings.tokens.secret_key {
        tracing::info!("signing key: HS256 secret from TOKENGATE_SECRET_KEY");
        return Ok(s.clone());
    }
    let Some(file) = hs256_secret_file(settings) else {
        return Err(ConfigError::new(
            "TOKENGATE_SECRET_KEY",
            "must be set with a shared database (every instance needs the same key)",
        )
        .into());
    };
    let (secret, source) = load_or_create_secret(&file, vault).map_err(StartError::Runtime)?;
    match source {
        SecretSource::Generated => {
            tracing::info!(path = %absolute(&file).display(), "signing key: generated a new HS256 secret (mode 0600)")
        }
        SecretSource::Loaded => {
            tracing::info!(path = %absolute(&file).display(), "signing key: HS256 secret loaded")
        }
    }
    Ok(secret)
}

/// The HS256 secret file this configuration uses or may have left, if any (SQLite
/// without `TOKENGATE_SECRET_KEY`).
pub fn hs256_secret_file(settings: &Settings) -> Option<PathBuf> {
    match (&settings.tokens.secret_key, &settings.store.database_url) {
        (None, DatabaseUrl::Sqlite { path }) => Some(secret_path(path)),
        _ => None,
    }
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
    vault: &Arc<Vault>,
    purpose: Purpose,
) -> Result<(KeyRing, KeyMode), StartError> {
    if purpose == Purpose::Operate {
        // Operator commands sign and verify nothing: they get a random key that dies
        // with them, and never read, make or rotate the real ones (a `user` command run
        // with another TOKENGATE_ALGORITHM must not give the fleet a new key).
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| StartError::Runtime(format!("no OS randomness: {e}")))?;
        return Ok((KeyRing::hs256(&Secret::new(raw.to_vec()), &[]), KeyMode::Hs256));
    }
    let algorithm = signing_algorithm(settings, store.as_ref()).await?;
    if algorithm == SigningAlgorithm::Hs256 {
        let secret = signing_secret(settings, vault)?;
        return Ok((
            KeyRing::hs256(&secret, &settings.tokens.previous_secret_keys),
            KeyMode::Hs256,
        ));
    }
    let runtime = |e: KeyAdminError| StartError::Runtime(e.to_string());
    let now = clock.now();
    let keys = KeyStore {
        store: store.as_ref(),
        vault,
    };
    match ensure_active_key(keys, algorithm, settings.tokens.access_ttl_secs, now)
        .await
        .map_err(runtime)?
    {
        Ensured::Generated(kid) => {
            tracing::info!(%kid, "signing key: generated a new {} key (kept in the database)", algorithm.jose_name());
            // Tokens signed with the HS256 secret before the switch die with it: say so,
            // and how to keep them until they expire.
            if let Some(file) = hs256_secret_file(settings).filter(|f| f.exists())
                && settings.tokens.previous_secret_keys.is_empty()
            {
                tracing::warn!(
                    path = %absolute(&file).display(),
                    "switched from HS256 to {}: access tokens signed before are refused from now on (their users log in \
                     again); to accept them until they expire, restart with TOKENGATE_PREVIOUS_SECRET_KEYS set to that \
                     file's text",
                    algorithm.jose_name()
                );
            }
        }
        Ensured::Rotated(kid) => {
            tracing::info!(%kid, "signing key: algorithm changed; new active key, the old one retired")
        }
        Ensured::Existing(_) => tracing::info!("signing key: {} keys loaded from the database", algorithm.jose_name()),
    }
    let ring = load_ring(keys, now, &settings.tokens.previous_secret_keys)
        .await
        .map_err(runtime)?;
    let mode = KeyMode::Stored {
        algorithm,
        hs256_previous: settings.tokens.previous_secret_keys.clone(),
        vault: vault.clone(),
    };
    Ok((ring, mode))
}

/// The algorithm to sign with: configured, or decided by the database's active key.
pub async fn signing_algorithm(settings: &Settings, store: &dyn Store) -> Result<SigningAlgorithm, StartError> {
    resolve_algorithm(store, settings.tokens.algorithm)
        .await
        .map_err(|e| match e {
            ResolveError::Conflicting(message) => StartError::Config(ConfigError::new("TOKENGATE_ALGORITHM", message)),
            ResolveError::Store(e) => StartError::Runtime(e.to_string()),
        })
}

/// An HMAC key kept in the database (made at first start, shared by every instance).
async fn server_mac(
    store: &dyn Store,
    name: &'static str,
    clock: &Arc<dyn Clock>,
    vault: &Vault,
) -> Result<MacKey, StartError> {
    let key = server_secret(store, name, clock.now(), vault)
        .await
        .map_err(StartError::Runtime)?;
    Ok(MacKey::new(Secret::new(key), name))
}

pub use crate::auth::keys::{SERVER_SECRETS, server_secret, server_secret_context};

/// Everything the routes need, from validated settings.
pub async fn build_state(settings: &Settings, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    build_state_for(settings, clock, OpenMode::CreateIfMissing, Purpose::Serve).await
}

/// [`build_state`] for `purpose`, opening the database as `mode` says (operator
/// commands: must exist).
pub async fn build_state_for(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    mode: OpenMode,
    purpose: Purpose,
) -> Result<AppState, StartError> {
    // The recorder first, so nothing counted from here on is lost.
    let _ = crate::metrics::handle();
    let serving = purpose == Purpose::Serve;
    if serving && matches!(settings.store.database_url, DatabaseUrl::Postgres(_)) && settings.redis.url.is_none() {
        // Revocation holds across instances (every request checks the shared
        // database); the counters of the rate limits do not yet.
        tracing::warn!(
            "rate limits are counted per instance (no TOKENGATE_REDIS_URL): with several instances, each allows the full rate"
        );
    }
    // The per-request check is served from a cache that follows the revocation log;
    // with Redis, revocations are also pushed so other instances read the log at once.
    let metered: Arc<dyn crate::store::Store> = Arc::new(MeteredStore::new(open_store(settings, mode).await?));
    let cache = CachedStore::start(metered, clock.clone()).await;
    if let Some(url) = &settings.redis.url {
        let fanout = RedisFanout::new(url, &settings.redis.prefix)
            .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_REDIS_URL", e.to_string())))?;
        fanout.listen(Arc::downgrade(&cache));
        cache.announce_through(fanout);
    }
    let store: Arc<dyn Store> = cache;
    let vault = Arc::new(vault(settings)?);
    if vault.seals() {
        let file = hs256_secret_file(settings);
        crate::auth::keys::refuse_unsealed_at_start(store.as_ref(), &vault, file.as_deref(), clock.now())
            .await
            .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_ENCRYPTION_KEY", e.0)))?;
    }
    match vault.current_id() {
        Some(id) => tracing::info!(
            key_id = id,
            "secrets at rest: private keys and server secrets stored encrypted"
        ),
        None => tracing::info!(
            "secrets at rest: private keys and server secrets are stored unencrypted (set TOKENGATE_ENCRYPTION_KEY)"
        ),
    }
    let (keys, key_mode) = signing_keys(settings, &store, &clock, &vault, purpose).await?;
    let tokens = AccessTokens::new(
        keys,
        settings.tokens.issuer.clone(),
        settings.tokens.audience.clone(),
        settings.tokens.access_ttl_secs,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hasher = PasswordHasher::new(settings.argon2, cores, settings.limits.hash_queue_max)
        .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_ARGON2_MEMORY_KIB", e.to_string())))?
        .with_bcrypt_max_cost(settings.limits.bcrypt_max_cost);
    let rates = Rates {
        login: settings.limits.login,
        refresh: settings.limits.refresh,
        register: settings.limits.register,
    };
    let max_keys = crate::limits::memory::DEFAULT_MAX_KEYS;
    let limiter: Arc<dyn Limiter> = match settings.redis.url.as_ref().filter(|_| serving) {
        Some(url) => {
            tracing::info!(url = %crate::config::redact_url(url), "rate limits: shared in Redis");
            RedisLimiter::connect(url, settings.redis.prefix.clone(), rates, max_keys, clock.clone())
                .await
                .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_REDIS_URL", e.to_string())))?
        }
        None => Arc::new(MemoryLimiter::new(rates, max_keys, clock.clone())),
    };
    let macs = ServerMacs {
        csrf: server_mac(store.as_ref(), "csrf", &clock, &vault).await?,
        device: server_mac(store.as_ref(), "device", &clock, &vault).await?,
        refresh: server_mac(store.as_ref(), "refresh", &clock, &vault).await?,
    };
    let auth = AuthService::new(AuthParts {
        store,
        hasher,
        tokens,
        limiter,
        clock,
        sessions: SessionPolicy {
            refresh_ttl_secs: settings.tokens.refresh_ttl_secs,
            max_lifetime_secs: settings.tokens.session_max_lifetime_secs,
            reuse_grace_secs: settings.tokens.refresh_reuse_grace_secs,
            ip: settings.tokens.session_ip,
        },
        keys: key_mode,
        macs,
        events: Arc::new(crate::events::LogAndCount {
            ip: settings.tokens.session_ip,
        }),
    });
    if serving && !settings.http.cookie_secure {
        tracing::warn!(
            "TOKENGATE_COOKIE_SECURE=false: cookies lack the Secure attribute; use this only for plain-HTTP local development"
        );
    }
    let cors_origins = settings
        .http
        .cors_origins
        .iter()
        .filter_map(|o| axum::http::HeaderValue::from_str(o).ok())
        .collect::<Vec<_>>();
    // Configured, else an issuer that is a URL, else the bind address.
    let public_url = settings.http.public_url.clone().unwrap_or_else(|| {
        let issuer = &settings.tokens.issuer;
        if issuer.starts_with("https://") || issuer.starts_with("http://") {
            issuer.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", settings.http.bind)
        }
    });
    Ok(AppState {
        auth: Arc::new(auth),
        public_url: public_url.into(),
        path_prefix: settings.http.path_prefix.clone().into(),
        trusted_proxies: settings.http.trusted_proxies.clone().into(),
        cookies: crate::http::cookies::CookiePolicy {
            secure: settings.http.cookie_secure,
            refresh_path: format!("{}{}", settings.http.path_prefix, crate::http::cookies::REFRESH_PATH).into(),
            access_ttl_secs: settings.tokens.access_ttl_secs,
            refresh_ttl_secs: settings.tokens.refresh_ttl_secs,
            device_ttl_secs: crate::auth::DEVICE_TOKEN_TTL_SECS,
        },
        cors_origins: cors_origins.into(),
        metrics_token: settings.http.metrics_token.clone().map(Arc::new),
    })
}

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
    let purge = tokio::spawn(purge_loop(auth.clone(), settings.tokens.refresh_ttl_secs));
    let reload = tokio::spawn(reload_loop(auth.clone()));
    serve_on(listener, state, settings.http.connections, shutdown)
        .await
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    purge.abort();
    reload.abort();
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
/// Hourly: what expired goes (`AuthService::purge_expired` says what).
async fn purge_loop(auth: Arc<AuthService>, grace_secs: u64) {
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
