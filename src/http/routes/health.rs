use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 503 unless the database answers. With Redis configured, `redis` says
/// `ok` or `degraded`: a degraded instance still serves every request correctly (rate
/// limits are then counted per instance), so it stays ready (200, `status: degraded`).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.auth.store().ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("database unavailable")
    })?;
    Ok(Json(match state.auth.limiter_health() {
        None => json!({ "status": "ok", "database": "ok" }),
        Some(redis) => json!({
            "status": if redis == "ok" { "ok" } else { "degraded" },
            "database": "ok",
            "redis": redis,
        }),
    }))
}
