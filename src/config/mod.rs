//! Settings: read once at start-up from flags, the environment and `.env`, validated
//! into typed values. A bad value is one line naming the variable to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::crypto::keys::SigningAlgorithm;
use crate::crypto::passwords::Argon2Params;
use crate::domain::Secret;
use crate::http::ConnectionLimits;
use crate::limits::Rate;
use crate::mail::{MailSettings, MailTransportSettings, SmtpUrl, parse_mailbox};
pub use crate::store::DatabaseUrl;
use crate::store::StoreSettings;

mod declare;
pub mod environment;
mod error;

use declare::settings;
pub use error::ConfigError;

pub use crate::crypto::secret_strength::check_secret;

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
    pub mail: MailSettings,
    pub recovery: RecoverySettings,
    pub mfa: MfaSettings,
    pub webauthn: WebauthnSettings,
}

/// Passkeys: this server as a WebAuthn relying party.
#[derive(Clone, Debug, Default)]
pub struct WebauthnSettings {
    /// `None`: the public URL's host.
    pub rp_id: Option<String>,
    /// Empty: the public URL's origin.
    pub origins: Vec<String>,
}

/// Multi-factor sign-in.
#[derive(Clone, Debug)]
pub struct MfaSettings {
    /// Second-factor codes tried for one account.
    pub rate: Rate,
    /// Roles whose holders must have MFA on to act with them.
    pub required_roles: Vec<crate::domain::Role>,
}

/// Account recovery and email verification.
#[derive(Clone, Copy, Debug)]
pub struct RecoverySettings {
    pub mail_rate: Rate,
    pub mail_network_rate: Rate,
    pub reset_ttl_secs: u64,
    pub magic_links: bool,
    pub require_verified_email: bool,
}

/// The sender of file-transport mail when none is set.
const DEFAULT_MAIL_FROM: &str = "tokengate <no-reply@localhost>";

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
    /// Every declared default (a configuration that sets nothing).
    fn default() -> Self {
        RawSettings::default()
            .validate()
            .expect("every declared default is valid (config::tests)")
    }
}

settings! {
    /// Address to listen on
    bind: SocketAddr = one("TOKENGATE_BIND", "127.0.0.1:8000", parse_bind);
    /// sqlite://FILE or postgres://...
    database_url: DatabaseUrl = one("TOKENGATE_DATABASE_URL", hide_env_values, "sqlite://tokengate.db", DatabaseUrl::parse);
    /// Database connections at most (PostgreSQL)
    db_pool_size: u32 = one("TOKENGATE_DB_POOL_SIZE", "10", |v| parse_in_range(v, 1, 1000));
    /// Time to open a database connection
    db_connect_timeout: u64 = one("TOKENGATE_DB_CONNECT_TIMEOUT", "5s", parse_duration);
    /// redis://... for shared revocation and rate limits across instances
    redis_url: String = maybe("TOKENGATE_REDIS_URL", hide_env_values, "", parse_redis_url);
    /// Prefix of every Redis key
    redis_prefix: String = one("TOKENGATE_REDIS_PREFIX", "tokengate:", parse_redis_prefix);
    /// HS256 (default), EdDSA, ES256 or RS256
    algorithm: SigningAlgorithm = maybe("TOKENGATE_ALGORITHM", "", parse_algorithm);
    /// HS256 secret, at least 32 bytes [default: generated and kept beside the SQLite file]
    secret_key: Secret = maybe("TOKENGATE_SECRET_KEY", hide_env_values, "", check_secret);
    /// Comma-separated HS256 secrets still accepted for verification
    previous_secret_keys: Secret = list("TOKENGATE_PREVIOUS_SECRET_KEYS", hide_env_values, "", check_secret);
    /// 32 random bytes, base64 (openssl rand -base64 32): private keys and server secrets are stored encrypted [default: stored unencrypted]
    encryption_key: Secret = maybe("TOKENGATE_ENCRYPTION_KEY", hide_env_values, "", parse_encryption_key);
    /// A file holding TOKENGATE_ENCRYPTION_KEY (e.g. a mounted secret)
    encryption_key_file: String = maybe("TOKENGATE_ENCRYPTION_KEY_FILE", "", |v| Ok(v.to_owned()));
    /// Comma-separated earlier encryption keys, still opened (for `tokengate keys reencrypt`)
    previous_encryption_keys: Secret = list("TOKENGATE_PREVIOUS_ENCRYPTION_KEYS", hide_env_values, "", parse_encryption_key);
    /// Serve /metrics (no token) on this private address, e.g. 10.0.0.5:9100 [default: none]
    metrics_bind: SocketAddr = maybe("TOKENGATE_METRICS_BIND", "", parse_metrics_bind);
    /// Bearer token for /metrics on the main address (at least 32 characters); unset: 404 there
    metrics_token: Secret = maybe("TOKENGATE_METRICS_TOKEN", hide_env_values, "", parse_metrics_token);
    /// External base URL, e.g. https://auth.example.com [default: http://BIND]
    public_url: String = maybe("TOKENGATE_PUBLIC_URL", "", parse_public_url);
    /// Mount every route under this path, e.g. /api/v1 [default: none]
    path_prefix: String = one("TOKENGATE_PATH_PREFIX", "", parse_path_prefix);
    /// `iss` claim
    issuer: String = one("TOKENGATE_ISSUER", "tokengate", |v| Ok(v.to_owned()));
    /// `aud` claim
    audience: String = one("TOKENGATE_AUDIENCE", "tokengate", |v| Ok(v.to_owned()));
    /// Access token lifetime, e.g. 2s, 10m, 1h
    access_ttl: u64 = one("TOKENGATE_ACCESS_TTL", "15m", parse_duration);
    /// Refresh token lifetime
    refresh_ttl: u64 = one("TOKENGATE_REFRESH_TTL", "7d", parse_duration);
    /// A session ends this long after login, however often it refreshes
    session_max_lifetime: u64 = one("TOKENGATE_SESSION_MAX_LIFETIME", "30d", parse_duration);
    /// Seconds after a rotation in which the spent token gets the same successor again
    /// (two tabs, a retried request) instead of revoking the session; at most 60s
    refresh_reuse_grace: u64 = one("TOKENGATE_REFRESH_REUSE_GRACE", "0s", parse_reuse_grace);
    /// What a session keeps of the client's IP: full, prefix (/24, /48) or none
    session_ip: crate::auth::SessionIp = one("TOKENGATE_SESSION_IP", "full", parse_session_ip);
    /// Secure attribute on cookies; false only for plain-HTTP local development
    cookie_secure: bool = one("TOKENGATE_COOKIE_SECURE", "true", parse_bool);
    /// Comma-separated exact origins allowed by CORS
    cors_origins: String = list("TOKENGATE_CORS_ORIGINS", "", parse_origin);
    /// Login attempts per IP and per username, N/WINDOW
    login_rate: Rate = one("TOKENGATE_LOGIN_RATE", "10/1m", parse_rate);
    /// Refreshes per IP, N/WINDOW
    refresh_rate: Rate = one("TOKENGATE_REFRESH_RATE", "60/1m", parse_rate);
    /// Registrations per IP, N/WINDOW
    register_rate: Rate = one("TOKENGATE_REGISTER_RATE", "5/1m", parse_rate);
    /// Comma-separated CIDRs whose X-Forwarded-For is believed [default: none]
    trusted_proxies: IpNet = list("TOKENGATE_TRUSTED_PROXIES", "", parse_cidr);
    /// json or pretty
    log_format: LogFormat = one("TOKENGATE_LOG_FORMAT", "pretty", parse_log_format);
    /// OTLP/HTTP collector, e.g. http://127.0.0.1:4318: export traces there [default: off]
    otlp_endpoint: String = maybe("TOKENGATE_OTLP_ENDPOINT", "", parse_otlp_endpoint);
    /// argon2id memory cost in KiB
    argon2_memory_kib: u32 = one("TOKENGATE_ARGON2_MEMORY_KIB", "12288", |v| parse_in_range(v, 8, 4 * 1024 * 1024));
    /// argon2id iterations
    argon2_iterations: u32 = one("TOKENGATE_ARGON2_ITERATIONS", "3", |v| parse_in_range(v, 1, 100));
    /// argon2id lanes
    argon2_parallelism: u32 = one("TOKENGATE_ARGON2_PARALLELISM", "1", |v| parse_in_range(v, 1, 64));
    /// Password hashes that may wait for a core before 503
    hash_queue: usize = one("TOKENGATE_HASH_QUEUE", "64", |v| parse_in_range(v, 1, 100_000).map(|n| n as usize));
    /// Imported bcrypt hashes above this cost are refused (and never verified)
    bcrypt_max_cost: u32 = one("TOKENGATE_BCRYPT_MAX_COST", "14", |v| parse_in_range(v, 4, 31));
    /// Time a client has to send a request's headers; also the keep-alive idle timeout
    header_timeout: u64 = one("TOKENGATE_HEADER_TIMEOUT", "10s", parse_duration);
    /// Time a request's body and answer may take before 408
    request_timeout: u64 = one("TOKENGATE_REQUEST_TIMEOUT", "30s", parse_duration);
    /// Open connections at most
    max_connections: usize = one("TOKENGATE_MAX_CONNECTIONS", "4096", |v| parse_in_range(v, 1, 1_000_000).map(|n| n as usize));
    /// Open connections from one client network at most; trusted proxies exempt
    max_connections_per_client: usize = one("TOKENGATE_MAX_CONNECTIONS_PER_CLIENT", "256", |v| parse_in_range(v, 1, 1_000_000).map(|n| n as usize));
    /// Requests one connection serves before it is closed
    max_requests_per_connection: u32 = one("TOKENGATE_MAX_REQUESTS_PER_CONNECTION", "1000", |v| parse_in_range(v, 1, 1_000_000_000));
    /// How long one connection may stay open
    max_connection_age: u64 = one("TOKENGATE_MAX_CONNECTION_AGE", "5m", parse_duration);
    /// smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465, or
    /// smtp://127.0.0.1:2525?tls=none (a loopback sink) [default: .eml files]
    smtp_url: SmtpUrl = maybe("TOKENGATE_SMTP_URL", hide_env_values, "", SmtpUrl::parse);
    /// Sender of every mail, e.g. "Example <no-reply@example.com>" (required with SMTP)
    /// [default: tokengate <no-reply@localhost>]
    mail_from: lettre::message::Mailbox = maybe("TOKENGATE_MAIL_FROM", "", parse_mailbox);
    /// Folder of .eml files when no SMTP server is set [default: mail/ beside the SQLite file]
    mail_dir: PathBuf = maybe("TOKENGATE_MAIL_DIR", "", |v| Ok(PathBuf::from(v)));
    /// Mail (verification, reset, magic link) to one address, N/WINDOW; unknown addresses count alike
    mail_rate: Rate = one("TOKENGATE_MAIL_RATE", "3/15m", parse_rate);
    /// Mail asked for from one client address (any recipients), N/WINDOW
    mail_network_rate: Rate = one("TOKENGATE_MAIL_NETWORK_RATE", "20/15m", parse_rate);
    /// How long a password-reset link works
    reset_ttl: u64 = one("TOKENGATE_RESET_TTL", "30m", parse_duration);
    /// Sign-in links by mail (POST /auth/magic-link): on or off
    magic_links: bool = one("TOKENGATE_MAGIC_LINKS", "off", parse_bool);
    /// Refuse the login of a user whose address is not verified (403)
    require_verified_email: bool = one("TOKENGATE_REQUIRE_VERIFIED_EMAIL", "false", parse_bool);
    /// Second-factor codes tried for one account (sign-in, step-up), N/WINDOW
    mfa_rate: Rate = one("TOKENGATE_MFA_RATE", "5/5m", parse_rate);
    /// Roles whose holders must turn MFA on to use them, comma-separated (e.g. admin)
    require_mfa_roles: crate::domain::Role = list("TOKENGATE_REQUIRE_MFA_ROLES", "", parse_role);
    /// Passkeys' relying party ID: a domain name, the public URL's host or a parent of
    /// it (changing it orphans every passkey) [default: the public URL's host]
    webauthn_rp_id: String = maybe("TOKENGATE_WEBAUTHN_RP_ID", "", parse_rp_id);
    /// Comma-separated exact origins passkeys are used from [default: the public URL's]
    webauthn_origins: String = list("TOKENGATE_WEBAUTHN_ORIGINS", "", parse_origin);
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
        let s = Settings {
            http: HttpSettings {
                bind: self.bind()?,
                public_url: self.public_url()?,
                path_prefix: self.path_prefix()?,
                cookie_secure: self.cookie_secure()?,
                cors_origins: self.cors_origins()?,
                trusted_proxies: self.trusted_proxies()?,
                connections: ConnectionLimits {
                    header_timeout_secs: self.header_timeout()?,
                    request_timeout_secs: self.request_timeout()?,
                    max_connections: self.max_connections()?,
                    max_connections_per_client: self.max_connections_per_client()?,
                    max_requests_per_connection: self.max_requests_per_connection()?,
                    max_connection_age_secs: self.max_connection_age()?,
                },
                metrics_bind: self.metrics_bind()?,
                metrics_token: self.metrics_token()?,
            },
            store: StoreSettings {
                database_url: self.database_url()?,
                pool_size: self.db_pool_size()?,
                connect_timeout_secs: self.db_connect_timeout()?,
            },
            redis: RedisSettings {
                url: self.redis_url()?,
                prefix: self.redis_prefix()?,
            },
            tokens: TokenSettings {
                algorithm: self.algorithm()?,
                secret_key: self.secret_key()?,
                previous_secret_keys: self.previous_secret_keys()?,
                issuer: self.issuer()?,
                audience: self.audience()?,
                access_ttl_secs: self.access_ttl()?,
                refresh_ttl_secs: self.refresh_ttl()?,
                session_max_lifetime_secs: self.session_max_lifetime()?,
                refresh_reuse_grace_secs: self.refresh_reuse_grace()?,
                session_ip: self.session_ip()?,
            },
            limits: LimitSettings {
                login: self.login_rate()?,
                refresh: self.refresh_rate()?,
                register: self.register_rate()?,
                hash_queue_max: self.hash_queue()?,
                bcrypt_max_cost: self.bcrypt_max_cost()?,
            },
            argon2: Argon2Params {
                memory_kib: self.argon2_memory_kib()?,
                iterations: self.argon2_iterations()?,
                parallelism: self.argon2_parallelism()?,
            },
            log_format: self.log_format()?,
            otlp_endpoint: self.otlp_endpoint()?,
            encryption: EncryptionSettings {
                key: self.encryption()?,
                previous: self.previous_encryption_keys()?,
            },
            mail: self.mail()?,
            recovery: RecoverySettings {
                mail_rate: self.mail_rate()?,
                mail_network_rate: self.mail_network_rate()?,
                reset_ttl_secs: self.reset_ttl()?,
                magic_links: self.magic_links()?,
                require_verified_email: self.require_verified_email()?,
            },
            mfa: MfaSettings {
                rate: self.mfa_rate()?,
                required_roles: self.require_mfa_roles()?,
            },
            webauthn: WebauthnSettings {
                rp_id: self.webauthn_rp_id()?,
                origins: self.webauthn_origins()?,
            },
        };
        // What no one setting can say alone.
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
        if s.argon2.memory_kib < 8 * s.argon2.parallelism {
            return Err(ConfigError::new(
                "TOKENGATE_ARGON2_MEMORY_KIB",
                "must be at least 8 KiB per lane (TOKENGATE_ARGON2_PARALLELISM)",
            ));
        }
        Ok(s)
    }

    /// Where mail goes and whom it is from. Without SMTP, files beside the SQLite
    /// database (or in `mail/` of the working folder with PostgreSQL).
    fn mail(&self) -> Result<MailSettings, ConfigError> {
        let transport = match (self.smtp_url()?, self.mail_dir()?) {
            (Some(url), _) => MailTransportSettings::Smtp(url),
            (None, Some(dir)) => MailTransportSettings::Files(dir),
            (None, None) => MailTransportSettings::Files(match self.database_url()? {
                DatabaseUrl::Sqlite { path } => path.parent().unwrap_or(Path::new("")).join("mail"),
                DatabaseUrl::Postgres(_) => PathBuf::from("mail"),
            }),
        };
        let from = match self.mail_from()? {
            Some(from) => from,
            None if matches!(transport, MailTransportSettings::Smtp(_)) => {
                return Err(ConfigError::new(
                    "TOKENGATE_MAIL_FROM",
                    "set the sender mail goes out as, e.g. \"Example <no-reply@example.com>\" (an SMTP server refuses mail from no-reply@localhost)",
                ));
            }
            None => parse_mailbox(DEFAULT_MAIL_FROM).map_err(|m| ConfigError::new("TOKENGATE_MAIL_FROM", m))?,
        };
        Ok(MailSettings { transport, from })
    }

    /// The encryption key, given as itself or as a file (not both).
    fn encryption(&self) -> Result<Option<Secret>, ConfigError> {
        match (self.encryption_key()?, self.encryption_key_file()?) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "TOKENGATE_ENCRYPTION_KEY_FILE",
                "set TOKENGATE_ENCRYPTION_KEY or TOKENGATE_ENCRYPTION_KEY_FILE, not both",
            )),
            (Some(key), None) => Ok(Some(key)),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new("TOKENGATE_ENCRYPTION_KEY_FILE", format!("cannot read {path}: {e}"))
                })?;
                parse_encryption_key(&text)
                    .map(Some)
                    .map_err(|m| ConfigError::new("TOKENGATE_ENCRYPTION_KEY_FILE", format!("{path}: {m}")))
            }
            (None, None) => Ok(None),
        }
    }
}

fn parse_redis_url(v: &str) -> Result<String, String> {
    if v.starts_with("redis://") || v.starts_with("rediss://") {
        Ok(v.to_owned())
    } else {
        Err(format!("{:?} is not a redis:// or rediss:// URL", redact_url(v)))
    }
}

fn parse_redis_prefix(v: &str) -> Result<String, String> {
    if v.len() <= 64 && !v.contains(char::is_whitespace) {
        Ok(v.to_owned())
    } else {
        Err(format!("{v:?} must be at most 64 characters without spaces"))
    }
}

fn parse_log_format(v: &str) -> Result<LogFormat, String> {
    match v {
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        _ => Err(format!("{v:?} is not json or pretty")),
    }
}

fn parse_metrics_bind(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not an address like 0.0.0.0:9100"))
}

fn parse_metrics_token(v: &str) -> Result<Secret, String> {
    if v.chars().count() < 32 {
        return Err("must be at least 32 characters (e.g. `openssl rand -hex 32`)".into());
    }
    Ok(Secret::new(v.as_bytes().to_vec()))
}

pub use crate::store::redact_url;

fn parse_algorithm(v: &str) -> Result<SigningAlgorithm, String> {
    if let Some(alg) = SigningAlgorithm::from_jose(v) {
        return Ok(alg);
    }
    // JOSE names are case-sensitive (a JWT's `alg` must match exactly): suggested, not guessed.
    let names = SigningAlgorithm::ALL.map(SigningAlgorithm::jose_name);
    match names.iter().find(|n| n.eq_ignore_ascii_case(v.trim())) {
        Some(name) => Err(format!(
            "{v:?} is not one of {}; did you mean {name}?",
            names.join(", ")
        )),
        None => Err(format!("{v:?} is not one of {}", names.join(", "))),
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

fn parse_role(v: &str) -> Result<crate::domain::Role, String> {
    crate::domain::Role::parse(v).map_err(|e| format!("{v:?}: {e}"))
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

/// A WebAuthn RP ID: a domain name (browsers refuse an IP address, a port or a scheme).
fn parse_rp_id(v: &str) -> Result<String, String> {
    let id = v.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if id.parse::<std::net::IpAddr>().is_ok() || id.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!(
            "{v:?} is an IP address; WebAuthn needs a domain name (e.g. auth.example.com or localhost)"
        ));
    }
    if id.is_empty() || id.len() > 253 || !id.split('.').all(label_ok) {
        return Err(format!(
            "{v:?} is not a domain name like auth.example.com (no scheme, port or path)"
        ));
    }
    Ok(id)
}

fn parse_in_range(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_declared_defaults_are_the_products_defaults() {
        let d = Settings::default();
        assert_eq!(d.http.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(d.http.connections, ConnectionLimits::default());
        assert_eq!(d.argon2, Argon2Params::default());
        assert_eq!(
            d.limits.bcrypt_max_cost,
            crate::crypto::passwords::DEFAULT_BCRYPT_MAX_COST
        );
        assert_eq!(
            (
                d.tokens.access_ttl_secs,
                d.tokens.refresh_ttl_secs,
                d.tokens.session_max_lifetime_secs
            ),
            (15 * 60, 7 * 86_400, 30 * 86_400)
        );
        assert_eq!((d.limits.login.count, d.limits.login.window_secs), (10, 60));
        assert_eq!(
            d.store.database_url,
            DatabaseUrl::Sqlite {
                path: "tokengate.db".into()
            }
        );
        assert!(d.tokens.secret_key.is_none() && d.redis.url.is_none() && d.http.path_prefix.is_empty());
        // Every declared variable is read (a declaration with a typo in its variable
        // would show up as an unknown variable here).
        let known = environment::known_variables();
        assert!(DECLARED.iter().all(|v| known.iter().any(|k| k == v)));
        assert_eq!(DECLARED.len(), 54);
    }
    use super::*;

    #[test]
    fn an_rp_id_is_a_domain_name() {
        assert_eq!(parse_rp_id("Auth.Example.COM.").unwrap(), "auth.example.com");
        assert_eq!(parse_rp_id("localhost").unwrap(), "localhost");
        for bad in [
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "https://auth.example.com",
            "auth.example.com:443",
            "",
            "-a.com",
            "a..b",
            "a/b",
        ] {
            assert!(parse_rp_id(bad).is_err(), "{bad:?}");
        }
        assert!(parse_rp_id("192.168.1.1").unwrap_err().contains("IP address"));
    }

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
    fn mail_goes_to_files_beside_the_database_unless_an_smtp_server_is_set() {
        use crate::mail::{MailTransportSettings, SmtpTls};
        let files = |s: Settings| match s.mail.transport {
            MailTransportSettings::Files(dir) => dir,
            other => panic!("{other:?}"),
        };
        assert_eq!(files(raw().validate().unwrap()), PathBuf::from("mail"));
        let beside = RawSettings {
            database_url: Some("sqlite://data/t.db".into()),
            ..raw()
        };
        assert_eq!(files(beside.validate().unwrap()), PathBuf::from("data/mail"));
        let chosen = RawSettings {
            mail_dir: Some("/var/mail/tg".into()),
            ..raw()
        };
        assert_eq!(files(chosen.validate().unwrap()), PathBuf::from("/var/mail/tg"));
        assert_eq!(raw().validate().unwrap().mail.from.to_string(), DEFAULT_MAIL_FROM);

        let smtp = RawSettings {
            smtp_url: Some("smtps://me:pw@mail.example.com".into()),
            mail_from: Some("Example <no-reply@example.com>".into()),
            ..raw()
        };
        let s = smtp.validate().unwrap();
        match &s.mail.transport {
            MailTransportSettings::Smtp(url) => assert_eq!((url.port, url.tls), (465, SmtpTls::Implicit)),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.mail.from.to_string(), "Example <no-reply@example.com>");
        assert!(!format!("{s:?}").contains(":pw@"), "the password never prints");
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
                    smtp_url: Some("smtp://mail.example.com?tls=none".into()),
                    ..raw()
                },
                "TOKENGATE_SMTP_URL",
            ),
            (
                // An SMTP server refuses mail from no-reply@localhost: the sender is required.
                RawSettings {
                    smtp_url: Some("smtp://mail.example.com".into()),
                    ..raw()
                },
                "TOKENGATE_MAIL_FROM",
            ),
            (
                RawSettings {
                    mail_from: Some("nobody".into()),
                    ..raw()
                },
                "TOKENGATE_MAIL_FROM",
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
        let p = crate::store::DatabaseUrl::parse("sqlite://data/t.db?mode=rwc").unwrap();
        assert_eq!(
            p,
            DatabaseUrl::Sqlite {
                path: std::path::PathBuf::from("data/t.db")
            }
        );
        assert!(matches!(
            crate::store::DatabaseUrl::parse("postgres://u:p@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = crate::store::DatabaseUrl::parse("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
    }
}
