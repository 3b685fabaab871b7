//! `AuthError`: why the rules refused, in the domain's words. No status codes here:
//! the HTTP edge (`http::error::ApiError`) and the CLI each word it for their audience.

use crate::crypto::passwords::HashError;
use crate::crypto::tokens::TokenError;
use crate::store::StoreError;

/// Why a presented access token was refused, as far as the client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Expired,
    Revoked,
    BadSignature,
    Invalid,
}

/// A sign-in that needs its second factor: the token to complete it with, and how.
#[derive(Debug)]
pub struct MfaChallenge {
    pub mfa_token: String,
    pub methods: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("access token refused ({0:?})")]
    InvalidToken(TokenProblem),
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    /// The current password given to a password change is wrong.
    #[error("incorrect current password")]
    WrongPassword,
    #[error("inactive user")]
    InactiveUser,
    #[error("username or email already registered")]
    Taken,
    /// The change would leave nobody able to administer the server.
    #[error("this change would leave no active admin; give another user the admin role first")]
    LastAdmin,
    #[error("not found")]
    NotFound,
    /// A one-time mail token that is unknown, spent, expired or of another purpose
    /// (one answer for all, so none of them is told apart).
    #[error("invalid or expired token")]
    InvalidOneTimeToken,
    /// `TOKENGATE_REQUIRE_VERIFIED_EMAIL`: the password was right, the address unproven.
    #[error("email not verified")]
    EmailNotVerified,
    /// A feature the configuration turned off (`TOKENGATE_MAGIC_LINKS`).
    #[error("not enabled on this server")]
    Disabled,
    /// The first factor was right; the account has MFA: nothing issued but this.
    #[error("MFA required")]
    MfaRequired(MfaChallenge),
    /// An MFA token that is unknown, spent, expired, used up, from another network, or
    /// whose account changed (one answer for all).
    #[error("invalid or expired MFA token")]
    InvalidMfaToken,
    /// A TOTP or recovery code that is wrong, replayed or used.
    #[error("invalid MFA code")]
    InvalidMfaCode,
    /// Step-up of an account with MFA needs a current code too.
    #[error("MFA code required")]
    MfaCodeRequired,
    /// The caller holds the role, but this server requires MFA of it and theirs is off.
    #[error("MFA required for this role")]
    MfaRequiredForRole,
    #[error("insufficient role")]
    InsufficientRole,
    #[error("TOTP is already enabled")]
    TotpAlreadyEnabled,
    #[error("no TOTP enrolment to confirm")]
    NoPendingTotp,
    #[error("MFA is not enabled")]
    MfaNotEnabled,
    /// A client needs at least one redirect URI.
    #[error("at least one redirect URI is needed")]
    NoRedirectUri,
    /// A client needs at least one scope.
    #[error("at least one scope is needed")]
    NoScope,
    /// A client's audience may not be the server's own (`TOKENGATE_AUDIENCE`).
    #[error("an application's audience may not be this server's own (TOKENGATE_AUDIENCE)")]
    ServerAudience,
    /// A client's audience may not be another client's id (its tokens' default
    /// audience): that client's API would take them for its own.
    #[error("an application's audience may not be another application's client_id")]
    OtherClientAudience,
    /// A public client has no secret to rotate.
    #[error("a public client has no secret")]
    PublicClient,
    /// No RP ID is configured or derivable here: passkeys are off.
    #[error("passkeys are not set up on this server")]
    PasskeysOff,
    /// A WebAuthn ceremony that is unknown, expired, finished or of another kind.
    #[error("unknown, expired or finished passkey ceremony")]
    InvalidCeremony,
    /// A registration whose authenticator's answer did not verify (wrong origin or RP
    /// ID, a challenge of another ceremony, no user verification, malformed).
    #[error("the passkey's answer was not accepted")]
    PasskeyRejected,
    /// A sign-in whose assertion did not verify, or whose passkey is unknown.
    #[error("passkey not recognised")]
    PasskeyRefused,
    /// That credential is registered already.
    #[error("this passkey is registered already")]
    PasskeyTaken,
    /// Removing this factor would leave a holder of an MFA-required role without one.
    #[error("last factor of an MFA-required role")]
    LastFactor,
    /// Refused in OAuth's words (the token endpoint, introspection, revocation).
    #[error("OAuth error {}: {}", .0.code.as_str(), .0.description)]
    OAuth(crate::auth::oauth::OAuthError),
    /// The token is valid but lacks this scope (RFC 6750 §3.1).
    #[error("insufficient scope: {0} is required")]
    InsufficientScope(&'static str),
    #[error("too many attempts; retry in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    /// The password-hashing queue is full; retry shortly.
    #[error("server busy; retry in {retry_after_secs}s")]
    Busy { retry_after_secs: u64 },
    /// The database cannot be reached right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => Self::internal(other),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Self::Busy { retry_after_secs: 1 },
            other => Self::internal(other),
        }
    }
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Rejected(_) => Self::InvalidToken(TokenProblem::Invalid),
            TokenError::Signing(m) => Self::Internal(m),
        }
    }
}
