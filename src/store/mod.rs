//! Durable state: users, sessions and refresh tokens. One trait, one file per backend.
//! The database is the source of truth for every revocation.
//!
//! A backend holds no product rule: it offers atomic primitives (each method's doc says
//! what it does in one transaction) and reports what it found; `auth/` decides what
//! that means (a reused refresh token: auth revokes the session).

pub mod cache;
mod error;
pub mod health;
pub mod layer;
pub mod metered;
pub mod postgres;
pub mod sql;
pub mod sqlite;
#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::error::StoreError;
use self::layer::store_role;

use crate::crypto::algorithm::SigningAlgorithm;
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::recovery_codes::RecoveryCodeHash;
use crate::crypto::tokens::OneTimeTokenHash;
use crate::crypto::tokens::RefreshTokenHash;
use crate::crypto::tokens::{AuthCodeHash, ClientSecretHash};
use crate::domain::{
    Authentication, CeremonyKind, ClientId, ClientName, Email, KeyPurpose, MailId, PasskeyId, PasskeyName, RedirectUri,
    Role, Scope, SessionId, TokenPurpose, UnixTime, UserId, Username,
};

/// Where state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file.
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL server.
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://FILE` (`sqlite:FILE`) or `postgres://...`. SQLAlchemy's spelling of a
    /// relative file, `sqlite:///./app.db`, reads here as the absolute `/./app.db` (a
    /// file at the filesystem root): refused, with the spelling meant.
    pub fn parse(v: &str) -> Result<Self, String> {
        if let Some(rest) = v.strip_prefix("sqlite://").or_else(|| v.strip_prefix("sqlite:")) {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err("sqlite needs a file path, e.g. sqlite://tokengate.db".into());
            }
            if let Some(relative) = path.strip_prefix("/./") {
                return Err(format!(
                    "{v:?} names /./{relative} at the filesystem root (SQLAlchemy writes a relative file \
                     as sqlite:///./FILE; here that is sqlite://{relative}, and an absolute one sqlite:///srv/app/{relative})"
                ));
            }
            return Ok(Self::Sqlite {
                path: std::path::PathBuf::from(path),
            });
        }
        if v.starts_with("postgres://") || v.starts_with("postgresql://") {
            return Ok(Self::Postgres(v.to_owned()));
        }
        Err(format!(
            "{:?} is neither sqlite://FILE nor postgres://...",
            redact_url(v)
        ))
    }

    /// What it is and where, for messages and logs: the SQLite file's absolute path, the
    /// PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!(
                "SQLite at {}",
                std::path::absolute(path).unwrap_or_else(|_| path.clone()).display()
            ),
            Self::Postgres(url) => format!("PostgreSQL at {}", redact_url(url)),
        }
    }
}

/// `%XX` escapes decoded (as a URL parser reads a query parameter's name).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL without its passwords (the userinfo's, and a `password` or `sslpassword`
/// query parameter), fit for an error message or a log line.
pub fn redact_url(v: &str) -> String {
    let (base, query) = match v.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (v, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => match base[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..s + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if matches!(
                        percent_decoded(k).to_ascii_lowercase().as_str(),
                        "password" | "sslpassword"
                    ) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Where durable state lives, and how to reach it (the wiring hands this to [`open`]).
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub database_url: DatabaseUrl,
    /// Connections to a database server (PostgreSQL), at most.
    pub pool_size: u32,
    /// How long opening a connection may take.
    pub connect_timeout_secs: u64,
}

/// A user as stored.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHashString,
    pub is_active: bool,
    pub roles: Vec<Role>,
    pub created_at: UnixTime,
    /// Changes whenever the password, activity or roles change (see `NewSession`).
    pub security_stamp: i64,
    /// The user proved they read `email` (a verification link, a reset, an operator).
    pub email_verified: bool,
    /// A second factor is confirmed (kept by the store with the factors themselves).
    pub mfa_enabled: bool,
}

/// A user to insert.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHashString,
    pub roles: Vec<Role>,
    pub created_at: UnixTime,
}

/// A user brought in by an import: as `NewUser`, active or not and with its address
/// verified or not as it was there.
#[derive(Clone, Debug)]
pub struct ImportedUser {
    pub user: NewUser,
    pub is_active: bool,
    pub email_verified: bool,
}

/// Whether stored users hold a username and an email (case-insensitively).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    pub username: bool,
    pub email: bool,
}

impl Holders {
    /// Either is taken.
    pub fn any(self) -> bool {
        self.username || self.email
    }
}

/// A session (one login, one device) as stored.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    pub expires_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub device_name: Option<String>,
    /// How and when the sign-in that opened it proved the user.
    pub auth: Authentication,
    /// The application it was opened for (`None`: a first-party sign-in).
    pub client: Option<SessionClient>,
}

/// The application a session's tokens were issued to, and the scopes they carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClient {
    pub id: ClientId,
    pub scopes: Vec<Scope>,
}

impl SessionRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A session to open, with its first refresh token.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    /// The user's `security_stamp` as the login read it: the session opens only if the
    /// user still exists, is active and has this stamp.
    pub expected_stamp: i64,
    pub now: UnixTime,
    pub expires_at: UnixTime,
    /// No rotation extends the session (or its refresh tokens) past this.
    pub max_expires_at: UnixTime,
    pub user_agent: Option<String>,
    /// As the session-IP setting keeps it: the address, its network, or nothing.
    pub ip: Option<String>,
    pub device_name: Option<String>,
    pub refresh_hash: RefreshTokenHash,
    /// How the sign-in proved the user.
    pub auth: Authentication,
    /// Opened for an application (see [`SessionClient`]).
    pub client: Option<SessionClient>,
    /// Opened by exchanging this authorization code: only while the code has not come
    /// back a second time (see [`Grants::take_code`]) and the browser session it was
    /// issued in lives (both read with a share lock where rows are locked, so a replay
    /// or a sign-out in flight either comes first or sees this session).
    pub from_code: Option<AuthCodeHash>,
}

/// What opening a session found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionOpen {
    Opened,
    /// The user is gone, inactive, or their stamp moved since it was read. Nothing written.
    UserChanged,
}

/// What a guarded change to a user found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserWrite<T> {
    Done(T),
    NotFound,
    /// The user was an active holder of the guarded role and no active holder would
    /// remain. Nothing written.
    LastHolder,
}

/// A password to store, and what the user must still be for it to be written.
#[derive(Clone, Debug)]
pub struct NewPassword {
    pub user: UserId,
    pub hash: PasswordHashString,
    /// Write only while the user's `security_stamp` is this one (the record whose
    /// password was verified): a change, reset or deactivation in between wins.
    pub expected_stamp: Option<i64>,
    /// Keep this session alive, and write only while it is live (not revoked, not
    /// expired): a change from a session revoked meanwhile writes nothing.
    pub keep: Option<SessionId>,
    pub now: UnixTime,
}

/// Rotate `presented` into `successor`, atomically.
#[derive(Clone, Debug)]
pub struct RotateRequest {
    pub presented: RefreshTokenHash,
    pub successor: RefreshTokenHash,
    /// Capped by the store at the session's `max_expires_at`.
    pub successor_expires_at: UnixTime,
    pub now: UnixTime,
}

/// What a logged revocation says to forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// This session.
    Session(SessionId),
    /// The user's record and every session of theirs.
    User(UserId),
    /// An application's record (changed or removed; its sessions are logged apart).
    Client(ClientId),
}

/// One row of the revocation log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedRevocation {
    pub seq: i64,
    pub what: Revoked,
}

/// A refresh token as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRefreshToken {
    pub session_id: SessionId,
    pub spent: bool,
    pub expires_at: UnixTime,
}

/// What a rotation found.
#[derive(Clone, Debug)]
pub enum Rotation {
    /// The presented token was unspent and unexpired and is now spent; the successor
    /// is stored in its session. `session` and `user` as the rotation read them (the
    /// session's last use and expiry may already be moved): the caller judges whether
    /// they are still valid (a successor in a dead session is refused like its session).
    Spent {
        session: Box<SessionRecord>,
        user: Box<UserRecord>,
    },
    /// The presented token had been spent before, at `spent_at`. Nothing written.
    AlreadySpent {
        user_id: UserId,
        session_id: SessionId,
        spent_at: UnixTime,
    },
    /// Unknown or expired. Nothing written.
    Unknown,
}

/// A user as a change left them, and the sessions it revoked (a cache above the
/// store must know what to forget).
#[derive(Clone, Debug)]
pub struct UserChanged {
    pub user: UserRecord,
    pub revoked: Vec<SessionId>,
}

/// An asymmetric signing key as stored.
#[derive(Clone, Debug)]
pub struct StoredKey {
    pub kid: String,
    /// What it signs; one active key per purpose.
    pub purpose: KeyPurpose,
    /// Stored by its JOSE name (`EdDSA`, `ES256`, `RS256`).
    pub algorithm: SigningAlgorithm,
    pub private_der: Vec<u8>,
    pub active: bool,
    pub created_at: UnixTime,
    /// The active key signs from this time on (published in the JWKS before).
    pub signs_from: UnixTime,
    /// For a retired key: when it stops verifying (every token it signed has expired).
    pub retires_at: Option<UnixTime>,
}

/// An admin's change to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub roles: Option<Vec<Role>>,
    pub is_active: Option<bool>,
    pub email_verified: Option<bool>,
    /// A new spelling of the address (`Conflict` if another user holds it).
    pub email: Option<Email>,
    /// Move the user's `security_stamp` (void logins in flight).
    pub bump_stamp: bool,
    /// Revoke every live session of the user in the same transaction.
    pub revoke_sessions: bool,
}

/// A message for the outbox, written in the same transaction as what it tells of.
#[derive(Clone, Debug)]
pub struct NewMail {
    pub id: MailId,
    pub recipient: Email,
    /// What it is (`verify_email`, `password_reset`, ...), for logs and metrics.
    pub kind: &'static str,
    /// The whole message as the transport sends it (sealed when the server seals).
    pub message: String,
}

/// A one-time token to store, with the mail that carries it (and any notice beside).
#[derive(Clone, Debug)]
pub struct NewOneTimeToken {
    pub hash: OneTimeTokenHash,
    pub purpose: TokenPurpose,
    pub user: UserId,
    /// The address it is mailed to.
    pub email: Email,
    /// Issued only while the user is active with this stamp (as the request read them).
    pub expected_stamp: i64,
    pub now: UnixTime,
    pub expires_at: UnixTime,
    pub mails: Vec<NewMail>,
    /// What the caller keeps with the token (opaque here), read back with it.
    pub context: Option<String>,
    /// Every older live token of the same user and purpose dies in the same write.
    pub replaces_older: bool,
}

/// A one-time token as stored.
#[derive(Clone, Debug)]
pub struct StoredOneTimeToken {
    pub purpose: TokenPurpose,
    pub user: UserId,
    pub email: Email,
    pub stamp: i64,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    /// Attempts counted against it ([`OneTimeTokens::attempt_one_time`]).
    pub attempts: i64,
    pub context: Option<String>,
}

/// What redeeming a token does, in the transaction that spends it; each is the effect of
/// one purpose of token. Every one but `ChangeEmail` needs the token's address to be the
/// user's still, and proves it (verified).
#[derive(Clone, Debug)]
pub enum Redemption {
    /// The address is proven.
    VerifyEmail,
    /// The token's address becomes the user's, verified; the stamp moves and every
    /// other token of the user in flight dies (they went to the old address).
    ChangeEmail,
    /// A new password: the stamp moves, every session dies, and every other token but
    /// a verification dies.
    ResetPassword { hash: PasswordHashString },
    /// A sign-in (the caller opens a session). When the address had not been verified
    /// before, the password becomes `unproven_password` (one nobody knows), the stamp
    /// moves and every session and token of the user dies: whoever registered the
    /// address before its owner proved it keeps nothing. Without one, such a user's
    /// token is refused.
    SignIn {
        unproven_password: Option<PasswordHashString>,
    },
}

impl Redemption {
    /// The purpose of the tokens this redeems.
    pub fn purpose(&self) -> TokenPurpose {
        match self {
            Self::VerifyEmail => TokenPurpose::VerifyEmail,
            Self::ChangeEmail => TokenPurpose::ChangeEmail,
            Self::ResetPassword { .. } => TokenPurpose::ResetPassword,
            Self::SignIn { .. } => TokenPurpose::MagicLink,
        }
    }
}

/// Spend a token: only a live one (unused, unexpired, of this purpose) whose user is
/// active (and, with `check_stamp`, has the stamp it was issued under).
#[derive(Clone, Debug)]
pub struct Redeem {
    pub hash: OneTimeTokenHash,
    pub now: UnixTime,
    pub effect: Redemption,
    /// Also refuse it when the user's security stamp moved since it was issued (a
    /// password change, a deactivation, a role change).
    pub check_stamp: bool,
    /// Mail queued in the same transaction (a notice of what was done).
    pub mails: Vec<NewMail>,
}

/// A redeemed token: the user as the redemption left them, and the sessions it revoked.
#[derive(Clone, Debug)]
pub struct Redeemed {
    pub user: UserRecord,
    pub revoked: Vec<SessionId>,
}

/// A TOTP factor as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTotp {
    /// The secret as stored (sealed when the server seals).
    pub secret: Vec<u8>,
    pub created_at: UnixTime,
    /// `None`: enrolment begun, not confirmed (it is no factor yet).
    pub confirmed_at: Option<UnixTime>,
    /// The last step a code was accepted for.
    pub last_step: Option<i64>,
}

/// A user's second factors as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecondFactorState {
    pub totp: Option<StoredTotp>,
    /// Recovery codes not yet used.
    pub recovery_codes_left: u32,
    /// Passkeys registered.
    pub passkeys: u32,
}

/// A passkey as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub user: UserId,
    /// The credential ID its authenticator chose.
    pub credential_id: Vec<u8>,
    /// The RP ID it was registered for.
    pub rp_id: String,
    pub name: PasskeyName,
    /// The credential as the WebAuthn library keeps it (opaque here).
    pub credential: String,
    pub sign_count: u32,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// An application registered with the provider, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredClient {
    pub id: ClientId,
    pub name: ClientName,
    /// `None`: a public client (no secret).
    pub secret_hash: Option<ClientSecretHash>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub scopes: Vec<Scope>,
    pub trusted: bool,
    pub audience: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// What changes of a client (see [`Clients::update_client`]); `None`: unchanged.
#[derive(Clone, Debug, Default)]
pub struct ClientUpdate {
    pub name: Option<ClientName>,
    pub redirect_uris: Option<Vec<RedirectUri>>,
    pub post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    pub scopes: Option<Vec<Scope>>,
    pub trusted: Option<bool>,
    /// `Some(None)`: back to the default (the client's id).
    pub audience: Option<Option<String>>,
}

/// An authorization code to store (see [`Grants::save_code`]).
#[derive(Clone, Debug)]
pub struct NewCode {
    pub hash: AuthCodeHash,
    pub code: StoredCode,
    pub now: UnixTime,
}

/// An authorization code as stored: what it was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCode {
    pub client: ClientId,
    pub user: UserId,
    pub redirect_uri: String,
    /// base64url(SHA-256(verifier)).
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scopes: Vec<Scope>,
    /// The browser sign-in it stands for.
    pub auth: Authentication,
    /// The user's security stamp when it was issued.
    pub user_stamp: i64,
    /// The browser session it was issued in: its exchange opens a session only while
    /// that one lives (see [`Sessions::create_session`]).
    pub browser_session: SessionId,
    pub expires_at: UnixTime,
}

/// What taking an authorization code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeTaken {
    /// Unused and unexpired, and now used: its exchange opens `session`.
    Taken(StoredCode),
    /// Used before: the session the first use opened (it may not be open yet; it will
    /// not open now). Marked as come back.
    Reused { user: UserId, session: Option<SessionId> },
    /// Unknown or expired. Nothing written.
    Unknown,
}

/// What a user allowed an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredConsent {
    pub client: ClientId,
    pub client_name: ClientName,
    pub scopes: Vec<Scope>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// What revoking a user's grant to an application did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRevoked {
    /// A consent was stored (and is gone).
    pub consent: bool,
    /// The sessions of the application's tokens, revoked.
    pub sessions: Vec<SessionId>,
}

/// Register a passkey (see [`FactorChanges::add_passkey`]).
#[derive(Clone, Debug)]
pub struct AddPasskey {
    pub passkey: StoredPasskey,
    /// Stored as the user's recovery codes only if this turns their MFA on.
    pub codes_if_first: Vec<RecoveryCodeHash>,
    /// The session that registered it (it stays, signed in as `keep_auth` now).
    pub keep: SessionId,
    pub keep_auth: Authentication,
    pub now: UnixTime,
    pub mails: Vec<NewMail>,
}

/// What [`FactorChanges::remove_second_factors`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactorsRemoved {
    /// Gone; the sessions revoked.
    Removed(Vec<SessionId>),
    /// MFA off, or no confirmed TOTP factor to remove: nothing written.
    Nothing,
    /// No factor would be left and one was to be kept: nothing written.
    LastFactor,
}

/// What [`FactorChanges::add_passkey`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasskeyAdded {
    /// Stored; the sessions revoked, and whether MFA was off until now (the codes
    /// given were stored).
    Added {
        revoked: Vec<SessionId>,
        mfa_turned_on: bool,
    },
    /// That credential ID is registered already (to anyone): nothing written.
    CredentialTaken,
    /// The user is gone or inactive: nothing written.
    NoUser,
}

/// Remove a passkey (see [`FactorChanges::remove_passkey`]).
#[derive(Clone, Debug)]
pub struct RemovePasskey {
    pub user: UserId,
    pub id: PasskeyId,
    pub keep: SessionId,
    /// Refuse when it is the user's last factor (no other passkey, no confirmed TOTP).
    pub keep_a_factor: bool,
    pub now: UnixTime,
    pub mails: Vec<NewMail>,
}

/// What [`FactorChanges::remove_passkey`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasskeyRemoved {
    /// Gone; the sessions revoked, and whether it was the last factor (MFA is off and
    /// the recovery codes are gone).
    Removed {
        revoked: Vec<SessionId>,
        mfa_turned_off: bool,
    },
    /// No such passkey of this user's: nothing written.
    NotFound,
    /// It is the user's last factor and `keep_a_factor` was asked: nothing written.
    LastFactor,
}

/// A passkey's use: its credential as the library updated it.
#[derive(Clone, Debug)]
pub struct PasskeyUse {
    pub id: PasskeyId,
    pub credential: String,
    /// The counter the assertion carried (0: the authenticator keeps none).
    pub sign_count: u32,
    pub now: UnixTime,
}

/// A WebAuthn ceremony begun (see [`Passkeys::open_ceremony`]).
#[derive(Clone, Debug)]
pub struct NewCeremony {
    pub hash: OneTimeTokenHash,
    pub kind: CeremonyKind,
    pub user: Option<UserId>,
    /// What the caller keeps of it (opaque here), read back when it is taken.
    pub state: String,
    pub now: UnixTime,
    pub expires_at: UnixTime,
}

/// A ceremony taken to be finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenCeremony {
    pub user: Option<UserId>,
    pub state: String,
}

/// Confirm a pending TOTP factor (see [`FactorChanges::confirm_totp`]).
#[derive(Clone, Debug)]
pub struct ConfirmTotp {
    pub user: UserId,
    /// The stored secret the code was checked against: a newer enrolment wins.
    pub secret: Vec<u8>,
    pub step: i64,
    pub codes: Vec<RecoveryCodeHash>,
    /// The session that confirmed (it stays)...
    pub keep: SessionId,
    /// ...and now counts as signed in this way (it proved the authenticator).
    pub keep_auth: Authentication,
    pub now: UnixTime,
    pub mails: Vec<NewMail>,
}

/// Which factors [`FactorChanges::remove_second_factors`] removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorScope {
    /// The confirmed TOTP factor (and a pending one); MFA goes off, with the recovery
    /// codes, only if no passkey is left.
    Totp,
    /// Every factor, passkeys included, and the recovery codes: MFA goes off.
    Every,
}

/// Remove a user's second factors (see [`FactorChanges::remove_second_factors`]).
#[derive(Clone, Debug)]
pub struct RemoveFactors {
    pub user: UserId,
    pub scope: FactorScope,
    /// Refuse when no factor would be left (for [`FactorScope::Totp`]).
    pub keep_a_factor: bool,
    /// The session that asked, if it stays (an operator's reset keeps none).
    pub keep: Option<SessionId>,
    pub now: UnixTime,
    pub mails: Vec<NewMail>,
}

/// A message claimed for delivery: the holder of this claim alone may record how it
/// went (see [`Outbox::finish_mail`]).
#[derive(Clone, Debug)]
pub struct ClaimedMail {
    pub id: MailId,
    pub recipient: String,
    pub kind: String,
    pub message: String,
    /// This delivery's number since the message was queued (or queued again by an
    /// operator): 1 for the first.
    pub attempt: i64,
    /// This claim's number: it only grows, so a claim that ran out is told apart from
    /// the one that replaced it.
    pub claim: i64,
    pub created_at: UnixTime,
}

/// How a delivery went.
#[derive(Clone, Debug)]
pub enum Delivery {
    Sent,
    /// Try again from `retry_at`.
    Retry {
        error: String,
        retry_at: UnixTime,
    },
    /// Give up: kept with its error for `tokengate mail list --failed`.
    GiveUp {
        error: String,
    },
}

/// A message as an operator sees it (never its body).
#[derive(Clone, Debug)]
pub struct MailEntry {
    pub id: MailId,
    pub recipient: String,
    pub kind: String,
    pub created_at: UnixTime,
    pub attempts: i64,
    pub next_attempt_at: UnixTime,
    pub sent_at: Option<UnixTime>,
    pub failed_at: Option<UnixTime>,
    pub last_error: Option<String>,
}

/// The outbox's state now, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub queued: u64,
    pub failed: u64,
    /// Created time of the oldest message still waiting, if any.
    pub oldest_queued: Option<UnixTime>,
    /// When the first waiting message may be claimed (its next try, or the end of the
    /// claim on it), if any waits.
    pub next_due: Option<UnixTime>,
}

/// One connection pool's occupancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub pool: &'static str,
    pub size: u32,
    pub idle: u32,
}

impl PoolStats {
    pub fn of<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> Self {
        let size = p.size();
        // `num_idle` is a usize; a pool never holds anywhere near u32::MAX connections.
        let idle = u32::try_from(p.num_idle()).unwrap_or(size).min(size);
        Self { pool, size, idle }
    }
}

/// The database itself: schema, health, connections, housekeeping.
#[async_trait]
pub trait Lifecycle: Send + Sync + 'static {
    /// Bring the schema up to date (embedded migrations).
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether the database answers at all, asked outside any pool (a saturated pool is
    /// load, not an outage), within `within`.
    async fn reachable(&self, within: Duration) -> Result<(), StoreError>;
    /// Close connections (graceful shutdown).
    async fn close(&self);
    /// Connection pools now, for metrics.
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// For metrics: whether a session cache in this stack is answering from memory
    /// (`Some(true)`: it trusts the revocation log) or sends every check to the database
    /// (`Some(false)`); `None` without a cache.
    fn cache_trusted(&self) -> Option<bool>;
    /// Drop refresh tokens and sessions that expired before `cutoff`, and retired signing
    /// keys whose `retires_at` is before it; the token and session rows removed.
    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
}

store_role! {
    /// Users: create, find, list. None of these revokes anything.
    pub trait Users (marker UsersRole) {
        /// Insert a user; `Conflict` when the username or email is taken (case-insensitively).
        async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError>;
        /// Which of `username` and `email` stored users hold (case-insensitively). A read,
        /// no lock: an insert still answers `Conflict` for a race.
        async fn holders(&self, username: &Username, email: &Email) -> Result<Holders, StoreError>;
        /// Insert `users` in one transaction: all of them or none (`Conflict` if any
        /// username or email is taken by then).
        async fn insert_users(&self, users: Vec<ImportedUser>) -> Result<(), StoreError>;
        /// Replace `user`'s password hash by `new` only while it is still `old` (a password
        /// change in between wins). The security stamp stays: the password is the same, so
        /// no session or login in flight is affected. Whether it was replaced.
        async fn upgrade_password_hash(&self, user: UserId, old: &PasswordHashString, new: PasswordHashString) -> Result<bool, StoreError>;
        async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
        /// Emails are unique regardless of case.
        async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
        async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
        /// Users by creation time.
        async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, StoreError>;
        /// Users whose stored address has a character outside printable ASCII (stored
        /// before addresses had one spelling).
        async fn users_with_non_ascii_email(&self) -> Result<Vec<UserRecord>, StoreError>;
    }
}

store_role! {
    /// Changes to a user that revoke: each writes its revocation-log rows in its own
    /// transaction (a cache above must forget the user).
    pub trait UserChanges (marker UserChangesRole) {
        /// Apply `update` (and, if it says so, revoke every live session of the user) in one
        /// transaction. With `guard`, the same transaction checks that an active holder of
        /// that role remains if the user was one (else nothing is written: `LastHolder`).
        async fn update_user(&self, id: UserId, update: UserUpdate, guard: Option<&Role>, now: UnixTime) -> Result<UserWrite<UserChanged>, StoreError>;
        /// Delete a user with their sessions and refresh tokens in one transaction, under
        /// the same `guard`; the sessions that were live.
        async fn delete_user(&self, id: UserId, guard: Option<&Role>, now: UnixTime) -> Result<UserWrite<Vec<SessionId>>, StoreError>;
        /// Store a new password hash, move the security stamp and revoke every session but
        /// `change.keep`, in one transaction, only while the user is as `change` expects
        /// (its stamp, its kept session live); the sessions revoked, `None` when no user
        /// matched (unknown, stamp moved, kept session dead): nothing written.
        async fn change_password(&self, change: NewPassword) -> Result<Option<Vec<SessionId>>, StoreError>;
    }
}

store_role! {
    /// Sessions and their refresh tokens: the per-request check, rotation, revocation.
    pub trait Sessions (marker SessionsRole) {
        /// Open a session with its first refresh token, in one transaction, only if the
        /// user is as the login read it (`expected_stamp`, active).
        async fn create_session(&self, session: NewSession) -> Result<SessionOpen, StoreError>;
        /// The session and its user, read together: the per-request revocation check.
        async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError>;
        /// `user`'s live sessions (not revoked, not expired), most recently used first.
        async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError>;
        /// A refresh token as stored (spent or not, expired or not), if it exists. A read.
        async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError>;
        /// Spend `presented` and store its successor in one transaction. The spend is one
        /// conditional write ("spent now, if not spent before"): of two concurrent
        /// rotations of one token exactly one gets `Spent`. A session that is revoked or
        /// expired is never extended.
        async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError>;
        /// Revoke one of `user`'s sessions (one conditional write); `false` when it is not
        /// theirs, unknown or already revoked.
        async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError>;
        /// Revoke the session that `refresh` belongs to (if `user` is given: only if it is
        /// theirs), in one write; which user and session it revoked.
        async fn revoke_session_of_refresh(&self, user: Option<UserId>, refresh: &RefreshTokenHash, now: UnixTime) -> Result<Option<(UserId, SessionId)>, StoreError>;
        /// Revoke every live session of `user`, except `keep`, in one write; those revoked.
        async fn revoke_sessions(&self, user: UserId, keep: Option<SessionId>, now: UnixTime) -> Result<Vec<SessionId>, StoreError>;
    }
}

store_role! {
    /// Signing keys and the server secrets shared by every instance.
    pub trait Keys (marker KeysRole) {
        /// The secret stored under `name`; `fresh` is stored first if there is none (one
        /// atomic insert-if-absent, so every instance ends up with the same value).
        async fn server_secret(&self, name: &str, fresh: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, StoreError>;
        /// The secret stored under `name`, if there is one. A read.
        async fn stored_server_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
        /// Every signing key, active first, then the newest retired.
        async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
        /// Replace key `kid`'s private key material (re-encryption); `false` if no such key.
        async fn replace_key_material(&self, kid: &str, private_der: Vec<u8>) -> Result<bool, StoreError>;
        /// Replace server secret `name`'s stored value (re-encryption); `false` if none.
        async fn replace_server_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError>;
        /// Store `key` as the active key; `Conflict` when one is active already.
        async fn add_active_key(&self, key: StoredKey) -> Result<(), StoreError>;
        /// Retire the active key (it signs until `key.signs_from`, then verifies until
        /// `retires_at`) and make `key` active, in one transaction.
        async fn rotate_key(&self, key: StoredKey, now: UnixTime, retires_at: UnixTime) -> Result<(), StoreError>;
        /// Make retired key `kid` stop verifying at `at`; `false` when no retired key has that kid.
        async fn retire_key_at(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError>;
    }
}

store_role! {
    /// The revocation log, read by every instance's session cache.
    pub trait RevocationLog (marker RevocationLogRole) {
        /// The revocation log's rows after `seq`, in sequence order. Rows can commit out of
        /// sequence order (a reader tracks the gaps it saw and asks again from before
        /// them). Every method above that revokes a session or changes a user writes its rows
        /// in its own transaction.
        async fn revocations_after(&self, seq: i64) -> Result<Vec<LoggedRevocation>, StoreError>;
        /// Drop log rows written before `cutoff`.
        async fn purge_revocations(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
    }
}

store_role! {
    /// One-time mail tokens (verification, reset, email change, magic link). Each is
    /// written with the mail that carries it, in one transaction.
    pub trait OneTimeTokens (marker OneTimeTokensRole) {
        /// Store `token` and queue its mail, in one transaction, only while the user is
        /// active with `expected_stamp`; with `replaces_older`, every older live token of
        /// the same user and purpose dies in it. `false`: the user changed, nothing written.
        async fn issue_one_time(&self, token: NewOneTimeToken) -> Result<bool, StoreError>;
        /// The token as stored (spent or not, expired or not), if it exists. A read.
        async fn one_time_token(&self, hash: &OneTimeTokenHash) -> Result<Option<StoredOneTimeToken>, StoreError>;
        /// Spend the token (one conditional write: of two concurrent redemptions one
        /// wins) and apply its effect, with its mail, in one transaction; `None` when
        /// the token is unknown, spent, expired, of another purpose than the effect's,
        /// or its user changed (nothing written). An email change to an address taken
        /// meanwhile is `Conflict` (nothing written). Writes the revocation-log rows of
        /// what it changed. The user's row is locked first, as when a token is issued.
        async fn redeem_one_time(&self, redeem: Redeem) -> Result<Option<Redeemed>, StoreError>;
        /// Count one attempt at a live token of `purpose` (unused, unexpired, fewer than
        /// `max` attempts before this one), in one conditional write; the token as it
        /// stands after it, `None` (nothing written) when it is not live or is used up.
        async fn attempt_one_time(&self, hash: &OneTimeTokenHash, purpose: TokenPurpose, now: UnixTime, max: i64) -> Result<Option<StoredOneTimeToken>, StoreError>;
        /// Spend a live token of `purpose` and nothing else (one conditional write: of two
        /// spends one wins); the token as it was, `None` when it was not live.
        async fn spend_one_time(&self, hash: &OneTimeTokenHash, purpose: TokenPurpose, now: UnixTime) -> Result<Option<StoredOneTimeToken>, StoreError>;
    }
}

store_role! {
    /// Second factors: a TOTP factor per user (pending until confirmed) and recovery
    /// codes. Nothing here changes what a request checks (see [`FactorChanges`]).
    pub trait SecondFactors (marker SecondFactorsRole) {
        /// The user's factors as stored. A read.
        async fn second_factors(&self, user: UserId) -> Result<SecondFactorState, StoreError>;
        /// Store a pending TOTP secret for `user` (replacing a pending one); `false` when
        /// a confirmed one exists (nothing written).
        async fn begin_totp(&self, user: UserId, secret: Vec<u8>, now: UnixTime) -> Result<bool, StoreError>;
        /// Record `step` as the user's last accepted TOTP step, only if it is later than
        /// the one stored (one conditional write); whether it was.
        async fn advance_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;
        /// Whether `user` has this recovery code, unused. A read.
        async fn recovery_code_unused(&self, user: UserId, code: &RecoveryCodeHash) -> Result<bool, StoreError>;
        /// Spend one unused recovery code of `user` (one conditional write); whether it was.
        async fn spend_recovery_code(&self, user: UserId, code: &RecoveryCodeHash, now: UnixTime) -> Result<bool, StoreError>;
        /// Replace every recovery code of a user with MFA on by `codes`, in one
        /// transaction with the mail; `false` when MFA is off (nothing written).
        async fn replace_recovery_codes(&self, user: UserId, codes: Vec<RecoveryCodeHash>, now: UnixTime, mails: Vec<NewMail>) -> Result<bool, StoreError>;
        /// Every stored TOTP secret (for re-sealing under a new key).
        async fn totp_secrets(&self) -> Result<Vec<(UserId, Vec<u8>)>, StoreError>;
        /// Replace `user`'s stored TOTP secret `old` by `new` (re-sealed); whether it was.
        async fn reseal_totp_secret(&self, user: UserId, old: Vec<u8>, new: Vec<u8>) -> Result<bool, StoreError>;
    }
}

store_role! {
    /// Changes that turn a user's MFA on or off: each moves the user's stamp, revokes
    /// sessions and writes the revocation log in its own transaction (a cache above
    /// must forget the user).
    pub trait FactorChanges (marker FactorChangesRole) {
        /// Confirm the pending factor whose stored secret is still `confirm.secret`, with
        /// `confirm.step` as its last accepted step, replace the recovery codes, turn MFA
        /// on, move the stamp, store `confirm.keep_auth` as the kept session's sign-in and
        /// revoke every other session, with the mail, in one transaction; the sessions revoked, `None` when no such pending factor
        /// exists (nothing written).
        async fn confirm_totp(&self, confirm: ConfirmTotp) -> Result<Option<Vec<SessionId>>, StoreError>;
        /// For a user with MFA on: delete the factors of `removal.scope` (for `Totp`,
        /// only if a confirmed one exists) and, when no factor is left, the recovery
        /// codes, turning MFA off (refused with `keep_a_factor`: nothing written); move
        /// the stamp and revoke every session but `removal.keep`, with the mail, in one
        /// transaction.
        async fn remove_second_factors(&self, removal: RemoveFactors) -> Result<FactorsRemoved, StoreError>;
        /// Store a passkey for an active user, turning their MFA on (with
        /// `codes_if_first` as recovery codes if it was off), storing `keep_auth` as the
        /// kept session's sign-in, moving the stamp and revoking every other session,
        /// with the mail, in one transaction. A credential ID registered already
        /// (anyone's) writes nothing.
        async fn add_passkey(&self, add: AddPasskey) -> Result<PasskeyAdded, StoreError>;
        /// Delete one of the user's passkeys; when no factor is left, the recovery codes
        /// go and MFA turns off. Moves the stamp and revokes every session but
        /// `remove.keep`, with the mail, in one transaction.
        async fn remove_passkey(&self, remove: RemovePasskey) -> Result<PasskeyRemoved, StoreError>;
    }
}

store_role! {
    /// The applications registered with the OAuth2 / OpenID Connect provider.
    pub trait Clients (marker ClientsRole) {
        /// Store a new client.
        async fn create_client(&self, client: StoredClient) -> Result<(), StoreError>;
        /// The client with this id. A read.
        async fn client(&self, id: ClientId) -> Result<Option<StoredClient>, StoreError>;
        /// Every client, oldest first. A read.
        async fn list_clients(&self) -> Result<Vec<StoredClient>, StoreError>;
        /// Change the fields `update` gives, and only those (one statement: two changes
        /// at once to different fields both stand); whether the client exists.
        async fn update_client(&self, id: ClientId, update: ClientUpdate, now: UnixTime) -> Result<bool, StoreError>;
        /// Replace a confidential client's secret (one conditional write: a public one
        /// keeps none); whether it was.
        async fn set_client_secret(&self, id: ClientId, secret: ClientSecretHash, now: UnixTime) -> Result<bool, StoreError>;
        /// Delete a client (its codes and consents go with it) and revoke every session
        /// opened for it, in one transaction; those sessions, `None` if it did not exist.
        async fn delete_client(&self, id: ClientId, now: UnixTime) -> Result<Option<Vec<SessionId>>, StoreError>;
    }
}

store_role! {
    /// What the provider hands out: authorization codes and users' consents. Sessions
    /// opened for applications are sessions (see [`Sessions`]).
    pub trait Grants (marker GrantsRole) {
        /// Store an authorization code until its expiry.
        async fn save_code(&self, code: NewCode) -> Result<(), StoreError>;
        /// Use a code (one conditional write: of two requests, one takes it), naming
        /// the session its exchange will open; a code used before is marked as come
        /// back, so that session never opens if it has not yet.
        async fn take_code(&self, hash: &AuthCodeHash, session: SessionId, now: UnixTime) -> Result<CodeTaken, StoreError>;
        /// The scopes `user` allowed `client`, if any. A read.
        async fn consent(&self, user: UserId, client: ClientId) -> Result<Option<Vec<Scope>>, StoreError>;
        /// Store what `user` allows `client` now (replacing what was).
        async fn save_consent(&self, user: UserId, client: ClientId, scopes: Vec<Scope>, now: UnixTime) -> Result<(), StoreError>;
        /// The applications `user` allowed, newest first. A read.
        async fn consents(&self, user: UserId, now: UnixTime) -> Result<Vec<StoredConsent>, StoreError>;
        /// Forget `user`'s consent to `client`, delete its codes not yet exchanged, and
        /// revoke every session opened for it, in one transaction.
        async fn revoke_grant(&self, user: UserId, client: ClientId, now: UnixTime) -> Result<GrantRevoked, StoreError>;
    }
}

store_role! {
    /// Passkeys, and the WebAuthn ceremonies in flight. Nothing here changes what a
    /// request checks (adding and removing one do: see [`FactorChanges`]).
    pub trait Passkeys (marker PasskeysRole) {
        /// The user's passkeys, oldest first. A read.
        async fn passkeys_of(&self, user: UserId) -> Result<Vec<StoredPasskey>, StoreError>;
        /// The passkey with this credential ID, anyone's. A read.
        async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>, StoreError>;
        /// Record a use: the credential as updated, its counter and `last_used_at`, only
        /// if the counter moved forward (or both it and the stored one are 0) — one
        /// conditional write; whether it was written (`false`: a use with a later
        /// counter won, or the passkey is gone).
        async fn record_passkey_use(&self, used: PasskeyUse) -> Result<bool, StoreError>;
        /// Rename one of the user's passkeys; whether it exists.
        async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: PasskeyName) -> Result<bool, StoreError>;
        /// Store a ceremony until `expires_at`.
        async fn open_ceremony(&self, ceremony: NewCeremony) -> Result<(), StoreError>;
        /// Take a live ceremony of `kind` (one conditional delete: of two requests
        /// finishing one, one gets it); `None` when it is unknown, expired, taken or of
        /// another kind (nothing changed).
        async fn take_ceremony(&self, hash: &OneTimeTokenHash, kind: CeremonyKind, now: UnixTime) -> Result<Option<TakenCeremony>, StoreError>;
        /// Delete every ceremony expired at `now` (none is ever finished after); how many.
        async fn purge_ceremonies(&self, now: UnixTime) -> Result<u64, StoreError>;
        /// The RP IDs passkeys are registered for, with how many each.
        async fn passkey_rp_ids(&self) -> Result<Vec<(String, u64)>, StoreError>;
    }
}

store_role! {
    /// The mail outbox: messages wait here until one sender, on any instance, delivers them.
    pub trait Outbox (marker OutboxRole) {
        /// Queue `mails` (a notice with no token), in one transaction.
        async fn enqueue_mail(&self, mails: Vec<NewMail>, now: UnixTime) -> Result<(), StoreError>;
        /// Claim up to `limit` messages due at `now` until `lease_until`: one
        /// conditional write per message, so each is claimed by one sender at a time.
        async fn claim_mail(&self, now: UnixTime, lease_until: UnixTime, limit: u32) -> Result<Vec<ClaimedMail>, StoreError>;
        /// Record how a claimed delivery went; `false` if the claim was lost (another
        /// sender took the message after the lease ran out).
        async fn finish_mail(&self, id: MailId, claim: i64, outcome: Delivery, now: UnixTime) -> Result<bool, StoreError>;
        /// Messages, newest first; only those given up on with `failed_only`.
        async fn list_mail(&self, failed_only: bool, limit: u32) -> Result<Vec<MailEntry>, StoreError>;
        /// Queue again the failed message `id`, or every failed one; how many.
        async fn retry_mail(&self, id: Option<MailId>, now: UnixTime) -> Result<u64, StoreError>;
        async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
    }
}

/// Every storage backend implements each role, and passes the one conformance suite
/// (`tests/store_contract.rs`, `tests/conformance`); a layer implements the roles it
/// changes and passes the rest through ([`layer::Over`]).
pub trait Store:
    Lifecycle
    + Users
    + UserChanges
    + Sessions
    + Keys
    + RevocationLog
    + OneTimeTokens
    + Outbox
    + SecondFactors
    + FactorChanges
    + Passkeys
    + Clients
    + Grants
{
}

impl<T> Store for T where
    T: Lifecycle
        + Users
        + UserChanges
        + Sessions
        + Keys
        + RevocationLog
        + OneTimeTokens
        + Outbox
        + SecondFactors
        + FactorChanges
        + Passkeys
        + Clients
        + Grants
{
}

/// Open the configured database with its backend, and bring its schema up to date.
pub async fn open(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match &settings.database_url {
        DatabaseUrl::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path).await?),
        DatabaseUrl::Postgres(url) => Arc::new(
            postgres::PgStore::connect(
                url,
                settings.pool_size,
                std::time::Duration::from_secs(settings.connect_timeout_secs),
            )
            .await?,
        ),
    };
    store.migrate().await?;
    Ok(store)
}

impl LoggedRevocation {
    /// A log row as every backend reads it: a sequence, and a session or a user id.
    pub(crate) fn from_columns(
        seq: i64,
        session: Option<String>,
        user: Option<String>,
        client: Option<String>,
    ) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Backend(format!("malformed revocation {what} in database"));
        let what = match (session, user, client) {
            (Some(s), _, _) => Revoked::Session(s.parse().map_err(|_| bad("session"))?),
            (None, Some(u), _) => Revoked::User(u.parse().map_err(|_| bad("user"))?),
            (None, None, Some(c)) => Revoked::Client(c.parse().map_err(|_| bad("client"))?),
            (None, None, None) => return Err(bad("row")),
        };
        Ok(Self { seq, what })
    }
}

/// Roles are stored as a JSON array of strings in every backend.
pub(crate) fn roles_to_json(roles: &[Role]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".into())
}

/// Unknown or malformed stored roles are dropped rather than trusted.
pub(crate) fn roles_from_json(raw: &str) -> Vec<Role> {
    serde_json::from_str::<Vec<String>>(raw)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| Role::parse(r).ok())
        .collect()
}

#[cfg(test)]
mod url_tests {
    use super::{DatabaseUrl, redact_url};

    #[test]
    fn a_password_is_hidden_and_nothing_else() {
        assert_eq!(redact_url("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact_url("redis://:pw@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact_url("postgres://app@db/app?password=TopSecret&sslmode=disable"),
            "postgres://app@db/app?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db/app?pass%77ord=x"),
            "postgres://db/app?pass%77ord=***"
        );
    }

    #[test]
    fn sqlalchemys_relative_sqlite_url_is_refused_with_the_spelling_meant() {
        let e = DatabaseUrl::parse("sqlite:///./app.db").unwrap_err();
        assert!(e.contains("sqlite://app.db"), "{e}");
        assert_eq!(
            DatabaseUrl::parse("sqlite:///srv/app/app.db").unwrap(),
            DatabaseUrl::Sqlite {
                path: "/srv/app/app.db".into()
            }
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://app.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite { path: "app.db".into() }
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }
}
