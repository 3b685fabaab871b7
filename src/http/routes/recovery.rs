//! Mail, verification and recovery (contract v1.2): verify an address, reset a
//! forgotten password, change the address, sign in by a link. Every token arrives in a
//! POST body (the pages of `/account` that links open send it); none is ever in a URL
//! the server sees.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::TokenResponse;
use super::user_read::UserRead;
use crate::domain::{DeviceName, Email, Password};
use crate::http::AppState;
use crate::http::body::{Checker, FromFields, JsonBody};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, Client};
use crate::http::json::Json;
use crate::http::openapi::{
    Conflict, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_verification))
        .routes(routes!(verify_email))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(change_email))
        .routes(routes!(request_magic_link))
        .routes(routes!(magic_link_login))
        .routes(routes!(link_account))
}

/// Whose account a link acts on, and for what.
#[derive(Serialize, ToSchema)]
pub struct LinkAccount {
    #[schema(example = "mara")]
    username: String,
    /// `verify_email`, `change_email`, `reset_password` or `magic_link`.
    #[schema(example = "reset_password")]
    purpose: &'static str,
}

/// The answer to a request that mails something (202).
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    #[schema(example = "If the address belongs to an account, a link is on its way")]
    detail: &'static str,
}

fn accepted(detail: &'static str) -> (StatusCode, Json<Accepted>) {
    (StatusCode::ACCEPTED, Json(Accepted { detail }))
}

/// A one-time token from a link.
#[derive(ToSchema)]
pub struct TokenBody {
    token: String,
}

impl FromFields for TokenBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self {
            token: c.owned("token")?,
        })
    }
}

/// An address to mail.
#[derive(ToSchema)]
pub struct EmailBody {
    #[schema(value_type = String, format = Email)]
    email: Email,
}

impl FromFields for EmailBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self {
            email: c.parsed("email", Email::parse)?,
        })
    }
}

/// `POST /auth/password/reset`.
#[derive(ToSchema)]
pub struct ResetBody {
    token: String,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: Password,
}

impl FromFields for ResetBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let token = c.owned("token");
        let new_password = c.parsed("new_password", Password::parse);
        Some(Self {
            token: token?,
            new_password: new_password?,
        })
    }
}

/// `POST /auth/email/change`.
#[derive(ToSchema)]
pub struct EmailChangeBody {
    #[schema(value_type = String, format = Email)]
    new_email: Email,
    #[schema(format = Password)]
    password: String,
    /// Required when the account has MFA (unless `passkey` is given): a current TOTP
    /// code or an unused recovery code.
    #[schema(nullable = false)]
    code: Option<String>,
    /// In place of `code`: a passkey's answer to `POST /auth/passkeys/step-up/start`.
    #[schema(nullable = false, value_type = Option<super::step_up::PasskeyProofBody>)]
    passkey: Option<crate::auth::PasskeyProof>,
}

impl FromFields for EmailChangeBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let new_email = c.parsed("new_email", Email::parse);
        let password = c.owned("password");
        let code = c.optional_string("code").map(str::to_owned);
        let passkey = super::step_up::passkey_field(c);
        Some(Self {
            new_email: new_email?,
            password: password?,
            code,
            passkey,
        })
    }
}

/// `POST /auth/magic-link/login`.
#[derive(ToSchema)]
pub struct MagicLoginBody {
    pub(super) token: String,
    /// A name for this device's session ("Alice's laptop").
    #[schema(value_type = Option<String>, max_length = 64)]
    pub(super) device_name: Option<DeviceName>,
}

impl FromFields for MagicLoginBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let token = c.owned("token");
        let device_name = match c.optional_string("device_name") {
            Some(raw) => Some(c.parsed("device_name", |_| DeviceName::parse(raw))?),
            None => None,
        };
        Some(Self {
            token: token?,
            device_name,
        })
    }
}

/// What a link's token is for: the account it acts on and the link's purpose. Nothing
/// is spent; the pages mailed links open show it before the user acts, so that a link
/// someone else asked for is seen to be for their account.
#[utoipa::path(
    post, path = "/auth/link/account", tag = "recovery",
    request_body = TokenBody,
    responses(
        (status = 200, description = "The account and purpose of a live token", body = LinkAccount),
        (status = 400, description = "Invalid or expired token", body = crate::http::openapi::ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn link_account(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Json<LinkAccount>, ApiError> {
    let (username, purpose) = state.auth.link_account(&body.token, &client).await?;
    Ok(Json(LinkAccount {
        username: username.as_str().to_owned(),
        purpose: purpose.as_str(),
    }))
}

/// Mail the caller a link that verifies their address (nothing if it is verified).
#[utoipa::path(
    post, path = "/auth/email/verify/request", tag = "recovery",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 202, description = "A link is on its way", body = Accepted),
        Unauthorized, TooManyRequests, Unavailable,
    )
)]
pub async fn request_verification(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.auth.request_verification(&who, &client).await?;
    Ok(accepted("A verification link is on its way"))
}

/// Verify an address with the token of its link (a verification, or the link that
/// confirms a new address: the address then becomes the account's).
#[utoipa::path(
    post, path = "/auth/email/verify", tag = "recovery",
    request_body = TokenBody,
    responses(
        (status = 200, description = "Verified", body = UserRead),
        (status = 400, description = "Invalid or expired token", body = crate::http::openapi::ErrorBody),
        Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Json<UserRead>, ApiError> {
    let user = state.auth.verify_email(&body.token, &client).await?;
    Ok(Json(user.into()))
}

/// Mail a password-reset link. The same answer, as fast, whether or not the address
/// belongs to an account.
#[utoipa::path(
    post, path = "/auth/password/forgot", tag = "recovery",
    request_body = EmailBody,
    responses(
        (status = 202, description = "If the address is an account's, a link is on its way", body = Accepted),
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn forgot_password(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<EmailBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.auth.forgot_password(body.email, &client).await?;
    Ok(accepted("If the address belongs to an account, a link is on its way"))
}

/// Set a new password with a reset link's token: every session of the account ends.
#[utoipa::path(
    post, path = "/auth/password/reset", tag = "recovery",
    request_body = ResetBody,
    responses(
        (status = 204, description = "Password set; every session ended"),
        (status = 400, description = "Invalid or expired token", body = crate::http::openapi::ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<ResetBody>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .reset_password(&body.token, body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the caller's address (with their password): a link goes to the new address
/// (it takes effect when opened), a notice to the current one.
#[utoipa::path(
    post, path = "/auth/email/change", tag = "recovery",
    request_body = EmailChangeBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 202, description = "A confirmation link is on its way to the new address", body = Accepted),
        Unauthorized, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn change_email(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<EmailChangeBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let step_up = super::step_up::step_up(&body.password, body.code, body.passkey)?;
    state
        .auth
        .request_email_change(&who, body.new_email, step_up, &client)
        .await?;
    Ok(accepted("A confirmation link is on its way to the new address"))
}

/// Mail a sign-in link (with `TOKENGATE_MAGIC_LINKS=on`). The same answer, as fast,
/// whether or not the address belongs to an account.
#[utoipa::path(
    post, path = "/auth/magic-link", tag = "recovery",
    request_body = EmailBody,
    responses(
        (status = 202, description = "If the address is an account's, a link is on its way", body = Accepted),
        (status = 404, description = "Sign-in links are off here", body = crate::http::openapi::ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn request_magic_link(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<EmailBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.auth.request_magic_link(body.email, &client).await?;
    Ok(accepted("If the address belongs to an account, a link is on its way"))
}

/// Sign in with a sign-in link's token: the login answer.
#[utoipa::path(
    post, path = "/auth/magic-link/login", tag = "recovery",
    request_body = MagicLoginBody,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Invalid or expired token", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "MFA required: the body carries `error: mfa_required`, `mfa_token` and `methods` (see `/auth/login/mfa`)",
            body = crate::http::openapi::ErrorBody),
        (status = 404, description = "Sign-in links are off here", body = crate::http::openapi::ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn magic_link_login(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<MagicLoginBody>,
) -> Result<Json<TokenResponse>, ApiError> {
    let pair = state
        .auth
        .magic_link_login(&body.token, body.device_name, &client)
        .await?;
    Ok(Json(pair.into()))
}
