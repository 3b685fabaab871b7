//! `/healthz` and `/readyz`: liveness and readiness for orchestrators.

use crate::http::json::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::Unavailable;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`, or `degraded` while Redis is unreachable (still serving correctly).
    #[schema(example = "ok")]
    status: &'static str,
    #[schema(example = "ok")]
    database: &'static str,
    /// Only with Redis configured: `ok` or `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready for traffic: 503 unless the database answers. With Redis configured, `redis`
/// says `ok` or `degraded`: a degraded instance still serves every request correctly
/// (rate limits are then counted per instance), so it stays ready (200, `status:
/// degraded`).
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready (or degraded but serving)", body = Readiness), Unavailable)
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    state.auth.database_ready().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("database unavailable")
    })?;
    let redis = state.auth.limiter_health();
    Ok(Json(Readiness {
        status: if redis.is_none_or(|r| r == "ok") {
            "ok"
        } else {
            "degraded"
        },
        database: "ok",
        redis,
    }))
}
