//! `/auth/sessions`: the caller's devices.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::auth::SessionView;
use crate::domain::SessionId;
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::extract::{Authenticated, Client, IdPath};

#[derive(Serialize)]
pub struct SessionRead {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

impl From<SessionView> for SessionRead {
    fn from(v: SessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id.to_string(),
            created_at: s.created_at.to_rfc3339(),
            last_used_at: s.last_used_at.to_rfc3339(),
            expires_at: s.expires_at.to_rfc3339(),
            user_agent: s.user_agent,
            ip: s.ip,
            current: v.current,
        }
    }
}

/// `GET /auth/sessions`: live sessions, the caller's own marked `current`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<SessionRead>>, ApiError> {
    let views = state.auth.sessions(&who).await?;
    Ok(Json(views.into_iter().map(SessionRead::from).collect()))
}

/// `DELETE /auth/sessions/{id}`: 204, or 404 for unknown and for other users' sessions.
pub async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    IdPath(id): IdPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_session(&who, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
