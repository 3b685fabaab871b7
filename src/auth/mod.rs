//! Every rule of the product, with no HTTP and no SQL: what login issues, how refresh
//! rotates, what logout kills. Handlers call one method here each.

mod account;
mod addresses;
mod admin;
mod budget;
mod error;
pub mod import;
pub mod keys;
mod mail;
mod mfa;
pub mod oauth;
mod passkeys;
mod recovery;
mod sessions;
mod signing;

pub use crate::events::SessionIp;
pub use admin::UserChange;
pub use mail::QueuedMail;
pub use mfa::{MfaStatus, StepUp, TotpEnrolment};
pub use passkeys::{CEREMONY_TTL_SECS, CeremonyStart, PasskeyRegistered, PasskeyView};

pub use error::{AuthError, MfaChallenge, TokenProblem};
pub use sessions::{DEVICE_TOKEN_TTL_SECS, SessionView};

use std::sync::Arc;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::clock::Clock;
use crate::crypto::mac::MacKey;
use crate::crypto::passwords::PasswordHasher;
use crate::crypto::tokens::{AccessToken, AccessTokens, RefreshToken, Refusal};
use crate::domain::{Authentication, DeviceName, Email, Role, SessionId, UnixTime, UserId, Username};
use crate::events::EventSink;
use crate::limits::Limiter;
use crate::mail::MailService;
use crate::store::{SessionRecord, Store, UserRecord};

/// A user as everything outside auth sees one: no password hash, no security stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub is_active: bool,
    pub roles: Vec<Role>,
    pub created_at: UnixTime,
    /// The user proved they read `email`.
    pub email_verified: bool,
}

impl From<UserRecord> for User {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            is_active: u.is_active,
            roles: u.roles,
            created_at: u.created_at,
            email_verified: u.email_verified,
        }
    }
}

/// A caller whose access token verified and whose session and account are live.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The records as the check read them (auth's own: the hash and stamp stay here).
    user: UserRecord,
    session: SessionRecord,
    pub token: AccessToken,
}

impl Principal {
    /// The caller's account (what it shows: the hash and stamp are never copied out).
    pub fn user(&self) -> User {
        let u = &self.user;
        User {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            is_active: u.is_active,
            roles: u.roles.clone(),
            created_at: u.created_at,
            email_verified: u.email_verified,
        }
    }

    pub fn user_id(&self) -> UserId {
        self.user.id
    }

    pub fn username(&self) -> &Username {
        &self.user.username
    }

    /// The session the caller's token belongs to.
    pub fn session_id(&self) -> SessionId {
        self.session.id
    }

    /// A role counts only while both the token and the account carry it: a grant
    /// applies from the next login or refresh, a removal at once.
    pub fn has_role(&self, role: &str) -> bool {
        self.token.roles.iter().any(|r| r == role) && self.user.roles.iter().any(|r| r.as_str() == role)
    }

    /// The roles that count (see [`Principal::has_role`]).
    pub fn effective_roles(&self) -> Vec<&str> {
        self.user
            .roles
            .iter()
            .map(|r| r.as_str())
            .filter(|r| self.token.roles.iter().any(|t| t == r))
            .collect()
    }
}

/// What login and refresh hand out.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    pub expires_in: u64,
    pub session_id: SessionId,
    /// After a successful login: the client's device token (see `crypto::device`).
    pub device_token: Option<String>,
    /// For an application granted `openid`: its id_token.
    pub id_token: Option<String>,
    /// For an application: the scopes its tokens carry.
    pub scopes: Option<Vec<crate::domain::Scope>>,
}

/// What tokens for an application are issued with (the provider's token endpoint): the
/// client, the id_token key, and the nonce of the authorization request (only at the
/// code's exchange).
pub(crate) struct AppIssue<'a> {
    pub(crate) client: &'a crate::store::StoredClient,
    pub(crate) id_keys: &'a crate::crypto::keys::KeyRing,
    pub(crate) nonce: Option<&'a str>,
    /// A refresh that asked for fewer scopes than were granted (RFC 6749 §6): these.
    pub(crate) narrowed: Option<&'a [crate::domain::Scope]>,
}

/// A sign-in whose first step proved the user: how, the device's name, and the device
/// token it came with when that is this account's (a device it signed in from before).
#[derive(Debug)]
pub(crate) struct SignIn {
    pub(crate) auth: Authentication,
    pub(crate) device_name: Option<DeviceName>,
    pub(crate) known_device: Option<crate::crypto::device::Device>,
    /// For an application (the provider's password grant): its session and tokens.
    pub(crate) app: Option<AppSignIn>,
}

/// The application a sign-in is for, what it is granted, and the id_token key.
#[derive(Clone)]
pub(crate) struct AppSignIn {
    pub(crate) client: crate::store::StoredClient,
    pub(crate) scopes: Vec<crate::domain::Scope>,
    pub(crate) id_keys: Arc<crate::crypto::keys::KeyRing>,
}

impl std::fmt::Debug for AppSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppSignIn({})", self.client.id)
    }
}

/// How long sessions live, and what they keep of the client.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// Each refresh token lives this long (and each rotation starts a new one)...
    pub refresh_ttl_secs: u64,
    /// ...but no session outlives its login by more than this.
    pub max_lifetime_secs: u64,
    /// For this long after a rotation, the token just spent is answered with the same
    /// successor instead of counting as reuse (0: strict).
    pub reuse_grace_secs: u64,
    pub ip: SessionIp,
}

impl SessionPolicy {
    /// A session opened at `now`: when its first refresh token expires, and when the
    /// session does whatever its rotations.
    pub fn expiries(&self, now: crate::domain::UnixTime) -> (crate::domain::UnixTime, crate::domain::UnixTime) {
        let max_expires_at = now.plus(self.max_lifetime_secs);
        (now.plus(self.refresh_ttl_secs).min(max_expires_at), max_expires_at)
    }
}

/// How recovery behaves here.
#[derive(Clone, Debug)]
pub struct RecoveryPolicy {
    /// The account page's absolute URL (`https://auth.example.com/account`, with any
    /// path prefix): every link opens one of its pages.
    pub account_url: String,
    /// The product every mail names.
    pub product: String,
    pub reset_ttl_secs: u64,
    /// `TOKENGATE_MAGIC_LINKS`.
    pub magic_links: bool,
    /// `TOKENGATE_REQUIRE_VERIFIED_EMAIL`: a login with the right password of a user
    /// whose address is unproven is refused.
    pub require_verified_email: bool,
}

/// Which roles need MFA here (`TOKENGATE_REQUIRE_MFA_ROLES`).
#[derive(Clone, Debug, Default)]
pub struct MfaPolicy {
    pub required_roles: Vec<Role>,
}

/// This server as a WebAuthn relying party: its RP ID and the origins it accepts.
#[derive(Clone, Debug)]
pub struct PasskeyPolicy {
    webauthn: Webauthn,
    rp_id: String,
}

impl PasskeyPolicy {
    /// A relying party for `rp_id`, accepting exactly `origins` (each must be the RP ID
    /// or one of its subdomains); why not, in words for the operator.
    pub fn new(rp_id: &str, origins: &[String], product: &str) -> Result<Self, String> {
        let parsed: Vec<Url> = origins
            .iter()
            .map(|o| Url::parse(o).map_err(|e| format!("{o:?} is not an origin: {e}")))
            .collect::<Result<_, _>>()?;
        let (first, rest) = parsed
            .split_first()
            .ok_or("no origin to accept passkeys from (TOKENGATE_WEBAUTHN_ORIGINS)")?;
        for origin in &parsed {
            let host = origin.host_str().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(format!(
                    "the origin {origin} is not on the RP ID {rp_id:?} (it must be {rp_id} or one of its subdomains)"
                ));
            }
        }
        let mut builder = WebauthnBuilder::new(rp_id, first)
            .map_err(|e| format!("RP ID {rp_id:?} with origin {first}: {e}"))?
            .rp_name(product);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            webauthn,
            rp_id: rp_id.to_owned(),
        })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }
}

/// The answer of an authenticator to a sign-in or step-up ceremony.
#[derive(Debug)]
pub struct PasskeyProof {
    pub ceremony_id: String,
    pub credential: serde_json::Value,
}

/// What a client is told of a refused token.
fn refusal_problem(refusal: Refusal) -> TokenProblem {
    match refusal {
        Refusal::Expired => TokenProblem::Expired,
        Refusal::BadSignature => TokenProblem::BadSignature,
        Refusal::Invalid => TokenProblem::Invalid,
    }
}

/// Reset and sign-in links looked up and queued after their answer at once, at most.
pub const LINKS_IN_FLIGHT: usize = 64;

/// The HMAC keys of values the server hands out and checks later.
#[derive(Clone, Debug)]
pub struct ServerMacs {
    pub csrf: MacKey,
    pub device: MacKey,
    /// Derives a refresh token's successor (only with a reuse grace).
    pub refresh: MacKey,
    /// Derives the made-up credential a passkey sign-in offers for a username that has
    /// none.
    pub passkey_decoy: MacKey,
}

pub struct AuthService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    tokens: AccessTokens,
    limiter: Arc<dyn Limiter>,
    clock: Arc<dyn Clock>,
    sessions: SessionPolicy,
    keys: keys::KeyService,
    key_mode: keys::KeyMode,
    macs: ServerMacs,
    events: Arc<dyn EventSink>,
    mail: Arc<MailService>,
    recovery: RecoveryPolicy,
    mfa: MfaPolicy,
    /// `None`: no RP ID here, passkeys are off.
    passkeys: Option<PasskeyPolicy>,
    provider: oauth::ProviderPolicy,
    /// The keys that sign and verify id_tokens, loaded at the provider's first use and
    /// reloaded with the access-token keys (a rotation anywhere applies here).
    id_keys: std::sync::RwLock<Option<Arc<crate::crypto::keys::KeyRing>>>,
    /// Bounds the reset and sign-in links worked on after their answer.
    recovery_slots: Arc<tokio::sync::Semaphore>,
}

/// What an [`AuthService`] is made of.
pub struct AuthParts {
    pub store: Arc<dyn Store>,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub limiter: Arc<dyn Limiter>,
    pub clock: Arc<dyn Clock>,
    pub sessions: SessionPolicy,
    pub keys: keys::KeyService,
    pub key_mode: keys::KeyMode,
    pub macs: ServerMacs,
    /// Where auth events go (the server logs and counts them).
    pub events: Arc<dyn EventSink>,
    /// Composes mail for the outbox and delivers it.
    pub mail: Arc<MailService>,
    pub recovery: RecoveryPolicy,
    pub mfa: MfaPolicy,
    /// This server as a WebAuthn relying party; `None`: passkeys are off.
    pub passkeys: Option<PasskeyPolicy>,
    /// This server as an OAuth2 / OpenID Connect provider.
    pub provider: oauth::ProviderPolicy,
}

impl AuthService {
    pub fn new(p: AuthParts) -> Self {
        Self {
            store: p.store,
            hasher: p.hasher,
            tokens: p.tokens,
            limiter: p.limiter,
            clock: p.clock,
            sessions: p.sessions,
            keys: p.keys,
            key_mode: p.key_mode,
            macs: p.macs,
            events: p.events,
            mail: p.mail,
            recovery: p.recovery,
            mfa: p.mfa,
            passkeys: p.passkeys,
            provider: p.provider,
            id_keys: std::sync::RwLock::new(None),
            recovery_slots: Arc::new(tokio::sync::Semaphore::new(LINKS_IN_FLIGHT)),
        }
    }

    /// Whether the database answers (readiness).
    pub async fn database_ready(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }

    /// The database's connection pools now (metrics).
    pub fn pool_stats(&self) -> Vec<crate::store::PoolStats> {
        self.store.pool_stats()
    }

    /// Whether the session cache answers from memory (metrics); `None` without a cache.
    pub fn session_cache_trusted(&self) -> Option<bool> {
        self.store.cache_trusted()
    }

    /// Drop what can never be used again: sessions and refresh tokens that expired more
    /// than `grace_secs` ago, retired keys past their end, and revocation-log rows older
    /// than an hour (instances catch up on the log within a second; an hour covers any
    /// that is merely slow, and one away longer starts its cache from empty). The rows
    /// of sessions and tokens removed.
    pub async fn purge_expired(&self, grace_secs: u64) -> Result<u64, AuthError> {
        let now = self.clock.now();
        let removed = self
            .store
            .purge_expired(crate::domain::UnixTime(now.0 - i64::try_from(grace_secs).unwrap_or(0)))
            .await;
        // The log's purge runs whether or not the other did.
        let log = self
            .store
            .purge_revocations(crate::domain::UnixTime(now.0 - 3600))
            .await;
        // Ceremonies go as soon as they expire (anyone may begin one).
        let ceremonies = self.store.purge_ceremonies(now).await;
        Ok(removed.and_then(|n| log.and(ceremonies).map(|_| n))?)
    }

    /// Close the database's connections (graceful shutdown).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// What password hashing is doing now (for metrics).
    pub fn hash_load(&self) -> crate::crypto::passwords::HashLoad {
        self.hasher.load()
    }

    /// The shared rate-limit backend's state, if there is one ("ok" / "degraded").
    pub fn limiter_health(&self) -> Option<&'static str> {
        self.limiter.health()
    }

    /// Rate-limit keys held in this process, per kind.
    pub fn limiter_keys(&self) -> Vec<(&'static str, usize)> {
        self.limiter.keys_in_memory()
    }

    /// Verify a bearer access token and its revocation state: the session is live and
    /// belongs to the token's user, and the user is active. One indexed read, no write.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now();
        let token = self.tokens.verify_why(bearer, now).map_err(|(why, refusal)| {
            tracing::debug!(reason = why, "access token refused");
            AuthError::InvalidToken(refusal_problem(refusal))
        })?;
        let revoked = AuthError::InvalidToken(TokenProblem::Revoked);
        let Some((session, user)) = self.store.session_with_user(token.session_id).await? else {
            return Err(revoked);
        };
        if session.user_id != token.user_id {
            return Err(AuthError::InvalidToken(TokenProblem::Invalid));
        }
        if !session.is_live(now) || !user.is_active {
            return Err(revoked);
        }
        Ok(Principal { user, session, token })
    }

    /// The CSRF token of a cookie session: an HMAC of its id, so it is the same for the
    /// session's whole life and a token planted from elsewhere never matches.
    pub fn csrf_token(&self, session: SessionId) -> String {
        self.macs.csrf.tag(session.to_string().as_bytes())
    }

    /// Is `presented` the CSRF token of `session`? Constant time.
    pub fn csrf_matches(&self, session: SessionId, presented: &str) -> bool {
        self.macs.csrf.verify(session.to_string().as_bytes(), presented)
    }

    /// The session a refresh token belongs to (for the CSRF check of cookie refresh and
    /// logout, which carry no access token).
    pub async fn session_of_refresh(&self, presented: &str) -> Result<Option<SessionId>, AuthError> {
        match crate::crypto::tokens::RefreshTokenHash::of_presented(presented) {
            Some(hash) => Ok(self.store.refresh_token(&hash).await?.map(|t| t.session_id)),
            None => Ok(None),
        }
    }
}
