//! Settings: read once at start-up from flags, the environment and `.env`, validated
//! into typed values. A bad value is one line naming the variable to fix.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use ipnet::IpNet;

use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::passwords::Argon2Params;
use crate::domain::Secret;
use crate::http::ConnectionLimits;
use crate::limits::Rate;
use crate::store::{DatabaseUrl, StoreSettings};

pub mod environment;

pub use crate::crypto::secret_strength::check_secret;

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

pub use crate::telemetry::LogFormat;

/// Every setting of the server, validated, by the part of the server it configures.
#[derive(Clone, Debug)]
pub struct Settings {
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub redis: RedisSettings,
    pub tokens: TokenSettings,
    pub limits: LimitSettings,
    pub argon2: Argon2Params,
    pub log_format: LogFormat,
    /// Where traces go (the OTLP/HTTP traces URL, `.../v1/traces`); `None`: nowhere.
    pub otlp_endpoint: Option<String>,
    pub encryption: EncryptionSettings,
}

/// Keys that seal secrets at rest (each 32 bytes, base64, checked); none: stored as is.
#[derive(Clone, Debug, Default)]
pub struct EncryptionSettings {
    pub key: Option<Secret>,
    /// Earlier keys, to open what they sealed (`tokengate keys reencrypt`).
    pub previous: Vec<Secret>,
}

/// The HTTP surface.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    /// The external base URL (`https://auth.example.com`), for every absolute URL we emit.
    pub public_url: Option<String>,
    /// Where every route is mounted (`/api/v1`); empty: at the root.
    pub path_prefix: String,
    pub cookie_secure: bool,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub connections: ConnectionLimits,
    /// Serve `/metrics` on this address instead of the main one (e.g. only inside the
    /// cluster); `None`: on the main address.
    pub metrics_bind: Option<SocketAddr>,
    /// The bearer token `/metrics` on the main address answers to; `None`: it is not
    /// served there at all (404).
    pub metrics_token: Option<Secret>,
}

/// The shared cache and counters (optional).
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: Option<String>,
    /// Every key starts with this, so deployments can share one Redis.
    pub prefix: String,
}

/// What tokens are signed with and how long they live.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `None`: not configured, so an active key in the database decides (else HS256).
    pub algorithm: Option<SigningAlgorithm>,
    /// `None`: generate one and keep it beside the SQLite file.
    pub secret_key: Option<Secret>,
    pub previous_secret_keys: Vec<Secret>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// A session ends this long after its login, however often it refreshes.
    pub session_max_lifetime_secs: u64,
    /// For this long after a rotation, the token just spent gets the same successor
    /// again instead of counting as reuse (0: strict).
    pub refresh_reuse_grace_secs: u64,
    /// What a session keeps of the client's address.
    pub session_ip: crate::auth::SessionIp,
}

/// Abuse limits.
#[derive(Clone, Copy, Debug)]
pub struct LimitSettings {
    pub login: Rate,
    pub refresh: Rate,
    pub register: Rate,
    /// Password hashes waiting for a core, at most; past that, 503 with `Retry-After`.
    pub hash_queue_max: usize,
    /// bcrypt hashes above this cost are refused at import and never verified.
    pub bcrypt_max_cost: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let per_minute = |count| Rate { count, window_secs: 60 };
        Self {
            http: HttpSettings {
                bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
                public_url: None,
                path_prefix: String::new(),
                cookie_secure: true,
                cors_origins: Vec::new(),
                trusted_proxies: Vec::new(),
                connections: ConnectionLimits::default(),
                metrics_bind: None,
                metrics_token: None,
            },
            store: StoreSettings {
                database_url: DatabaseUrl::Sqlite {
                    path: PathBuf::from("tokengate.db"),
                },
                pool_size: 10,
                connect_timeout_secs: 5,
            },
            redis: RedisSettings {
                url: None,
                prefix: "tokengate:".into(),
            },
            tokens: TokenSettings {
                algorithm: None,
                secret_key: None,
                previous_secret_keys: Vec::new(),
                issuer: "tokengate".into(),
                audience: "tokengate".into(),
                access_ttl_secs: 15 * 60,
                refresh_ttl_secs: 7 * 24 * 3600,
                session_max_lifetime_secs: 30 * 24 * 3600,
                refresh_reuse_grace_secs: 0,
                session_ip: crate::auth::SessionIp::Full,
            },
            limits: LimitSettings {
                login: per_minute(10),
                refresh: per_minute(60),
                register: per_minute(5),
                hash_queue_max: 64,
                bcrypt_max_cost: crate::crypto::passwords::DEFAULT_BCRYPT_MAX_COST,
            },
            argon2: Argon2Params::default(),
            log_format: LogFormat::Pretty,
            otlp_endpoint: None,
            encryption: EncryptionSettings::default(),
        }
    }
}

/// The raw values, as flags or `TOKENGATE_*` variables (clap reads both; `.env` is
/// loaded into the environment before). Kept as strings so that validation, not clap,
/// words the error.
#[derive(Args, Debug, Default, Clone)]
pub struct RawSettings {
    /// Address to listen on [default: 127.0.0.1:8000]
    #[arg(long, env = "TOKENGATE_BIND")]
    pub bind: Option<String>,
    /// sqlite://FILE or postgres://... [default: sqlite://tokengate.db]
    #[arg(long, env = "TOKENGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database connections at most (PostgreSQL) [default: 10]
    #[arg(long, env = "TOKENGATE_DB_POOL_SIZE")]
    pub db_pool_size: Option<String>,
    /// Time to open a database connection [default: 5s]
    #[arg(long, env = "TOKENGATE_DB_CONNECT_TIMEOUT")]
    pub db_connect_timeout: Option<String>,
    /// redis://... for shared revocation and rate limits across instances
    #[arg(long, env = "TOKENGATE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key [default: tokengate:]
    #[arg(long, env = "TOKENGATE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// HS256 (default), EdDSA, ES256 or RS256
    #[arg(long, env = "TOKENGATE_ALGORITHM")]
    pub algorithm: Option<String>,
    /// HS256 secret, at least 32 bytes [default: generated and kept beside the SQLite file]
    #[arg(long, env = "TOKENGATE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Comma-separated HS256 secrets still accepted for verification
    #[arg(long, env = "TOKENGATE_PREVIOUS_SECRET_KEYS", hide_env_values = true)]
    pub previous_secret_keys: Option<String>,
    /// 32 random bytes, base64 (openssl rand -base64 32): private keys and server secrets are stored encrypted [default: stored unencrypted]
    #[arg(long, env = "TOKENGATE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// A file holding TOKENGATE_ENCRYPTION_KEY (e.g. a mounted secret)
    #[arg(long, env = "TOKENGATE_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<String>,
    /// Comma-separated earlier encryption keys, still opened (for `tokengate keys reencrypt`)
    #[arg(long, env = "TOKENGATE_PREVIOUS_ENCRYPTION_KEYS", hide_env_values = true)]
    pub previous_encryption_keys: Option<String>,
    /// Serve /metrics (no token) on this private address, e.g. 10.0.0.5:9100 [default: none]
    #[arg(long, env = "TOKENGATE_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Bearer token for /metrics on the main address (at least 32 characters); unset: 404 there
    #[arg(long, env = "TOKENGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// External base URL, e.g. https://auth.example.com [default: http://BIND]
    #[arg(long, env = "TOKENGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Mount every route under this path, e.g. /api/v1 [default: none]
    #[arg(long, env = "TOKENGATE_PATH_PREFIX")]
    pub path_prefix: Option<String>,
    /// `iss` claim [default: tokengate]
    #[arg(long, env = "TOKENGATE_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` claim [default: tokengate]
    #[arg(long, env = "TOKENGATE_AUDIENCE")]
    pub audience: Option<String>,
    /// Access token lifetime, e.g. 2s, 10m, 1h [default: 15m]
    #[arg(long, env = "TOKENGATE_ACCESS_TTL")]
    pub access_ttl: Option<String>,
    /// Refresh token lifetime [default: 7d]
    #[arg(long, env = "TOKENGATE_REFRESH_TTL")]
    pub refresh_ttl: Option<String>,
    /// A session ends this long after login, however often it refreshes [default: 30d]
    #[arg(long, env = "TOKENGATE_SESSION_MAX_LIFETIME")]
    pub session_max_lifetime: Option<String>,
    /// Seconds after a rotation in which the spent token gets the same successor again
    /// (two tabs, a retried request) instead of revoking the session; at most 60s [default: 0s]
    #[arg(long, env = "TOKENGATE_REFRESH_REUSE_GRACE")]
    pub refresh_reuse_grace: Option<String>,
    /// What a session keeps of the client's IP: full, prefix (/24, /48) or none [default: full]
    #[arg(long, env = "TOKENGATE_SESSION_IP")]
    pub session_ip: Option<String>,
    /// Secure attribute on cookies; false only for plain-HTTP local development [default: true]
    #[arg(long, env = "TOKENGATE_COOKIE_SECURE")]
    pub cookie_secure: Option<String>,
    /// Comma-separated exact origins allowed by CORS
    #[arg(long, env = "TOKENGATE_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Login attempts per IP and per username, N/WINDOW [default: 10/1m]
    #[arg(long, env = "TOKENGATE_LOGIN_RATE")]
    pub login_rate: Option<String>,
    /// Refreshes per IP, N/WINDOW [default: 60/1m]
    #[arg(long, env = "TOKENGATE_REFRESH_RATE")]
    pub refresh_rate: Option<String>,
    /// Registrations per IP, N/WINDOW [default: 5/1m]
    #[arg(long, env = "TOKENGATE_REGISTER_RATE")]
    pub register_rate: Option<String>,
    /// Comma-separated CIDRs whose X-Forwarded-For is believed [default: none]
    #[arg(long, env = "TOKENGATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// json or pretty [default: pretty]
    #[arg(long, env = "TOKENGATE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// OTLP/HTTP collector, e.g. http://127.0.0.1:4318: export traces there [default: off]
    #[arg(long, env = "TOKENGATE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// argon2id memory cost in KiB [default: 19456]
    #[arg(long, env = "TOKENGATE_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<String>,
    /// argon2id iterations [default: 2]
    #[arg(long, env = "TOKENGATE_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<String>,
    /// argon2id lanes [default: 1]
    #[arg(long, env = "TOKENGATE_ARGON2_PARALLELISM")]
    pub argon2_parallelism: Option<String>,
    /// Password hashes that may wait for a core before 503 [default: 64]
    #[arg(long, env = "TOKENGATE_HASH_QUEUE")]
    pub hash_queue: Option<String>,
    /// Imported bcrypt hashes above this cost are refused (and never verified) [default: 14]
    #[arg(long, env = "TOKENGATE_BCRYPT_MAX_COST")]
    pub bcrypt_max_cost: Option<String>,
    /// Time a client has to send a request's headers; also the keep-alive idle timeout [default: 10s]
    #[arg(long, env = "TOKENGATE_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// Time a request's body and answer may take before 408 [default: 30s]
    #[arg(long, env = "TOKENGATE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Open connections at most [default: 4096]
    #[arg(long, env = "TOKENGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Open connections from one client network at most; trusted proxies exempt [default: 256]
    #[arg(long, env = "TOKENGATE_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<String>,
    /// Requests one connection serves before it is closed [default: 1000]
    #[arg(long, env = "TOKENGATE_MAX_REQUESTS_PER_CONNECTION")]
    pub max_requests_per_connection: Option<String>,
    /// How long one connection may stay open [default: 5m]
    #[arg(long, env = "TOKENGATE_MAX_CONNECTION_AGE")]
    pub max_connection_age: Option<String>,
}

impl RawSettings {
    /// The values the environment (and `.env`) sets: what the operator commands read,
    /// whose own flags are only the few they use.
    pub fn from_environment() -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct EnvironmentOnly {
            #[command(flatten)]
            settings: RawSettings,
        }
        <EnvironmentOnly as clap::Parser>::try_parse_from(["tokengate"]).map(|e| e.settings)
    }

    /// Validate every value; the first problem found is returned.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            http: self.http(&d.http)?,
            store: StoreSettings {
                database_url: opt(
                    "TOKENGATE_DATABASE_URL",
                    &self.database_url,
                    d.store.database_url,
                    parse_database_url,
                )?,
                pool_size: opt("TOKENGATE_DB_POOL_SIZE", &self.db_pool_size, d.store.pool_size, |v| {
                    parse_in_range(v, 1, 1000)
                })?,
                connect_timeout_secs: opt(
                    "TOKENGATE_DB_CONNECT_TIMEOUT",
                    &self.db_connect_timeout,
                    d.store.connect_timeout_secs,
                    parse_duration,
                )?,
            },
            redis: RedisSettings {
                url: opt("TOKENGATE_REDIS_URL", &self.redis_url, None, |v| {
                    if v.starts_with("redis://") || v.starts_with("rediss://") {
                        Ok(Some(v.to_owned()))
                    } else {
                        Err(format!("{:?} is not a redis:// or rediss:// URL", redact_url(v)))
                    }
                })?,
                prefix: opt("TOKENGATE_REDIS_PREFIX", &self.redis_prefix, d.redis.prefix, |v| {
                    if v.len() <= 64 && !v.contains(char::is_whitespace) {
                        Ok(v.to_owned())
                    } else {
                        Err(format!("{v:?} must be at most 64 characters without spaces"))
                    }
                })?,
            },
            tokens: self.tokens(&d.tokens)?,
            limits: LimitSettings {
                login: opt("TOKENGATE_LOGIN_RATE", &self.login_rate, d.limits.login, parse_rate)?,
                refresh: opt(
                    "TOKENGATE_REFRESH_RATE",
                    &self.refresh_rate,
                    d.limits.refresh,
                    parse_rate,
                )?,
                register: opt(
                    "TOKENGATE_REGISTER_RATE",
                    &self.register_rate,
                    d.limits.register,
                    parse_rate,
                )?,
                hash_queue_max: opt("TOKENGATE_HASH_QUEUE", &self.hash_queue, d.limits.hash_queue_max, |v| {
                    parse_in_range(v, 1, 100_000).map(|n| n as usize)
                })?,
                bcrypt_max_cost: opt(
                    "TOKENGATE_BCRYPT_MAX_COST",
                    &self.bcrypt_max_cost,
                    d.limits.bcrypt_max_cost,
                    |v| parse_in_range(v, 4, 31),
                )?,
            },
            argon2: self.argon2(&d.argon2)?,
            log_format: opt("TOKENGATE_LOG_FORMAT", &self.log_format, d.log_format, |v| match v {
                "json" => Ok(LogFormat::Json),
                "pretty" => Ok(LogFormat::Pretty),
                _ => Err(format!("{v:?} is not json or pretty")),
            })?,
            otlp_endpoint: opt("TOKENGATE_OTLP_ENDPOINT", &self.otlp_endpoint, None, |v| {
                parse_otlp_endpoint(v).map(Some)
            })?,
            encryption: self.encryption()?,
        };
        let t = &s.tokens;
        if t.session_max_lifetime_secs < t.access_ttl_secs {
            return Err(ConfigError::new(
                "TOKENGATE_SESSION_MAX_LIFETIME",
                "must not be shorter than TOKENGATE_ACCESS_TTL",
            ));
        }
        if t.refresh_ttl_secs < t.access_ttl_secs {
            return Err(ConfigError::new(
                "TOKENGATE_REFRESH_TTL",
                "must not be shorter than TOKENGATE_ACCESS_TTL",
            ));
        }
        Ok(s)
    }

    fn encryption(&self) -> Result<EncryptionSettings, ConfigError> {
        let key = match (non_empty(&self.encryption_key), non_empty(&self.encryption_key_file)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "TOKENGATE_ENCRYPTION_KEY_FILE",
                    "set TOKENGATE_ENCRYPTION_KEY or TOKENGATE_ENCRYPTION_KEY_FILE, not both",
                ));
            }
            (Some(v), None) => {
                Some(parse_encryption_key(v).map_err(|m| ConfigError::new("TOKENGATE_ENCRYPTION_KEY", m))?)
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("TOKENGATE_ENCRYPTION_KEY_FILE", format!("cannot read {path}: {e}"))
                })?;
                Some(
                    parse_encryption_key(&text)
                        .map_err(|m| ConfigError::new("TOKENGATE_ENCRYPTION_KEY_FILE", format!("{path}: {m}")))?,
                )
            }
            (None, None) => None,
        };
        Ok(EncryptionSettings {
            key,
            previous: list(
                "TOKENGATE_PREVIOUS_ENCRYPTION_KEYS",
                &self.previous_encryption_keys,
                parse_encryption_key,
            )?,
        })
    }

    fn http(&self, d: &HttpSettings) -> Result<HttpSettings, ConfigError> {
        Ok(HttpSettings {
            bind: opt("TOKENGATE_BIND", &self.bind, d.bind, parse_bind)?,
            public_url: opt("TOKENGATE_PUBLIC_URL", &self.public_url, None, |v| {
                parse_public_url(v).map(Some)
            })?,
            path_prefix: opt(
                "TOKENGATE_PATH_PREFIX",
                &self.path_prefix,
                d.path_prefix.clone(),
                parse_path_prefix,
            )?,
            cookie_secure: opt(
                "TOKENGATE_COOKIE_SECURE",
                &self.cookie_secure,
                d.cookie_secure,
                parse_bool,
            )?,
            cors_origins: list("TOKENGATE_CORS_ORIGINS", &self.cors_origins, parse_origin)?,
            trusted_proxies: list("TOKENGATE_TRUSTED_PROXIES", &self.trusted_proxies, parse_cidr)?,
            connections: ConnectionLimits {
                header_timeout_secs: opt(
                    "TOKENGATE_HEADER_TIMEOUT",
                    &self.header_timeout,
                    d.connections.header_timeout_secs,
                    parse_duration,
                )?,
                request_timeout_secs: opt(
                    "TOKENGATE_REQUEST_TIMEOUT",
                    &self.request_timeout,
                    d.connections.request_timeout_secs,
                    parse_duration,
                )?,
                max_connections: opt(
                    "TOKENGATE_MAX_CONNECTIONS",
                    &self.max_connections,
                    d.connections.max_connections,
                    |v| parse_in_range(v, 1, 1_000_000).map(|n| n as usize),
                )?,
                max_connections_per_client: opt(
                    "TOKENGATE_MAX_CONNECTIONS_PER_CLIENT",
                    &self.max_connections_per_client,
                    d.connections.max_connections_per_client,
                    |v| parse_in_range(v, 1, 1_000_000).map(|n| n as usize),
                )?,
                max_requests_per_connection: opt(
                    "TOKENGATE_MAX_REQUESTS_PER_CONNECTION",
                    &self.max_requests_per_connection,
                    d.connections.max_requests_per_connection,
                    |v| parse_in_range(v, 1, 1_000_000_000),
                )?,
                max_connection_age_secs: opt(
                    "TOKENGATE_MAX_CONNECTION_AGE",
                    &self.max_connection_age,
                    d.connections.max_connection_age_secs,
                    parse_duration,
                )?,
            },
            metrics_bind: opt("TOKENGATE_METRICS_BIND", &self.metrics_bind, None, |v| {
                v.parse()
                    .map(Some)
                    .map_err(|_| format!("{v:?} is not an address like 0.0.0.0:9100"))
            })?,
            metrics_token: opt("TOKENGATE_METRICS_TOKEN", &self.metrics_token, None, |v| {
                if v.chars().count() < 32 {
                    return Err("must be at least 32 characters (e.g. `openssl rand -hex 32`)".into());
                }
                Ok(Some(Secret::new(v.as_bytes().to_vec())))
            })?,
        })
    }

    fn tokens(&self, d: &TokenSettings) -> Result<TokenSettings, ConfigError> {
        Ok(TokenSettings {
            algorithm: opt("TOKENGATE_ALGORITHM", &self.algorithm, None, |v| {
                parse_algorithm(v).map(Some)
            })?,
            secret_key: opt("TOKENGATE_SECRET_KEY", &self.secret_key, None, |v| {
                check_secret(v).map(Some)
            })?,
            previous_secret_keys: list(
                "TOKENGATE_PREVIOUS_SECRET_KEYS",
                &self.previous_secret_keys,
                check_secret,
            )?,
            issuer: opt("TOKENGATE_ISSUER", &self.issuer, d.issuer.clone(), |v| Ok(v.to_owned()))?,
            audience: opt("TOKENGATE_AUDIENCE", &self.audience, d.audience.clone(), |v| {
                Ok(v.to_owned())
            })?,
            access_ttl_secs: opt(
                "TOKENGATE_ACCESS_TTL",
                &self.access_ttl,
                d.access_ttl_secs,
                parse_duration,
            )?,
            refresh_ttl_secs: opt(
                "TOKENGATE_REFRESH_TTL",
                &self.refresh_ttl,
                d.refresh_ttl_secs,
                parse_duration,
            )?,
            session_max_lifetime_secs: opt(
                "TOKENGATE_SESSION_MAX_LIFETIME",
                &self.session_max_lifetime,
                d.session_max_lifetime_secs,
                parse_duration,
            )?,
            refresh_reuse_grace_secs: opt(
                "TOKENGATE_REFRESH_REUSE_GRACE",
                &self.refresh_reuse_grace,
                d.refresh_reuse_grace_secs,
                parse_reuse_grace,
            )?,
            session_ip: opt("TOKENGATE_SESSION_IP", &self.session_ip, d.session_ip, parse_session_ip)?,
        })
    }

    fn argon2(&self, d: &Argon2Params) -> Result<Argon2Params, ConfigError> {
        let p = Argon2Params {
            memory_kib: opt(
                "TOKENGATE_ARGON2_MEMORY_KIB",
                &self.argon2_memory_kib,
                d.memory_kib,
                |v| parse_in_range(v, 8, 4 * 1024 * 1024),
            )?,
            iterations: opt(
                "TOKENGATE_ARGON2_ITERATIONS",
                &self.argon2_iterations,
                d.iterations,
                |v| parse_in_range(v, 1, 100),
            )?,
            parallelism: opt(
                "TOKENGATE_ARGON2_PARALLELISM",
                &self.argon2_parallelism,
                d.parallelism,
                |v| parse_in_range(v, 1, 64),
            )?,
        };
        if p.memory_kib < 8 * p.parallelism {
            return Err(ConfigError::new(
                "TOKENGATE_ARGON2_MEMORY_KIB",
                "must be at least 8 KiB per lane (TOKENGATE_ARGON2_PARALLELISM)",
            ));
        }
        Ok(p)
    }
}

/// A comma-separated list, each item parsed by `parse`; unset or empty is no items.
fn list<T>(
    var: &'static str,
    raw: &Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    match non_empty(raw) {
        None => Ok(Vec::new()),
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse)
            .collect::<Result<_, _>>()
            .map_err(|m| ConfigError::new(var, m)),
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parse an optional value, or take the default when it is unset or empty.
fn opt<T>(
    var: &'static str,
    raw: &Option<String>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match non_empty(raw) {
        None => Ok(default),
        Some(v) => parse(v).map_err(|m| ConfigError::new(var, m)),
    }
}

fn parse_database_url(v: &str) -> Result<DatabaseUrl, String> {
    DatabaseUrl::parse(v)
}

pub use crate::store::redact_url;

fn parse_algorithm(v: &str) -> Result<SigningAlgorithm, String> {
    const NAMES: [(&str, SigningAlgorithm); 4] = [
        ("HS256", SigningAlgorithm::Hs256),
        ("EdDSA", SigningAlgorithm::EdDsa),
        ("ES256", SigningAlgorithm::Es256),
        ("RS256", SigningAlgorithm::Rs256),
    ];
    if let Some((_, alg)) = NAMES.iter().find(|(n, _)| *n == v) {
        return Ok(*alg);
    }
    // JOSE names are case-sensitive (a JWT's `alg` must match exactly): suggested, not guessed.
    match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(v.trim())) {
        Some((name, _)) => Err(format!(
            "{v:?} is not one of HS256, EdDSA, ES256, RS256; did you mean {name}?"
        )),
        None => Err(format!("{v:?} is not one of HS256, EdDSA, ES256, RS256")),
    }
}

/// An address to listen on; a bare port gets the obvious suggestion.
fn parse_bind(v: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = v.parse() {
        return Ok(addr);
    }
    match v.trim().trim_start_matches(':').parse::<u16>() {
        Ok(port) => Err(format!(
            "{v:?} is a port, not an address: 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)"
        )),
        Err(_) => Err(format!("{v:?} is not an address like 127.0.0.1:8000")),
    }
}

/// `2s`, `10m`, `1h`, `7d` into seconds, at least 1. A bare number is refused: `15`
/// could mean seconds or minutes, and guessing wrong is a silent 60x error.
pub fn parse_duration(v: &str) -> Result<u64, String> {
    let bad = || format!("{v:?} is not a duration like 30s, 15m, 1h or 7d");
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "" => return Err(format!("{v:?} has no unit; write {v}s, {v}m, {v}h or {v}d")),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 || secs > 10 * 365 * 86_400 {
        return Err(format!("{v:?} must be between 1s and 3650d"));
    }
    Ok(secs)
}

/// An encryption key: 32 bytes, base64; kept as its text.
fn parse_encryption_key(v: &str) -> Result<Secret, String> {
    crate::crypto::at_rest::EncryptionKey::from_base64(v)?;
    Ok(Secret::new(v.trim().as_bytes().to_vec()))
}

/// Longest reuse grace: inside it, reuse detection is off for the token just spent.
pub const MAX_REUSE_GRACE_SECS: u64 = 60;

/// A duration that may be zero (`0s`, strict), and at most [`MAX_REUSE_GRACE_SECS`].
pub fn parse_reuse_grace(v: &str) -> Result<u64, String> {
    let number = v.strip_suffix(['s', 'm', 'h', 'd']).unwrap_or(v);
    if number.parse::<u64>() == Ok(0) {
        return Ok(0);
    }
    let secs = parse_duration(v)?;
    if secs > MAX_REUSE_GRACE_SECS {
        return Err(format!(
            "{v:?} is too long: at most {MAX_REUSE_GRACE_SECS}s (reuse detection is off inside the grace)"
        ));
    }
    Ok(secs)
}

pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

pub(crate) fn parse_rate(v: &str) -> Result<Rate, String> {
    let bad = || format!("{v:?} is not a rate like 10/1m");
    let (n, w) = v.split_once('/').ok_or_else(bad)?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!("{v:?}: the count must be at least 1"));
    }
    let window_secs = parse_duration(w.trim()).map_err(|_| bad())?;
    Ok(Rate { count, window_secs })
}

/// `https://auth.example.com` or `http://host:port/prefix`: scheme, host, optional
/// port and path; no query, fragment or credentials. Kept without a trailing slash.
fn parse_session_ip(v: &str) -> Result<crate::auth::SessionIp, String> {
    use crate::auth::SessionIp;
    match v.to_ascii_lowercase().as_str() {
        "full" => Ok(SessionIp::Full),
        "prefix" => Ok(SessionIp::Prefix),
        "none" => Ok(SessionIp::None),
        _ => Err(format!("{v:?} is not one of full, prefix, none")),
    }
}

/// A path to mount the routes under: `/seg/seg`, segments of `[A-Za-z0-9._~-]`
/// (no `.` or `..` alone); `/` or empty means none. A trailing `/` is dropped.
pub(crate) fn parse_path_prefix(v: &str) -> Result<String, String> {
    let trimmed = v.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let bad = || format!("{v:?} is not a path like /api/v1");
    let rest = trimmed.strip_prefix('/').ok_or_else(bad)?;
    let segment_ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
    };
    if !rest.split('/').all(segment_ok) {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

pub(crate) fn parse_public_url(v: &str) -> Result<String, String> {
    let bad = || format!("{v:?} is not a base URL like https://auth.example.com");
    let (scheme, rest) = v.split_once("://").ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or_default();
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let rest_ok = !rest.contains(['?', '#', '@', ' ', '"', '<', '>', '\\']);
    if !(scheme == "http" || scheme == "https") || !host_ok || !rest_ok {
        return Err(bad());
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// An OTLP/HTTP collector: its base URL (`/v1/traces` is appended, as the OTLP spec
/// does for `OTEL_EXPORTER_OTLP_ENDPOINT`) or the full traces URL. Plain HTTP only: the
/// exporter is built without TLS, so an `https://` collector is refused here rather than
/// failing at every export.
pub(crate) fn parse_otlp_endpoint(v: &str) -> Result<String, String> {
    if v.starts_with("https://") {
        return Err(format!(
            "{v:?}: only http:// collectors are supported (run an OpenTelemetry Collector beside tokengate)"
        ));
    }
    let base = parse_public_url(v).map_err(|_| format!("{v:?} is not a URL like http://127.0.0.1:4318"))?;
    Ok(if base.ends_with("/v1/traces") {
        base
    } else {
        format!("{base}/v1/traces")
    })
}

pub(crate) fn parse_cidr(v: &str) -> Result<IpNet, String> {
    v.parse::<IpNet>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{v:?} is not a CIDR like 10.0.0.0/8 or an IP address"))
}

fn parse_origin(v: &str) -> Result<String, String> {
    if v == "*" {
        return Err("\"*\" is never allowed together with credentials; list exact origins".into());
    }
    let (scheme, rest) = v
        .split_once("://")
        .ok_or_else(|| format!("{v:?} is not an origin like https://app.example.com"))?;
    let host_ok = !rest.is_empty() && !rest.contains(['/', '?', '#', '*', ' ']);
    if !(scheme == "http" || scheme == "https") || !host_ok {
        return Err(format!(
            "{v:?} is not an origin like https://app.example.com (scheme, host and port only)"
        ));
    }
    Ok(v.to_owned())
}

fn parse_in_range(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings::default()
    }

    #[test]
    fn defaults_validate() {
        let s = raw().validate().unwrap();
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.tokens.access_ttl_secs, 900);
        assert_eq!(s.tokens.refresh_ttl_secs, 604_800);
        assert_eq!(
            s.limits.login,
            Rate {
                count: 10,
                window_secs: 60
            }
        );
        assert_eq!(s.redis.prefix, "tokengate:");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(2));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in ["", "0s", "m", "5x", "-1s", "1.5h", "15", "900"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reuse_graces() {
        for (v, secs) in [("0s", 0), ("0", 0), ("00m", 0), ("2s", 2), ("1m", 60), ("60s", 60)] {
            assert_eq!(parse_reuse_grace(v), Ok(secs), "{v}");
        }
        for bad in ["", "61s", "2m", "1d", "-1s", "x", "2"] {
            assert!(parse_reuse_grace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn otlp_endpoints() {
        assert_eq!(
            parse_otlp_endpoint("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            parse_otlp_endpoint("http://collector:4318/v1/traces").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert!(parse_otlp_endpoint("https://collector:4318").is_err());
        assert!(parse_otlp_endpoint("collector:4318").is_err());
    }

    #[test]
    fn path_prefixes_are_paths_of_plain_segments() {
        for (raw, want) in [
            ("/api/v1", "/api/v1"),
            ("/api/v1/", "/api/v1"),
            ("/auth-server", "/auth-server"),
            ("/", ""),
            ("", ""),
        ] {
            assert_eq!(parse_path_prefix(raw).as_deref(), Ok(want), "{raw:?}");
        }
        for bad in [
            "api",
            "/api//v1",
            "/api/../x",
            "/./x",
            "/api v1",
            "/api?x=1",
            "/%2e%2e",
            "//x",
        ] {
            assert!(parse_path_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_error_names_its_variable() {
        let cases: Vec<(RawSettings, &str)> = vec![
            (
                RawSettings {
                    path_prefix: Some("api/v1".into()),
                    ..raw()
                },
                "TOKENGATE_PATH_PREFIX",
            ),
            (
                RawSettings {
                    session_ip: Some("half".into()),
                    ..raw()
                },
                "TOKENGATE_SESSION_IP",
            ),
            (
                RawSettings {
                    bind: Some("nope".into()),
                    ..raw()
                },
                "TOKENGATE_BIND",
            ),
            (
                RawSettings {
                    database_url: Some("mysql://x".into()),
                    ..raw()
                },
                "TOKENGATE_DATABASE_URL",
            ),
            (
                RawSettings {
                    redis_url: Some("http://x".into()),
                    ..raw()
                },
                "TOKENGATE_REDIS_URL",
            ),
            (
                RawSettings {
                    algorithm: Some("HS512".into()),
                    ..raw()
                },
                "TOKENGATE_ALGORITHM",
            ),
            (
                RawSettings {
                    secret_key: Some("changeme".into()),
                    ..raw()
                },
                "TOKENGATE_SECRET_KEY",
            ),
            (
                RawSettings {
                    previous_secret_keys: Some("abc".into()),
                    ..raw()
                },
                "TOKENGATE_PREVIOUS_SECRET_KEYS",
            ),
            (
                RawSettings {
                    access_ttl: Some("soon".into()),
                    ..raw()
                },
                "TOKENGATE_ACCESS_TTL",
            ),
            (
                RawSettings {
                    refresh_ttl: Some("1s".into()),
                    ..raw()
                },
                "TOKENGATE_REFRESH_TTL",
            ),
            (
                RawSettings {
                    cookie_secure: Some("maybe".into()),
                    ..raw()
                },
                "TOKENGATE_COOKIE_SECURE",
            ),
            (
                RawSettings {
                    cors_origins: Some("*".into()),
                    ..raw()
                },
                "TOKENGATE_CORS_ORIGINS",
            ),
            (
                RawSettings {
                    login_rate: Some("10".into()),
                    ..raw()
                },
                "TOKENGATE_LOGIN_RATE",
            ),
            (
                RawSettings {
                    refresh_rate: Some("0/1m".into()),
                    ..raw()
                },
                "TOKENGATE_REFRESH_RATE",
            ),
            (
                RawSettings {
                    trusted_proxies: Some("10.0.0.0/33".into()),
                    ..raw()
                },
                "TOKENGATE_TRUSTED_PROXIES",
            ),
            (
                RawSettings {
                    log_format: Some("xml".into()),
                    ..raw()
                },
                "TOKENGATE_LOG_FORMAT",
            ),
            (
                RawSettings {
                    argon2_memory_kib: Some("1".into()),
                    ..raw()
                },
                "TOKENGATE_ARGON2_MEMORY_KIB",
            ),
            (
                RawSettings {
                    db_pool_size: Some("0".into()),
                    ..raw()
                },
                "TOKENGATE_DB_POOL_SIZE",
            ),
            (
                RawSettings {
                    redis_prefix: Some("has space".into()),
                    ..raw()
                },
                "TOKENGATE_REDIS_PREFIX",
            ),
            (
                RawSettings {
                    public_url: Some("ftp://auth.example.com".into()),
                    ..raw()
                },
                "TOKENGATE_PUBLIC_URL",
            ),
            (
                RawSettings {
                    session_max_lifetime: Some("1s".into()),
                    ..raw()
                },
                "TOKENGATE_SESSION_MAX_LIFETIME",
            ),
        ];
        for (r, var) in cases {
            let err = r.validate().unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn database_urls() {
        let p = parse_database_url("sqlite://data/t.db?mode=rwc").unwrap();
        assert_eq!(
            p,
            DatabaseUrl::Sqlite {
                path: PathBuf::from("data/t.db")
            }
        );
        assert!(matches!(
            parse_database_url("postgres://u:p@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = parse_database_url("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
    }
}
