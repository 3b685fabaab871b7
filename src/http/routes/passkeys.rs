//! `/auth/passkeys/*`: registering, listing, renaming and removing the caller's
//! passkeys, signing in with one, and step-up with one. Each ceremony is begun by a
//! `.../start` (its `publicKey` goes to `navigator.credentials.create()` or `.get()`)
//! and finished by a `.../finish` with what the browser returned (`toJSON()`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::TokenResponse;
use super::step_up::StepUpBody;
use crate::auth::{CeremonyStart, PasskeyView};
use crate::domain::{PasskeyId, PasskeyName};
use crate::http::AppState;
use crate::http::body::{Checker, FromFields, JsonBody};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, Client, IdPath};
use crate::http::json::Json;
use crate::http::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, Unprocessable,
    UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(rename, remove))
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(step_up_start))
}

/// A ceremony begun.
#[derive(Serialize, ToSchema)]
pub struct CeremonyRead {
    /// Send it back with the browser's answer (within 5 minutes, once).
    ceremony_id: String,
    /// For `navigator.credentials.create({publicKey})` or `.get({publicKey})` (its
    /// binary members base64url, as `PublicKeyCredential.parse*OptionsFromJSON()` reads).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: Value,
}

impl From<CeremonyStart> for CeremonyRead {
    fn from(c: CeremonyStart) -> Self {
        Self {
            ceremony_id: c.ceremony_id,
            public_key: c.public_key,
        }
    }
}

/// One of the caller's passkeys.
#[derive(Serialize, ToSchema)]
pub struct PasskeyRead {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

impl From<PasskeyView> for PasskeyRead {
    fn from(p: PasskeyView) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.as_str().to_owned(),
            created_at: p.created_at.to_rfc3339(),
            last_used_at: p.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A passkey registered; when it turned MFA on, the recovery codes made with it (shown
/// this once: a lost passkey is no lockout).
#[derive(Serialize, ToSchema)]
pub struct PasskeyRegisteredRead {
    #[serde(flatten)]
    passkey: PasskeyRead,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = json!(["abcd-efgh-ijkl-mnop"]))]
    recovery_codes: Option<Vec<String>>,
}

/// `POST /auth/passkeys/register/finish`.
#[derive(ToSchema)]
pub struct RegisterFinishBody {
    ceremony_id: String,
    /// What `navigator.credentials.create()` returned, as its `toJSON()` gives it.
    #[schema(value_type = Object)]
    credential: Value,
    /// A name for it ("YubiKey 5C", "iPhone"): 1-64 characters.
    #[schema(value_type = String, min_length = 1, max_length = 64,
             pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u115F-\\u1160\\u180B-\\u180F\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF9-\\uFFFB]*$", example = "YubiKey 5C")]
    name: PasskeyName,
}

impl FromFields for RegisterFinishBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let ceremony_id = c.owned("ceremony_id");
        let credential = c.object("credential");
        let name = c.parsed("name", PasskeyName::parse);
        Some(Self {
            ceremony_id: ceremony_id?,
            credential: credential?,
            name: name?,
        })
    }
}

/// `PATCH /auth/passkeys/{id}`.
#[derive(ToSchema)]
pub struct RenameBody {
    #[schema(value_type = String, min_length = 1, max_length = 64,
             pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u115F-\\u1160\\u180B-\\u180F\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF9-\\uFFFB]*$", example = "Work laptop")]
    name: PasskeyName,
}

impl FromFields for RenameBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        Some(Self {
            name: c.parsed("name", PasskeyName::parse)?,
        })
    }
}

/// `POST /auth/passkeys/login/start`.
#[derive(ToSchema)]
pub struct LoginStartBody {
    /// Sign in as this user (their passkeys are offered); none: the browser offers the
    /// passkeys it has for this site (discoverable credentials).
    username: Option<String>,
    /// The `mfa_token` of a 403 `mfa_required` answer: the passkey is that sign-in's
    /// second step.
    mfa_token: Option<String>,
}

impl FromFields for LoginStartBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let username = c.optional_string("username").map(str::to_owned);
        let mfa_token = c.optional_string("mfa_token").map(str::to_owned);
        Some(Self { username, mfa_token })
    }
}

/// `POST /auth/passkeys/login/finish`.
#[derive(ToSchema)]
pub struct LoginFinishBody {
    pub(super) ceremony_id: String,
    /// What `navigator.credentials.get()` returned, as its `toJSON()` gives it.
    #[schema(value_type = Object)]
    pub(super) credential: Value,
}

impl FromFields for LoginFinishBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let ceremony_id = c.owned("ceremony_id");
        let credential = c.object("credential");
        Some(Self {
            ceremony_id: ceremony_id?,
            credential: credential?,
        })
    }
}

/// The caller's passkeys, oldest first.
#[utoipa::path(
    get, path = "/auth/passkeys", tag = "passkeys",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The caller's passkeys", body = Vec<PasskeyRead>), Unauthorized, Unavailable)
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<PasskeyRead>>, ApiError> {
    let passkeys = state.auth.passkeys(&who).await?;
    Ok(Json(passkeys.into_iter().map(PasskeyRead::from).collect()))
}

/// Begin registering a passkey (step-up; the account's address must be verified): the
/// options for `navigator.credentials.create()`.
#[utoipa::path(
    post, path = "/auth/passkeys/register/start", tag = "passkeys",
    request_body = StepUpBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The ceremony begun", body = CeremonyRead),
        (status = 403, description = "Email not verified: a factor needs a proven address", body = crate::http::openapi::ErrorBody),
        Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn register_start(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<Json<CeremonyRead>, ApiError> {
    let start = state
        .auth
        .begin_passkey_registration(&who, body.into_step_up()?, &client)
        .await?;
    Ok(Json(start.into()))
}

/// Finish registering a passkey with what the browser returned: MFA is on (with
/// recovery codes, shown this once, if it was off), every other session of the caller
/// ends, a notice is mailed.
#[utoipa::path(
    post, path = "/auth/passkeys/register/finish", tag = "passkeys",
    request_body = RegisterFinishBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 201, description = "Registered", body = PasskeyRegisteredRead),
        BadRequest, Unauthorized, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn register_finish(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonBody(body): JsonBody<RegisterFinishBody>,
) -> Result<(StatusCode, Json<PasskeyRegisteredRead>), ApiError> {
    let done = state
        .auth
        .finish_passkey_registration(&who, &body.ceremony_id, body.credential, body.name, &client)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyRegisteredRead {
            passkey: done.passkey.into(),
            recovery_codes: done.recovery_codes.map(|codes| {
                codes
                    .iter()
                    .map(crate::crypto::recovery_codes::RecoveryCode::display)
                    .collect()
            }),
        }),
    ))
}

/// Rename one of the caller's passkeys.
#[utoipa::path(
    patch, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, format = Uuid, description = "A passkey id from the list")),
    request_body = RenameBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "Renamed", body = PasskeyRead),
        Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn rename(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    IdPath(id): IdPath<PasskeyId>,
    JsonBody(body): JsonBody<RenameBody>,
) -> Result<Json<PasskeyRead>, ApiError> {
    let renamed = state.auth.rename_passkey(&who, id, body.name).await?;
    Ok(Json(renamed.into()))
}

/// Remove one of the caller's passkeys (step-up): every other session of the caller
/// ends, a notice is mailed; the last one with no TOTP turns MFA off, unless a role of
/// the caller's requires MFA (409).
#[utoipa::path(
    delete, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, format = Uuid, description = "A passkey id from the list")),
    request_body = StepUpBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 204, description = "Removed"),
        Unauthorized, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    IdPath(id): IdPath<PasskeyId>,
    JsonBody(body): JsonBody<StepUpBody>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .remove_passkey(&who, id, body.into_step_up()?, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Begin a passkey sign-in: with no `username`, for the passkeys the browser has for
/// this site; with one, for that user's; with an `mfa_token`, as that sign-in's second
/// step. An unknown username gets options of the same shape as a real one's.
#[utoipa::path(
    post, path = "/auth/passkeys/login/start", tag = "passkeys",
    request_body = LoginStartBody,
    responses(
        (status = 200, description = "The ceremony begun", body = CeremonyRead),
        Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn login_start(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginStartBody>,
) -> Result<Json<CeremonyRead>, ApiError> {
    let start = state
        .auth
        .begin_passkey_sign_in(body.username.as_deref(), body.mfa_token.as_deref(), &client)
        .await?;
    Ok(Json(start.into()))
}

/// Finish a passkey sign-in: the login answer (`amr` `["hwk"|"swk", "user"]`; after a
/// password, that sign-in's with the passkey added).
#[utoipa::path(
    post, path = "/auth/passkeys/login/finish", tag = "passkeys",
    request_body = LoginFinishBody,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 403, description = "Inactive user, or email not verified (`TOKENGATE_REQUIRE_VERIFIED_EMAIL`)",
            body = crate::http::openapi::ErrorBody),
        BadRequest, Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn login_finish(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<LoginFinishBody>,
) -> Result<Json<TokenResponse>, ApiError> {
    let pair = state
        .auth
        .finish_passkey_sign_in(&body.ceremony_id, body.credential, &client)
        .await?;
    Ok(Json(pair.into()))
}

/// Begin a step-up with a passkey: its answer goes in the `passkey` field of a request
/// that asks for step-up, in place of a code.
#[utoipa::path(
    post, path = "/auth/passkeys/step-up/start", tag = "passkeys",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The ceremony begun", body = CeremonyRead),
        Unauthorized, NotFound, TooManyRequests, Unavailable,
    )
)]
pub async fn step_up_start(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
) -> Result<Json<CeremonyRead>, ApiError> {
    let start = state.auth.begin_passkey_step_up(&who, &client).await?;
    Ok(Json(start.into()))
}
