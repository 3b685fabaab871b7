//! `GET /metrics`: Prometheus text exposition. Gauges that describe "now" (the hashing
//! queue, the database pools, the rate-limit keys) are sampled at scrape time, so they
//! are exact.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge};
use subtle::ConstantTimeEq as _;

use crate::auth::TokenProblem;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::metrics::{
    DB_CONNECTIONS, HASHES_IN_FLIGHT, HASHES_REFUSED, HASHES_WAITING, RATE_LIMIT_KEYS, REDIS_UP, SESSION_CACHE_TRUSTED,
    render,
};

/// The exposition format's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` on the main address: only for `Authorization: Bearer <TOKENGATE_METRICS_TOKEN>`
/// (failure and lockout rates are worth timing an attack against), 404 when no token is
/// configured, as if the route did not exist.
pub async fn scrape_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = state.metrics_token.clone() else {
        return ApiError::NotFound.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        None => return ApiError::NotAuthenticated.into_response(),
        Some(p) if !bool::from(p.as_bytes().ct_eq(token.expose())) => {
            return ApiError::InvalidToken(TokenProblem::Invalid).into_response();
        }
        Some(_) => {}
    }
    scrape(State(state)).await.into_response()
}

/// `/metrics` without a token: the private metrics address (`TOKENGATE_METRICS_BIND`).
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let load = state.auth.hash_load();
    gauge!(HASHES_IN_FLIGHT).set(load.in_flight as f64);
    gauge!(HASHES_WAITING).set(load.waiting as f64);
    counter!(HASHES_REFUSED).absolute(load.refused);
    for pool in state.auth.pool_stats() {
        let in_use = pool.size.saturating_sub(pool.idle);
        gauge!(DB_CONNECTIONS, "pool" => pool.pool, "state" => "in_use").set(f64::from(in_use));
        gauge!(DB_CONNECTIONS, "pool" => pool.pool, "state" => "idle").set(f64::from(pool.idle));
    }
    if let Some(trusted) = state.auth.session_cache_trusted() {
        gauge!(SESSION_CACHE_TRUSTED).set(if trusted { 1.0 } else { 0.0 });
    }
    if let Some(redis) = state.auth.limiter_health() {
        gauge!(REDIS_UP).set(if redis == "ok" { 1.0 } else { 0.0 });
    }
    for (kind, keys) in state.auth.limiter_keys() {
        gauge!(RATE_LIMIT_KEYS, "kind" => kind).set(keys as f64);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        render(),
    )
}
