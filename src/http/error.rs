//! `ApiError`: the one error type that becomes an HTTP response, each variant one
//! status and one detail, as the contract's Conventions say.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{AuthError, TokenProblem};

/// One entry of a 422 `detail` list, shaped like FastAPI's.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `["body", "<field>"]`, `["query", "<name>"]`, list items by index.
    #[schema(value_type = Vec<LocPart>, example = json!(["body", "username"]))]
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// One step of a [`FieldError`]'s `loc`: a name, or a list index. (The schema only;
/// `loc` is built as JSON values.)
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum LocPart {
    Name(String),
    Index(u32),
}

impl FieldError {
    /// An error about `field` of the request body.
    pub fn body(field: &str, msg: impl Into<String>, kind: &'static str) -> Self {
        Self {
            loc: vec![json!("body"), json!(field)],
            msg: msg.into(),
            kind,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// No credentials were sent.
    #[error("not authenticated")]
    NotAuthenticated,
    /// A token was sent and refused (bad signature, expired, revoked, wrong type...).
    #[error("invalid token")]
    InvalidToken(TokenProblem),
    #[error("bad credentials")]
    BadCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The current password given to a password change is wrong.
    #[error("wrong current password")]
    WrongPassword,
    #[error("inactive user")]
    InactiveUser,
    #[error("insufficient role")]
    InsufficientRole,
    /// The first factor was right; the second is needed (the token completes it).
    #[error("MFA required")]
    MfaRequired {
        mfa_token: String,
        methods: Vec<&'static str>,
    },
    #[error("invalid MFA token")]
    InvalidMfaToken,
    #[error("invalid MFA code")]
    InvalidMfaCode,
    #[error("MFA code required")]
    MfaCodeRequired,
    /// A cookie-authenticated unsafe request without the matching CSRF header.
    #[error("csrf check failed")]
    CsrfFailed,
    /// Refused for a reason the detail states (e.g. a cross-site cookie login).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The token endpoint was asked for a grant it does not offer.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// A malformed request that is not a body field's fault (e.g. a repeated cookie).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// Not here, for the reason the detail states (a feature this server has off).
    #[error("not found: {0}")]
    NotFoundBecause(&'static str),
    /// A passkey sign-in whose assertion did not verify.
    #[error("passkey refused")]
    PasskeyRefused,
    /// Refused in OAuth's words (RFC 6749 §5.2): 401 for `invalid_client`, else 400.
    #[error("oauth error {code}: {description}")]
    OAuth {
        code: &'static str,
        description: String,
        /// The client authenticated with HTTP Basic.
        basic: bool,
    },
    /// A valid token without the scope a route needs (RFC 6750 §3.1).
    #[error("insufficient scope")]
    InsufficientScope(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// Overloaded right now (the password-hashing queue is full); retry shortly.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    /// A bug or an infrastructure failure; logged, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotAuthenticated
            | Self::InvalidToken(_)
            | Self::BadCredentials
            | Self::InvalidRefreshToken
            | Self::WrongPassword
            | Self::InvalidMfaToken
            | Self::InvalidMfaCode
            | Self::MfaCodeRequired
            | Self::PasskeyRefused => StatusCode::UNAUTHORIZED,
            Self::OAuth { code, .. } if *code == "invalid_client" => StatusCode::UNAUTHORIZED,
            Self::OAuth { .. } => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::InactiveUser
            | Self::InsufficientRole
            | Self::CsrfFailed
            | Self::Forbidden(_)
            | Self::MfaRequired { .. } => StatusCode::FORBIDDEN,
            Self::BadRequest(_) | Self::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotFound | Self::NotFoundBecause(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> Value {
        let text = match self {
            Self::Validation(errors) => return json!(errors),
            Self::RateLimited { retry_after_secs } => {
                let secs = (*retry_after_secs).max(1);
                let unit = if secs == 1 { "second" } else { "seconds" };
                return json!(format!("Too many requests; retry in {secs} {unit}"));
            }
            Self::NotAuthenticated => "Not authenticated",
            Self::InvalidToken(_) => "Could not validate credentials",
            Self::BadCredentials => "Incorrect username or password",
            Self::InvalidRefreshToken => "Invalid or expired refresh token",
            Self::WrongPassword => "Incorrect password",
            Self::InactiveUser => "Inactive user",
            Self::InsufficientRole => "Insufficient role",
            Self::MfaRequired { .. } => "MFA required",
            Self::InvalidMfaToken => "Invalid or expired MFA token",
            Self::InvalidMfaCode => "Invalid MFA code",
            Self::MfaCodeRequired => "MFA code required: this account has two-step sign-in",
            Self::CsrfFailed => "CSRF token missing or invalid",
            Self::Forbidden(msg) | Self::BadRequest(msg) | Self::NotFoundBecause(msg) => msg,
            Self::PasskeyRefused => "Passkey not recognised",
            Self::OAuth { description, .. } => return json!(description),
            Self::InsufficientScope(scope) => return json!(format!("The token lacks the {scope} scope")),
            Self::UnsupportedGrantType => "Unsupported grant_type: password or refresh_token",
            Self::Conflict(msg) => msg,
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::PayloadTooLarge => "Request body too large (limit 64 KiB)",
            Self::UnsupportedMediaType(msg) => msg,
            Self::Unavailable(msg) => msg,
            Self::Busy { .. } => "Server busy, retry shortly",
            Self::Internal(_) => "Internal Server Error",
        };
        json!(text)
    }

    /// The `WWW-Authenticate` challenge every 401 carries; a refused token says why
    /// (RFC 6750 §3).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::InvalidToken(TokenProblem::Expired) => {
                Some("Bearer error=\"invalid_token\", error_description=\"token expired\"")
            }
            Self::InvalidToken(TokenProblem::Revoked) => {
                Some("Bearer error=\"invalid_token\", error_description=\"token revoked\"")
            }
            Self::InvalidToken(TokenProblem::BadSignature) => {
                Some("Bearer error=\"invalid_token\", error_description=\"invalid signature\"")
            }
            Self::InvalidToken(TokenProblem::Invalid) | Self::InvalidRefreshToken => {
                Some("Bearer error=\"invalid_token\"")
            }
            // RFC 6749 §5.2: the scheme the client authenticates with (Basic, or in the
            // body, for which Basic is the one a header would use).
            Self::OAuth { code, .. } if *code == "invalid_client" => Some("Basic realm=\"tokengate\""),
            Self::InsufficientScope(_) => Some("Bearer error=\"insufficient_scope\""),
            Self::NotAuthenticated
            | Self::BadCredentials
            | Self::WrongPassword
            | Self::InvalidMfaToken
            | Self::InvalidMfaCode
            | Self::MfaCodeRequired
            | Self::PasskeyRefused => Some("Bearer"),
            _ => None,
        }
    }
}

/// An error of the token endpoint: the same status and `detail` as any other, plus
/// RFC 6749 section 5.2's `error` (and `error_description`) where one fits, so that
/// standard OAuth2 clients read it too.
#[derive(Debug)]
pub struct TokenEndpointError(pub ApiError);

impl<E: Into<ApiError>> From<E> for TokenEndpointError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl ApiError {
    /// RFC 6749's code for this error at the token endpoint; none for limits and
    /// outages, which it has no code for.
    fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::Validation(_) | Self::BadRequest(_) | Self::PayloadTooLarge | Self::UnsupportedMediaType(_) => {
                Some("invalid_request")
            }
            Self::BadCredentials | Self::InvalidRefreshToken | Self::InactiveUser => Some("invalid_grant"),
            Self::MfaRequired { .. } => Some("mfa_required"),
            Self::OAuth { code, .. } => Some(code),
            Self::UnsupportedGrantType => Some("unsupported_grant_type"),
            _ => None,
        }
    }

    /// The detail as one line: itself, or each field error as `loc: msg`.
    fn description(&self) -> String {
        match self {
            Self::Validation(errors) => errors
                .iter()
                .map(|e| {
                    let loc: Vec<String> = e
                        .loc
                        .iter()
                        .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                        .collect();
                    format!("{}: {}", loc.join("."), e.msg)
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.detail().as_str().unwrap_or_default().to_owned(),
        }
    }
}

impl IntoResponse for TokenEndpointError {
    fn into_response(self) -> Response {
        let extra = self.0.oauth_error().map(|code| (code, self.0.description()));
        self.0.respond(extra)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidToken(why) => Self::InvalidToken(why),
            AuthError::BadCredentials => Self::BadCredentials,
            AuthError::InvalidRefreshToken => Self::InvalidRefreshToken,
            AuthError::WrongPassword => Self::WrongPassword,
            AuthError::InactiveUser => Self::InactiveUser,
            AuthError::Taken => Self::Conflict("Username or email already registered"),
            AuthError::LastAdmin => {
                Self::Conflict("This change would leave no active admin; give another user the admin role first")
            }
            AuthError::NotFound | AuthError::Disabled => Self::NotFound,
            AuthError::InvalidOneTimeToken => Self::BadRequest("Invalid or expired token"),
            AuthError::EmailNotVerified => Self::Forbidden("Email not verified"),
            AuthError::MfaRequired(c) => Self::MfaRequired {
                mfa_token: c.mfa_token,
                methods: c.methods,
            },
            AuthError::InvalidMfaToken => Self::InvalidMfaToken,
            AuthError::InvalidMfaCode => Self::InvalidMfaCode,
            AuthError::MfaCodeRequired => Self::MfaCodeRequired,
            AuthError::MfaRequiredForRole => Self::Forbidden("MFA required for this role"),
            AuthError::InsufficientRole => Self::InsufficientRole,
            AuthError::TotpAlreadyEnabled => Self::Conflict("TOTP is already enabled; remove it first"),
            AuthError::NoPendingTotp => {
                Self::Conflict("No TOTP enrolment to confirm; begin one with POST /auth/mfa/totp")
            }
            AuthError::MfaNotEnabled => Self::Conflict("MFA is not enabled"),
            AuthError::NoRedirectUri => Self::Validation(vec![FieldError::body(
                "redirect_uris",
                "At least one redirect URI is needed",
                "value_error",
            )]),
            AuthError::NoScope => Self::Validation(vec![FieldError::body(
                "scopes",
                "At least one scope is needed",
                "value_error",
            )]),
            AuthError::PublicClient => Self::Conflict("A public client has no secret"),
            AuthError::OtherClientAudience => Self::Validation(vec![FieldError::body(
                "audience",
                "An application's audience may not be another application's client_id (that app's default audience)",
                "value_error",
            )]),
            AuthError::ServerAudience => Self::Validation(vec![FieldError::body(
                "audience",
                "An application's audience may not be this server's own (TOKENGATE_AUDIENCE)",
                "value_error",
            )]),
            AuthError::PasskeysOff => Self::NotFoundBecause(
                "Passkeys are not set up on this server: it needs a domain name as its RP ID (TOKENGATE_WEBAUTHN_RP_ID)",
            ),
            AuthError::InvalidCeremony => {
                Self::BadRequest("Unknown, expired or finished passkey ceremony; start again")
            }
            AuthError::PasskeyRejected => Self::BadRequest(
                "The authenticator's answer was not accepted (origin, RP ID, challenge or user verification); start again",
            ),
            AuthError::PasskeyRefused => Self::PasskeyRefused,
            AuthError::PasskeyTaken => Self::Conflict("This passkey is registered already"),
            AuthError::LastFactor => Self::Conflict(
                "This is your last second factor and a role of yours requires MFA: add another factor first",
            ),
            AuthError::OAuth(e) => Self::OAuth {
                code: e.code.as_str(),
                description: e.description,
                basic: e.basic,
            },
            AuthError::InsufficientScope(scope) => Self::InsufficientScope(scope),
            AuthError::RateLimited { retry_after_secs } => Self::RateLimited { retry_after_secs },
            AuthError::Busy { retry_after_secs } => Self::Busy { retry_after_secs },
            AuthError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                Self::Unavailable("Database unavailable, retry shortly")
            }
            AuthError::Internal(msg) => Self::Internal(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(None)
    }
}

impl ApiError {
    /// The response, with an OAuth2 `error` and `error_description` beside `detail`
    /// when given.
    fn respond(self, oauth: Option<(&'static str, String)>) -> Response {
        if let Self::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let mut body = json!({ "detail": self.detail() });
        if let Some((code, description)) = oauth {
            body["error"] = json!(code);
            body["error_description"] = json!(description);
        }
        if let Self::MfaRequired { mfa_token, methods } = &self {
            body["error"] = json!("mfa_required");
            body["mfa_token"] = json!(mfa_token);
            body["methods"] = json!(methods);
        }
        let mut res = (self.status(), crate::http::json::Json(body)).into_response();
        if let Some(c) = self.challenge() {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        } else if let Self::Unavailable(_) = self {
            // Nothing was done; a retry in a moment may find the database back.
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_401_has_a_challenge() {
        for e in [
            ApiError::NotAuthenticated,
            ApiError::InvalidToken(TokenProblem::Invalid),
            ApiError::InvalidToken(TokenProblem::Expired),
            ApiError::InvalidToken(TokenProblem::Revoked),
            ApiError::InvalidToken(TokenProblem::BadSignature),
            ApiError::BadCredentials,
            ApiError::InvalidRefreshToken,
            ApiError::WrongPassword,
            ApiError::InvalidMfaToken,
            ApiError::InvalidMfaCode,
            ApiError::MfaCodeRequired,
            ApiError::PasskeyRefused,
        ] {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            assert!(e.challenge().is_some_and(|c| c.starts_with("Bearer")));
        }
    }

    #[test]
    fn an_unavailable_database_or_a_full_queue_is_a_503_not_a_500() {
        use crate::crypto::passwords::HashError;
        let status = |e: AuthError| ApiError::from(e).status();
        assert_eq!(
            status(AuthError::Unavailable("connection reset".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(AuthError::Internal("no such table".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(HashError::Busy.into()), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(AuthError::LastAdmin), StatusCode::CONFLICT);
    }
}
