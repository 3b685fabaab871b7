//! Settings: read once at start-up from flags, the environment and `.env`, validated
//! into typed values. A bad value is one line naming the variable to fix.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use ipnet::IpNet;

use crate::domain::Secret;

pub mod environment;
mod secret;

pub use secret::check_secret;

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

/// Where state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server.
    Postgres(String),
}

/// The JWT signing algorithm of the active key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Hs256,
    EdDsa,
    Es256,
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE name (`alg` header).
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// `N` attempts per `window_secs` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's argon2id baseline: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Every setting of the server, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub redis_url: Option<String>,
    /// `None`: not configured, so an active key in the database decides (else HS256).
    pub algorithm: Option<SigningAlgorithm>,
    /// The external base URL (`https://auth.example.com`), for every absolute URL we emit.
    pub public_url: Option<String>,
    /// `None`: generate one and keep it beside the SQLite file.
    pub secret_key: Option<Secret>,
    pub previous_secret_keys: Vec<Secret>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// A session ends this long after its login, however often it refreshes.
    pub session_max_lifetime_secs: u64,
    pub cookie_secure: bool,
    pub cors_origins: Vec<String>,
    pub login_rate: Rate,
    pub refresh_rate: Rate,
    pub register_rate: Rate,
    pub trusted_proxies: Vec<IpNet>,
    pub log_format: LogFormat,
    pub argon2: Argon2Params,
    /// Password hashes waiting for a core, at most; past that, 503 with `Retry-After`.
    pub hash_queue_max: usize,
    pub http: HttpLimits,
}

/// Connection-level limits: what a slow or idle client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this time, or the connection is closed.
    /// The same clock runs while a keep-alive connection waits for its next request, so
    /// it is the idle timeout too.
    pub header_timeout_secs: u64,
    /// A request whose body and answer take longer is answered 408 (a slow body).
    pub request_timeout_secs: u64,
    /// Open connections at most; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 4096,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: DatabaseUrl::Sqlite {
                path: PathBuf::from("tokengate.db"),
            },
            redis_url: None,
            algorithm: None,
            public_url: None,
            secret_key: None,
            previous_secret_keys: Vec::new(),
            issuer: "tokengate".into(),
            audience: "tokengate".into(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 3600,
            session_max_lifetime_secs: 30 * 24 * 3600,
            cookie_secure: true,
            cors_origins: Vec::new(),
            login_rate: Rate {
                count: 10,
                window_secs: 60,
            },
            refresh_rate: Rate {
                count: 60,
                window_secs: 60,
            },
            register_rate: Rate {
                count: 5,
                window_secs: 60,
            },
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Pretty,
            argon2: Argon2Params::default(),
            hash_queue_max: 64,
            http: HttpLimits::default(),
        }
    }
}

/// The raw values, as flags or `TOKENGATE_*` variables (clap reads both; `.env` is
/// loaded into the environment before). Kept as strings so that validation, not clap,
/// words the error.
#[derive(Args, Debug, Default, Clone)]
pub struct RawSettings {
    /// Address to listen on [default: 127.0.0.1:8000]
    #[arg(long, env = "TOKENGATE_BIND", global = true)]
    pub bind: Option<String>,
    /// sqlite://FILE or postgres://... [default: sqlite://tokengate.db]
    #[arg(long, env = "TOKENGATE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// redis://... for shared revocation and rate limits across instances
    #[arg(long, env = "TOKENGATE_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// HS256 (default), EdDSA, ES256 or RS256
    #[arg(long, env = "TOKENGATE_ALGORITHM", global = true)]
    pub algorithm: Option<String>,
    /// HS256 secret, at least 32 bytes [default: generated and kept beside the SQLite file]
    #[arg(long, env = "TOKENGATE_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Comma-separated HS256 secrets still accepted for verification
    #[arg(long, env = "TOKENGATE_PREVIOUS_SECRET_KEYS", global = true, hide_env_values = true)]
    pub previous_secret_keys: Option<String>,
    /// External base URL, e.g. https://auth.example.com [default: http://BIND]
    #[arg(long, env = "TOKENGATE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// `iss` claim [default: tokengate]
    #[arg(long, env = "TOKENGATE_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// `aud` claim [default: tokengate]
    #[arg(long, env = "TOKENGATE_AUDIENCE", global = true)]
    pub audience: Option<String>,
    /// Access token lifetime, e.g. 2s, 10m, 1h [default: 15m]
    #[arg(long, env = "TOKENGATE_ACCESS_TTL", global = true)]
    pub access_ttl: Option<String>,
    /// Refresh token lifetime [default: 7d]
    #[arg(long, env = "TOKENGATE_REFRESH_TTL", global = true)]
    pub refresh_ttl: Option<String>,
    /// A session ends this long after login, however often it refreshes [default: 30d]
    #[arg(long, env = "TOKENGATE_SESSION_MAX_LIFETIME", global = true)]
    pub session_max_lifetime: Option<String>,
    /// Secure attribute on cookies; false only for plain-HTTP local development [default: true]
    #[arg(long, env = "TOKENGATE_COOKIE_SECURE", global = true)]
    pub cookie_secure: Option<String>,
    /// Comma-separated exact origins allowed by CORS
    #[arg(long, env = "TOKENGATE_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Login attempts per IP and per username, N/WINDOW [default: 10/1m]
    #[arg(long, env = "TOKENGATE_LOGIN_RATE", global = true)]
    pub login_rate: Option<String>,
    /// Refreshes per IP, N/WINDOW [default: 60/1m]
    #[arg(long, env = "TOKENGATE_REFRESH_RATE", global = true)]
    pub refresh_rate: Option<String>,
    /// Registrations per IP, N/WINDOW [default: 5/1m]
    #[arg(long, env = "TOKENGATE_REGISTER_RATE", global = true)]
    pub register_rate: Option<String>,
    /// Comma-separated CIDRs whose X-Forwarded-For is believed [default: none]
    #[arg(long, env = "TOKENGATE_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// json or pretty [default: pretty]
    #[arg(long, env = "TOKENGATE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// argon2id memory cost in KiB [default: 19456]
    #[arg(long, env = "TOKENGATE_ARGON2_MEMORY_KIB", global = true)]
    pub argon2_memory_kib: Option<String>,
    /// argon2id iterations [default: 2]
    #[arg(long, env = "TOKENGATE_ARGON2_ITERATIONS", global = true)]
    pub argon2_iterations: Option<String>,
    /// argon2id lanes [default: 1]
    #[arg(long, env = "TOKENGATE_ARGON2_PARALLELISM", global = true)]
    pub argon2_parallelism: Option<String>,
    /// Password hashes that may wait for a core before 503 [default: 64]
    #[arg(long, env = "TOKENGATE_HASH_QUEUE", global = true)]
    pub hash_queue: Option<String>,
    /// Time a client has to send a request's headers; also the keep-alive idle timeout [default: 10s]
    #[arg(long, env = "TOKENGATE_HEADER_TIMEOUT", global = true)]
    pub header_timeout: Option<String>,
    /// Time a request's body and answer may take before 408 [default: 30s]
    #[arg(long, env = "TOKENGATE_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<String>,
    /// Open connections at most [default: 4096]
    #[arg(long, env = "TOKENGATE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<String>,
}

impl RawSettings {
    /// Validate every value; the first problem found is returned.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            bind: opt("TOKENGATE_BIND", &self.bind, d.bind, |v| {
                v.parse()
                    .map_err(|_| format!("{v:?} is not an address like 127.0.0.1:8000"))
            })?,
            database_url: opt(
                "TOKENGATE_DATABASE_URL",
                &self.database_url,
                d.database_url,
                parse_database_url,
            )?,
            redis_url: match non_empty(&self.redis_url) {
                None => None,
                Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => Some(v.to_owned()),
                Some(v) => {
                    return Err(ConfigError::new(
                        "TOKENGATE_REDIS_URL",
                        format!("{:?} is not a redis:// or rediss:// URL", redact_url(v)),
                    ));
                }
            },
            algorithm: opt("TOKENGATE_ALGORITHM", &self.algorithm, None, |v| {
                parse_algorithm(v).map(Some)
            })?,
            public_url: opt("TOKENGATE_PUBLIC_URL", &self.public_url, None, |v| {
                parse_public_url(v).map(Some)
            })?,
            secret_key: match non_empty(&self.secret_key) {
                None => None,
                Some(v) => Some(check_secret(v).map_err(|m| ConfigError::new("TOKENGATE_SECRET_KEY", m))?),
            },
            previous_secret_keys: match non_empty(&self.previous_secret_keys) {
                None => Vec::new(),
                Some(v) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(check_secret)
                    .collect::<Result<_, _>>()
                    .map_err(|m| ConfigError::new("TOKENGATE_PREVIOUS_SECRET_KEYS", m))?,
            },
            issuer: opt("TOKENGATE_ISSUER", &self.issuer, d.issuer, |v| Ok(v.to_owned()))?,
            audience: opt("TOKENGATE_AUDIENCE", &self.audience, d.audience, |v| Ok(v.to_owned()))?,
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
            cookie_secure: opt(
                "TOKENGATE_COOKIE_SECURE",
                &self.cookie_secure,
                d.cookie_secure,
                parse_bool,
            )?,
            cors_origins: match non_empty(&self.cors_origins) {
                None => Vec::new(),
                Some(v) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(parse_origin)
                    .collect::<Result<_, _>>()
                    .map_err(|m| ConfigError::new("TOKENGATE_CORS_ORIGINS", m))?,
            },
            login_rate: opt("TOKENGATE_LOGIN_RATE", &self.login_rate, d.login_rate, parse_rate)?,
            refresh_rate: opt("TOKENGATE_REFRESH_RATE", &self.refresh_rate, d.refresh_rate, parse_rate)?,
            register_rate: opt(
                "TOKENGATE_REGISTER_RATE",
                &self.register_rate,
                d.register_rate,
                parse_rate,
            )?,
            trusted_proxies: match non_empty(&self.trusted_proxies) {
                None => Vec::new(),
                Some(v) => v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(parse_cidr)
                    .collect::<Result<_, _>>()
                    .map_err(|m| ConfigError::new("TOKENGATE_TRUSTED_PROXIES", m))?,
            },
            log_format: opt("TOKENGATE_LOG_FORMAT", &self.log_format, d.log_format, |v| match v {
                "json" => Ok(LogFormat::Json),
                "pretty" => Ok(LogFormat::Pretty),
                _ => Err(format!("{v:?} is not json or pretty")),
            })?,
            argon2: Argon2Params {
                memory_kib: opt(
                    "TOKENGATE_ARGON2_MEMORY_KIB",
                    &self.argon2_memory_kib,
                    d.argon2.memory_kib,
                    |v| parse_in_range(v, 8, 4 * 1024 * 1024),
                )?,
                iterations: opt(
                    "TOKENGATE_ARGON2_ITERATIONS",
                    &self.argon2_iterations,
                    d.argon2.iterations,
                    |v| parse_in_range(v, 1, 100),
                )?,
                parallelism: opt(
                    "TOKENGATE_ARGON2_PARALLELISM",
                    &self.argon2_parallelism,
                    d.argon2.parallelism,
                    |v| parse_in_range(v, 1, 64),
                )?,
            },
            hash_queue_max: opt("TOKENGATE_HASH_QUEUE", &self.hash_queue, d.hash_queue_max, |v| {
                parse_in_range(v, 1, 100_000).map(|n| n as usize)
            })?,
            http: HttpLimits {
                header_timeout_secs: opt(
                    "TOKENGATE_HEADER_TIMEOUT",
                    &self.header_timeout,
                    d.http.header_timeout_secs,
                    parse_duration,
                )?,
                request_timeout_secs: opt(
                    "TOKENGATE_REQUEST_TIMEOUT",
                    &self.request_timeout,
                    d.http.request_timeout_secs,
                    parse_duration,
                )?,
                max_connections: opt(
                    "TOKENGATE_MAX_CONNECTIONS",
                    &self.max_connections,
                    d.http.max_connections,
                    |v| parse_in_range(v, 1, 1_000_000).map(|n| n as usize),
                )?,
            },
        };
        if s.argon2.memory_kib < 8 * s.argon2.parallelism {
            return Err(ConfigError::new(
                "TOKENGATE_ARGON2_MEMORY_KIB",
                "must be at least 8 KiB per lane (TOKENGATE_ARGON2_PARALLELISM)",
            ));
        }
        if s.session_max_lifetime_secs < s.access_ttl_secs {
            return Err(ConfigError::new(
                "TOKENGATE_SESSION_MAX_LIFETIME",
                "must not be shorter than TOKENGATE_ACCESS_TTL",
            ));
        }
        if s.refresh_ttl_secs < s.access_ttl_secs {
            return Err(ConfigError::new(
                "TOKENGATE_REFRESH_TTL",
                "must not be shorter than TOKENGATE_ACCESS_TTL",
            ));
        }
        Ok(s)
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
    if let Some(rest) = v.strip_prefix("sqlite://").or_else(|| v.strip_prefix("sqlite:")) {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err("sqlite needs a file path, e.g. sqlite://tokengate.db".into());
        }
        return Ok(DatabaseUrl::Sqlite {
            path: PathBuf::from(path),
        });
    }
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(v.to_owned()));
    }
    Err(format!(
        "{:?} is neither sqlite://FILE nor postgres://...",
        redact_url(v)
    ))
}

/// A URL without its password, fit for an error message.
fn redact_url(v: &str) -> String {
    match (v.find("://"), v.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &v[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &v[..s + 3], user, &v[at..])
        }
        _ => v.to_owned(),
    }
}

fn parse_algorithm(v: &str) -> Result<SigningAlgorithm, String> {
    match v {
        "HS256" => Ok(SigningAlgorithm::Hs256),
        "EdDSA" => Ok(SigningAlgorithm::EdDsa),
        "ES256" => Ok(SigningAlgorithm::Es256),
        "RS256" => Ok(SigningAlgorithm::Rs256),
        _ => Err(format!("{v:?} is not one of HS256, EdDSA, ES256, RS256")),
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

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

fn parse_rate(v: &str) -> Result<Rate, String> {
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
fn parse_public_url(v: &str) -> Result<String, String> {
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

fn parse_cidr(v: &str) -> Result<IpNet, String> {
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
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.access_ttl_secs, 900);
        assert_eq!(s.refresh_ttl_secs, 604_800);
        assert_eq!(
            s.login_rate,
            Rate {
                count: 10,
                window_secs: 60
            }
        );
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
    fn each_error_names_its_variable() {
        let cases: Vec<(RawSettings, &str)> = vec![
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
