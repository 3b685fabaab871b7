//! `/auth/mfa/*` and `/auth/login/mfa`: the caller's second factors (TOTP, recovery
//! codes), and the second step of a sign-in.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::TokenResponse;
use super::step_up::StepUpBody;
use crate::crypto::recovery_codes::RecoveryCode;
use crate::http::AppState;
use crate::http::body::{Checker, FromFields, JsonBody};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, Client};
use crate::http::json::Json;
use crate::http::openapi::{
    Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, Unprocessable,
    UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(begin_totp, remove_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(recovery_codes))
        .routes(routes!(login_mfa))
}

/// `POST /auth/mfa/totp/confirm`.
#[derive(ToSchema)]
pub struct CodeBody {
    /// The 6-digit code the authenticator app shows now.
    #[schema(example = "123456")]
    code: String,
}

impl FromFields for CodeBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self { code: c.owned("code")? })
    }
}

/// `POST /auth/login/mfa`: the second step of a sign-in.
#[derive(ToSchema)]
pub struct MfaLoginBody {
    /// The `mfa_token` of the 403 `mfa_required` answer.
    pub(super) mfa_token: String,
    /// A current TOTP code, or an unused recovery code.
    #[schema(example = "123456")]
    pub(super) code: String,
}

impl FromFields for MfaLoginBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let mfa_token = c.owned("mfa_token");
        let code = c.owned("code");
        Some(Self {
            mfa_token: mfa_token?,
            code: code?,
        })
    }
}

/// The caller's second factors.
#[derive(Serialize, ToSchema)]
pub struct MfaRead {
    /// TOTP is on (confirmed).
    totp: bool,
    /// A TOTP enrolment waits for its confirming code.
    totp_pending: bool,
    /// Passkeys registered.
    passkeys: u32,
    /// Recovery codes not yet used.
    recovery_codes_left: u32,
    /// A role the caller holds requires MFA here (`TOKENGATE_REQUIRE_MFA_ROLES`), and
    /// theirs is off: those roles' routes refuse them until they turn it on.
    required: bool,
}

/// A TOTP enrolment: scan `qr_svg` (or type `secret`) into an authenticator app, then
/// confirm with a code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentRead {
    /// Base32, for typing into the app.
    secret: String,
    otpauth_uri: String,
    /// The `otpauth_uri` as a QR code (inline SVG, no script).
    qr_svg: String,
}

/// Recovery codes: shown this once; each works once, in place of a code.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesRead {
    #[schema(example = json!(["abcd-efgh-ijkl-mnop"]))]
    recovery_codes: Vec<String>,
}

impl RecoveryCodesRead {
    fn of(codes: &[RecoveryCode]) -> Self {
        Self {
            recovery_codes: codes.iter().map(RecoveryCode::display).collect(),
        }
    }
}

/// The caller's second factors.
#[utoipa::path(
    get, path = "/auth/mfa", tag = "mfa",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The caller's factors", body = MfaRead), Unauthorized, Unavailable)
)]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<MfaRead>, ApiError> {
    let s = state.auth.mfa_status(&who).await?;
    Ok(Json(MfaRead {
        totp: s.totp,
        totp_pending: s.totp_pending,
        passkeys: s.passkeys,
        recovery_codes_left: s.recovery_codes_left,
        required: s.required,
    }))
}

/// Begin a TOTP enrolment (step-up): a fresh secret, pending until a code confirms it.
#[utoipa::path(
    post, path = "/auth/mfa/totp", tag = "mfa",
    request_body = StepUpBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The secret, pending until confirmed", body = TotpEnrolmentRead),
        (status = 403, description = "Email not verified: MFA needs a proven address", body = crate::http::openapi::ErrorBody),
        Unauthorized, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn begin_totp(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<Json<TotpEnrolmentRead>, ApiError> {
    let enrolment = state.auth.begin_totp(&who, body.into_step_up()?, &client).await?;
    let qr_svg = crate::http::qr::svg(&enrolment.otpauth_uri)
        .ok_or_else(|| ApiError::internal("the enrolment URI does not fit a QR code"))?;
    Ok(Json(TotpEnrolmentRead {
        secret: enrolment.secret.base32(),
        otpauth_uri: enrolment.otpauth_uri,
        qr_svg,
    }))
}

/// Confirm the pending TOTP factor with a code from the app: MFA is on, every other
/// session of the caller ends, and the recovery codes are shown this once.
#[utoipa::path(
    post, path = "/auth/mfa/totp/confirm", tag = "mfa",
    request_body = CodeBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "On; the recovery codes", body = RecoveryCodesRead),
        Unauthorized, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<CodeBody>,
) -> Result<Json<RecoveryCodesRead>, ApiError> {
    let codes = state.auth.confirm_totp(&who, &body.code, &client).await?;
    Ok(Json(RecoveryCodesRead::of(&codes)))
}

/// Turn TOTP off (step-up with a current code): its recovery codes die, every other
/// session of the caller ends.
#[utoipa::path(
    delete, path = "/auth/mfa/totp", tag = "mfa",
    request_body = StepUpBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 204, description = "Off"),
        Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn remove_totp(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<StatusCode, ApiError> {
    state.auth.remove_totp(&who, body.into_step_up()?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes (step-up): the old list dies.
#[utoipa::path(
    post, path = "/auth/mfa/recovery-codes", tag = "mfa",
    request_body = StepUpBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new codes", body = RecoveryCodesRead),
        Unauthorized, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn recovery_codes(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<Json<RecoveryCodesRead>, ApiError> {
    let codes = state
        .auth
        .regenerate_recovery_codes(&who, body.into_step_up()?, &client)
        .await?;
    Ok(Json(RecoveryCodesRead::of(&codes)))
}

/// The second step of a sign-in: the `mfa_token` of the 403 `mfa_required` answer and a
/// TOTP or recovery code; the login answer. A token lives 5 minutes, allows 5 codes,
/// works once, and only from the network it was issued to.
#[utoipa::path(
    post, path = "/auth/login/mfa", tag = "auth",
    request_body = MfaLoginBody,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 403, description = "Inactive user, or email not verified (`TOKENGATE_REQUIRE_VERIFIED_EMAIL`)",
            body = crate::http::openapi::ErrorBody),
        Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn login_mfa(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<MfaLoginBody>,
) -> Result<Json<TokenResponse>, ApiError> {
    let pair = state.auth.complete_mfa(&body.mfa_token, &body.code, &client).await?;
    Ok(Json(pair.into()))
}
