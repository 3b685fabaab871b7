//! `/auth/sessions`: the caller's devices.

use crate::http::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::SessionView;
use crate::domain::SessionId;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, Client, IdPath};
use crate::http::openapi::{NotFound, Unauthorized, Unavailable};
use crate::http::user_agent::device_label;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(revoke))
}

/// One live session (a device).
#[derive(Serialize, ToSchema)]
pub struct SessionRead {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: String,
    /// When its current refresh token expires (unless refreshed before).
    #[schema(format = DateTime)]
    expires_at: String,
    /// The name given at login (`device_name`), if any.
    device_name: Option<String>,
    /// A short name read from the User-Agent ("Chrome 156 on Linux", "curl 8.5").
    device: Option<String>,
    /// The User-Agent as sent.
    user_agent: Option<String>,
    /// The client's address, or its network (`TOKENGATE_SESSION_IP=prefix`); none with
    /// `TOKENGATE_SESSION_IP=none`.
    ip: Option<String>,
    /// The session of the token that asked.
    current: bool,
    /// When the sign-in that opened it proved the user.
    #[schema(format = DateTime)]
    auth_time: String,
    /// How it did (RFC 8176: `pwd`, `email`, `otp`, `mfa`, ...).
    amr: Vec<&'static str>,
}

impl From<SessionView> for SessionRead {
    fn from(v: SessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id.to_string(),
            created_at: s.created_at.to_rfc3339(),
            last_used_at: s.last_used_at.to_rfc3339(),
            expires_at: s.expires_at.to_rfc3339(),
            device_name: s.device_name,
            device: s.user_agent.as_deref().and_then(device_label),
            user_agent: s.user_agent,
            ip: s.ip,
            current: v.current,
            auth_time: s.auth.at.to_rfc3339(),
            amr: s.auth.amr(),
        }
    }
}

/// The caller's live sessions, its own marked `current`.
#[utoipa::path(
    get, path = "/auth/sessions", operation_id = "list_sessions", tag = "sessions",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "Live sessions", body = Vec<SessionRead>), Unauthorized, Unavailable)
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<SessionRead>>, ApiError> {
    let views = state.auth.sessions(&who).await?;
    Ok(Json(views.into_iter().map(SessionRead::from).collect()))
}

/// Revoke one of the caller's sessions: its tokens stop working at once. Unknown ids
/// and other users' sessions are both 404.
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", operation_id = "revoke_session", tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "A session id from the list")),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 204, description = "Revoked"), Unauthorized, NotFound, Unavailable)
)]
pub async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    IdPath(id): IdPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_session(&who, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
