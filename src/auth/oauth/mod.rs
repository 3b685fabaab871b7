//! tokengate as an OAuth2 / OpenID Connect provider: the applications registered with
//! it (clients), the authorization endpoint, the token endpoint and what applications
//! do with their tokens (userinfo, introspection, revocation), and the user's grants.

mod authorize;
mod clients;
mod grants;
mod logout;
mod resource;
mod token;

pub use authorize::{AuthorizeParams, AuthorizeRefusal, Authorized, CODE_TTL_SECS, ConsentPrompt};
pub use clients::{ClientChange, ClientRegistration, ClientView, RegisteredClient, parse_audience};
pub use grants::GrantView;
pub use logout::{LoggedOut, LogoutParams, LogoutRefusal};
pub use resource::{Introspection, UserInfo};
pub use token::{ClientAuth, OAuthTokens, TokenGrant};

use crate::domain::Scope;

/// This server as a provider.
#[derive(Clone, Debug)]
pub struct ProviderPolicy {
    /// The issuer URL (the public URL with any path prefix): `iss` of id_tokens, the
    /// `iss` of authorization responses, discovery's `issuer`.
    pub issuer: String,
}

/// RFC 6749's error codes (§4.1.2.1, §5.2) that the token endpoint and the
/// applications' endpoints answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    /// The client's authentication failed (401).
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
        }
    }
}

/// A refusal in OAuth's words: the code, and a description for the developer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    /// The client authenticated with HTTP Basic (an `invalid_client` then carries a
    /// `WWW-Authenticate: Basic` challenge, RFC 6749 §5.2).
    pub basic: bool,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic: false,
        }
    }
}

/// Whether `scopes` holds `name`.
fn has_scope(scopes: &[Scope], name: &str) -> bool {
    scopes.iter().any(|s| s.as_str() == name)
}
