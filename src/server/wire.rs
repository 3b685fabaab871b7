//! Building a server from validated settings: the store stack (database, meter,
//! session cache, revocation push), the auth service, and the routes' state.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::StartError;
use super::purpose::Purpose;
use super::secrets::{hs256_secret_file, signing_keys, start_error, vault};
use crate::auth::keys::KeyService;
use crate::auth::{AuthParts, AuthService, PasskeyPolicy, RecoveryPolicy, ServerMacs, SessionPolicy};
use crate::clock::Clock;
use crate::config::{ConfigError, Settings};
use crate::crypto::passwords::PasswordHasher;
use crate::crypto::tokens::AccessTokens;
use crate::fanout::RedisFanout;
use crate::http::AppState;
use crate::limits::Limiter;
use crate::limits::memory::{MemoryLimiter, Rates};
use crate::limits::redis::RedisLimiter;
use crate::mail::{MailService, Transport};
use crate::store::cache::CachedStore;
use crate::store::metered::MeteredStore;
use crate::store::{DatabaseUrl, Store};

/// Whether opening a database may create it. Only `serve` and `migrate` may: an
/// operator command pointed at the wrong directory must not make an empty database
/// and report "no such user".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
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

/// Everything the routes need, from validated settings.
pub async fn build_state(settings: &Settings, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let auth = build_auth(settings, clock, OpenMode::CreateIfMissing, Purpose::Serve).await?;
    respell_addresses(&auth).await;
    Ok(app_state(settings, auth))
}

/// Addresses stored before they had one spelling, rewritten (logged); the server
/// starts whatever happens here.
async fn respell_addresses(auth: &AuthService) {
    match auth.respell_stored_addresses().await {
        Ok(report) => {
            if report.rewritten > 0 {
                tracing::info!(
                    rewritten = report.rewritten,
                    "email addresses rewritten in their one spelling (IDNA domain)"
                );
            }
            for (username, why) in report.left {
                tracing::warn!(
                    username = username.as_str(),
                    reason = %why,
                    "an email address could not be rewritten in its one spelling: the user is not found by it (reset, sign-in links, login by email) until an operator gives them another"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "stored email addresses were not checked for their spelling"),
    }
}

/// The auth service over the configured database, for `purpose`, opening the database
/// as `mode` says (operator commands: must exist). An operator command gets this and
/// nothing of the HTTP side.
pub async fn build_auth(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    mode: OpenMode,
    purpose: Purpose,
) -> Result<AuthService, StartError> {
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
    // Before the database is opened: a configuration that cannot work creates nothing.
    let passkeys = passkey_policy(settings, serving)?;
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
    let keys = KeyService::new(store.clone(), vault.clone(), settings.tokens.access_ttl_secs);
    keys.refuse_unsealed(hs256_secret_file(settings).as_deref(), clock.now())
        .await
        .map_err(start_error)?;
    match vault.current_id() {
        Some(id) => tracing::info!(
            key_id = id,
            "secrets at rest: private keys and server secrets stored encrypted"
        ),
        None => tracing::info!(
            "secrets at rest: private keys and server secrets are stored unencrypted (set TOKENGATE_ENCRYPTION_KEY)"
        ),
    }
    let (ring, key_mode) = signing_keys(settings, &keys, clock.now(), purpose).await?;
    let tokens = AccessTokens::new(
        ring,
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
        mail: settings.recovery.mail_rate,
        mail_network: settings.recovery.mail_network_rate,
        mfa: settings.mfa.rate,
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
    let mac = |name| keys.mac(name, clock.now());
    let macs = ServerMacs {
        csrf: mac("csrf").await.map_err(start_error)?,
        device: mac("device").await.map_err(start_error)?,
        refresh: mac("refresh").await.map_err(start_error)?,
        passkey_decoy: mac("passkey-decoy").await.map_err(start_error)?,
    };
    let transport = Transport::new(&settings.mail.transport)
        .map_err(|e| StartError::Config(ConfigError::new("TOKENGATE_SMTP_URL", e)))?;
    let mail = Arc::new(MailService::new(
        store.clone(),
        transport,
        settings.mail.from.clone(),
        vault.clone(),
        clock.clone(),
    ));
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
        keys,
        key_mode,
        macs,
        events: Arc::new(crate::events::LogAndCount {
            ip: settings.tokens.session_ip,
        }),
        mail,
        recovery: RecoveryPolicy {
            account_url: account_url(settings, serving),
            product: settings.tokens.issuer.clone(),
            reset_ttl_secs: settings.recovery.reset_ttl_secs,
            magic_links: settings.recovery.magic_links,
            require_verified_email: settings.recovery.require_verified_email,
        },
        mfa: crate::auth::MfaPolicy {
            required_roles: settings.mfa.required_roles.clone(),
        },
        passkeys,
        provider: crate::auth::oauth::ProviderPolicy {
            issuer: format!("{}{}", public_url(settings).0, settings.http.path_prefix),
        },
    });
    if serving {
        auth.check_passkey_rp_id()
            .await
            .map_err(|e| StartError::Runtime(e.to_string()))?;
    }
    Ok(auth)
}

/// This server as a WebAuthn relying party: the RP ID configured, else the public URL's
/// host (`localhost` for a loopback address: browsers treat it as secure and accept it
/// as an RP ID); the origins configured, else the public URL's. `None` (passkeys off,
/// said once) when the host is another IP address and nothing was configured; a
/// configuration that cannot work stops the start.
fn passkey_policy(settings: &Settings, serving: bool) -> Result<Option<PasskeyPolicy>, StartError> {
    let (base, _) = public_url(settings);
    let config = |var: &'static str, why: String| StartError::Config(ConfigError::new(var, why));
    let url = url::Url::parse(&base).map_err(|e| config("TOKENGATE_PUBLIC_URL", e.to_string()))?;
    let configured = &settings.webauthn;
    let (rp_id, origin) = match (&configured.rp_id, url.host()) {
        (Some(id), _) => (id.clone(), url.origin().ascii_serialization()),
        (None, Some(url::Host::Domain(host))) => (host.to_ascii_lowercase(), url.origin().ascii_serialization()),
        (None, Some(url::Host::Ipv4(ip))) if ip.is_loopback() => ("localhost".to_owned(), localhost_origin(&url)),
        (None, Some(url::Host::Ipv6(ip))) if ip.is_loopback() => ("localhost".to_owned(), localhost_origin(&url)),
        (None, _) => {
            let why = format!(
                "no RP ID for passkeys: the public URL {base} has an IP address, which WebAuthn refuses; \
                 set TOKENGATE_PUBLIC_URL to the domain name users reach, or TOKENGATE_WEBAUTHN_RP_ID"
            );
            if !configured.origins.is_empty() {
                return Err(config("TOKENGATE_WEBAUTHN_RP_ID", why));
            }
            if serving {
                tracing::info!("passkeys are off: {why}");
            }
            return Ok(None);
        }
    };
    let origins = if configured.origins.is_empty() {
        vec![origin]
    } else {
        configured.origins.clone()
    };
    let policy = PasskeyPolicy::new(&rp_id, &origins, &settings.tokens.issuer).map_err(|why| {
        let var = if configured.origins.is_empty() {
            "TOKENGATE_WEBAUTHN_RP_ID"
        } else {
            "TOKENGATE_WEBAUTHN_ORIGINS"
        };
        config(var, why)
    })?;
    if serving {
        tracing::info!(rp_id = %rp_id, origins = %origins.join(", "), "passkeys: relying party");
    }
    Ok(Some(policy))
}

/// `url`'s origin with `localhost` for its host.
fn localhost_origin(url: &url::Url) -> String {
    match url.port() {
        Some(port) => format!("{}://localhost:{port}", url.scheme()),
        None => format!("{}://localhost", url.scheme()),
    }
}

/// Where mailed links point: the account page under the public URL. A server that
/// guesses its public URL from its bind address says so (a link to `0.0.0.0` or to
/// a container's address reaches no one).
fn account_url(settings: &Settings, serving: bool) -> String {
    let (base, from_bind) = public_url(settings);
    let url = format!("{base}{}/account", settings.http.path_prefix);
    if serving && from_bind {
        if settings.http.bind.ip().is_loopback() {
            tracing::info!(links = %url, "links in mail open this machine's account page (TOKENGATE_PUBLIC_URL unset)");
        } else {
            tracing::warn!(
                links = %url,
                "TOKENGATE_PUBLIC_URL is not set: links in mail (verification, reset, sign-in) point at the bind address; set it to the URL users reach"
            );
        }
    }
    url
}

/// The external base URL every absolute URL we emit starts with: configured, else an
/// issuer that is a URL, else the bind address (then `true`: a guess).
fn public_url(settings: &Settings) -> (String, bool) {
    if let Some(url) = &settings.http.public_url {
        return (url.clone(), false);
    }
    let issuer = &settings.tokens.issuer;
    if issuer.starts_with("https://") || issuer.starts_with("http://") {
        (issuer.trim_end_matches('/').to_owned(), false)
    } else {
        (format!("http://{}", settings.http.bind), true)
    }
}

/// The routes' state around `auth`, from the HTTP settings.
pub fn app_state(settings: &Settings, auth: AuthService) -> AppState {
    if !settings.http.cookie_secure {
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
    AppState {
        auth: Arc::new(auth),
        public_url: public_url(settings).0.into(),
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
    }
}
