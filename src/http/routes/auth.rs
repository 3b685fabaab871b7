//! `/auth/*`: register, login, refresh, logout, logout-all, password.

use crate::http::json::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::user_read::UserRead;
use crate::auth::TokenPair;
use crate::domain::{DeviceName, Email, Password, Username};
use crate::http::AppState;
use crate::http::body::{Checker, FormOrJsonBody, FromFields, JsonBody, OptionalJsonBody};
use crate::http::error::{ApiError, TokenEndpointError};
use crate::http::extract::{Authenticated, Client};
use crate::http::openapi::{
    Conflict, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(change_password))
}

/// A token pair: the access JWT for `Authorization: Bearer`, the refresh token for
/// `/auth/refresh`.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    /// Opaque; single use: each refresh spends it and returns a new one.
    refresh_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: u64,
    /// After a login: send it back (`X-Device-Token` header or `device_token` field) on
    /// later logins, so a flood of guesses at this username does not lock this client out.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token.expose().to_owned(),
            token_type: "bearer",
            expires_in: p.expires_in,
            device_token: p.device_token,
        }
    }
}

/// The header in which API clients send their device token back.
pub const DEVICE_TOKEN_HEADER: &str = "x-device-token";

/// `POST /auth/register`.
#[derive(ToSchema)]
pub struct RegisterRequest {
    /// 3-50 characters of letters, digits, `_`, `.` and `-`.
    #[schema(value_type = String, min_length = 3, max_length = 50, pattern = "^[A-Za-z0-9_.-]{3,50}$", example = "alice")]
    username: Username,
    #[schema(value_type = String, format = Email, example = "alice@example.com")]
    email: Email,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    password: Password,
}

impl FromFields for RegisterRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let username = c.parsed("username", Username::parse);
        let email = c.parsed("email", Email::parse);
        let password = c.parsed("password", Password::parse);
        Some(Self {
            username: username?,
            email: email?,
            password: password?,
        })
    }
}

/// The token endpoint's request: OAuth2's password grant as a form (what
/// `OAuth2PasswordRequestForm` clients and Swagger UI send) or the same fields as JSON,
/// and its refresh grant (RFC 6749 section 6), which standard OAuth2 clients send here.
/// (The schema; requests are read as a [`TokenRequest`].)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoginRequest {
    /// `password` (the default) or `refresh_token`.
    #[schema(pattern = "^(password|refresh_token)$", example = "password", nullable = false)]
    grant_type: Option<String>,
    /// Required by the password grant.
    #[schema(example = "alice", nullable = false)]
    username: Option<String>,
    /// Required by the password grant.
    #[schema(format = Password, nullable = false)]
    password: Option<String>,
    /// The device token a previous login returned (or send `X-Device-Token`).
    device_token: Option<String>,
    /// A name for this device in session lists ("Alice's laptop"), 1-64 printable characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u115F-\\u1160\\u180B-\\u180F\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF9-\\uFFFB]*$",
        nullable = false
    )]
    device_name: Option<String>,
    /// Required by the refresh grant: the refresh token to spend.
    #[schema(nullable = false)]
    refresh_token: Option<String>,
}

/// A username and password, as the password grant and the cookie login read them.
#[derive(ToSchema)]
pub struct PasswordGrant {
    #[schema(example = "alice")]
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The device token a previous login returned (or the device cookie).
    pub device_token: Option<String>,
    /// A name for this device in session lists ("Alice's laptop"), 1-64 printable characters.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64,
             pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u115F-\\u1160\\u180B-\\u180F\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF9-\\uFFFB]*$", nullable = false)]
    pub device_name: Option<DeviceName>,
}

impl PasswordGrant {
    fn read(c: &mut Checker<'_>) -> Option<Self> {
        let username = c.owned("username");
        let password = c.owned("password");
        let device_token = c.optional_string("device_token").map(str::to_owned);
        // A form's empty field is no name.
        let device_name = match c.optional_string("device_name") {
            None => Some(None),
            Some(s) if s.trim().is_empty() => Some(None),
            Some(_) => c.parsed("device_name", DeviceName::parse).map(Some),
        };
        Some(Self {
            username: username?,
            password: password?,
            device_token,
            device_name: device_name?,
        })
    }
}

impl FromFields for PasswordGrant {
    /// The cookie login: the password grant's fields; any other grant is refused.
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let grant_type = c.optional_string("grant_type");
        if grant_type.is_some_and(|g| g != "password") {
            c.fail(
                "grant_type",
                "String should match pattern '^password$'",
                "string_pattern_mismatch",
            );
        }
        Self::read(c)
    }
}

/// What a token-endpoint request asks for.
pub enum TokenRequest {
    Password(PasswordGrant),
    Refresh {
        refresh_token: String,
    },
    /// A `grant_type` this server does not offer (answered 400 `unsupported_grant_type`).
    Unsupported,
}

impl FromFields for TokenRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        match c.optional_string("grant_type") {
            None | Some("password") => PasswordGrant::read(c).map(Self::Password),
            Some("refresh_token") => Some(Self::Refresh {
                refresh_token: c.owned("refresh_token")?,
            }),
            Some(_) => Some(Self::Unsupported),
        }
    }
}

/// `POST /auth/refresh`.
#[derive(ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

impl FromFields for RefreshRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self {
            refresh_token: c.owned("refresh_token")?,
        })
    }
}

/// `POST /auth/logout`: the session's refresh token, optionally (it is found from the
/// access token anyway; sent, it must belong to that session).
#[derive(ToSchema)]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

impl FromFields for LogoutRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self {
            refresh_token: c.optional_string("refresh_token").map(str::to_owned),
        })
    }
}

/// `POST /auth/password`.
#[derive(ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(format = Password)]
    current_password: String,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: Password,
    /// Required when the account has MFA (unless `passkey` is given): a current TOTP
    /// code or an unused recovery code.
    #[schema(nullable = false)]
    code: Option<String>,
    /// In place of `code`: a passkey's answer to `POST /auth/passkeys/step-up/start`.
    #[schema(nullable = false, value_type = Option<super::step_up::PasskeyProofBody>)]
    passkey: Option<crate::auth::PasskeyProof>,
}

impl FromFields for PasswordChangeRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let current_password = c.owned("current_password");
        let new_password = c.parsed("new_password", Password::parse);
        let code = c.optional_string("code").map(str::to_owned);
        let passkey = super::step_up::passkey_field(c);
        Some(Self {
            current_password: current_password?,
            new_password: new_password?,
            code,
            passkey,
        })
    }
}

/// Create an account (no roles; an admin grants them).
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = UserRead),
        Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<UserRead>), ApiError> {
    let user = state
        .auth
        .register(body.username, body.email, body.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(UserRead::from(user))))
}

/// The device token an API client sends in the `X-Device-Token` header.
pub fn device_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(DEVICE_TOKEN_HEADER).and_then(|v| v.to_str().ok())
}

/// The token endpoint: a username and password for a token pair (OAuth2 password
/// grant), or a refresh token for the next pair (refresh grant, the same rotation and
/// reuse rules as `/auth/refresh`). Errors carry RFC 6749's `error` beside `detail`.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    params(("X-Device-Token" = Option<String>, Header, description = "The device token of an earlier login")),
    responses(
        (status = 200, description = "Logged in, or rotated", body = TokenResponse),
        (status = 400, description = "Unsupported grant_type", body = crate::http::openapi::OAuthErrorBody),
        (status = 401, description = "Bad credentials, or an invalid, expired or reused refresh token",
            body = crate::http::openapi::OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 403, description = "Inactive user; or MFA required (`error: mfa_required`, with `mfa_token` and `methods`: complete it at `/auth/login/mfa`)", body = crate::http::openapi::OAuthErrorBody),
        (status = 422, description = "Validation Error", body = crate::http::openapi::OAuthValidationBody),
        PayloadTooLarge, UnsupportedMediaType, TooManyRequests, Unavailable,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<FormOrJsonBody<TokenRequest>, ApiError>,
) -> Result<Json<TokenResponse>, TokenEndpointError> {
    let FormOrJsonBody(body) = body?;
    let pair = match body {
        TokenRequest::Password(grant) => {
            let device = grant.device_token.as_deref().or_else(|| device_header(&headers));
            let name = grant
                .device_name
                .or_else(|| from_swagger_ui(&headers, &state.path_prefix));
            state
                .auth
                .login(&grant.username, &grant.password, device, name, &client)
                .await?
        }
        TokenRequest::Refresh { refresh_token } => state.auth.refresh(&refresh_token, &client).await?,
        TokenRequest::Unsupported => return Err(ApiError::UnsupportedGrantType.into()),
    };
    Ok(Json(pair.into()))
}

/// A login from our own `/docs` page (its Authorize button sends no `device_name`) is
/// named for it, so such sessions are told apart from the app's. The page's referrer
/// policy sends its URL to this origin only.
fn from_swagger_ui(headers: &HeaderMap, prefix: &str) -> Option<DeviceName> {
    let referer = headers.get(axum::http::header::REFERER)?.to_str().ok()?;
    let uri = referer.parse::<axum::http::Uri>().ok()?;
    // The page of this very origin (as the browser addressed it), not any `/docs`.
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    if uri.authority().map(axum::http::uri::Authority::as_str) != Some(host) {
        return None;
    }
    let path = uri.path().to_owned();
    let docs = format!("{prefix}{}", super::docs::DOCS_PATH);
    let from_docs = path == docs || path.strip_prefix(&docs).is_some_and(|rest| rest.starts_with('/'));
    from_docs
        .then(|| DeviceName::parse("Swagger UI (/docs)").ok())
        .flatten()
}

/// Spend a refresh token for a new pair. Presenting a spent token again revokes the
/// whole session (reuse detection).
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Rotated", body = TokenResponse),
        Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let pair = state.auth.refresh(&body.refresh_token, &client).await?;
    Ok(Json(pair.into()))
}

/// End the caller's session: its access token stops working at once, its refresh
/// token is spent.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "Optional"),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 204, description = "Logged out"),
        Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh = body.as_ref().and_then(|b| b.refresh_token.as_deref());
    state.auth.logout(&who, refresh, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller, on every device.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 204, description = "Every session ended"), Unauthorized, Unavailable)
)]
pub async fn logout_all(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.auth.logout_all(&who, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the caller's password; every other session of theirs is revoked.
#[utoipa::path(
    post, path = "/auth/password", tag = "auth",
    request_body = PasswordChangeRequest,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 204, description = "Changed"),
        Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    let current = super::step_up::step_up(&body.current_password, body.code, body.passkey)?;
    state
        .auth
        .change_password(&who, current, body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
