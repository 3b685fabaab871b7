//! `GET /metrics`: Prometheus text exposition. Gauges that describe "now" (the hashing
//! queue, the database pools, the rate-limit keys) are sampled at scrape time, so they
//! are exact.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use metrics::{counter, gauge};

use crate::http::AppState;
use crate::metrics::{DB_CONNECTIONS, HASHES_IN_FLIGHT, HASHES_REFUSED, HASHES_WAITING, RATE_LIMIT_KEYS, render};

/// The exposition format's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let load = state.auth.hash_load();
    gauge!(HASHES_IN_FLIGHT).set(load.in_flight as f64);
    gauge!(HASHES_WAITING).set(load.waiting as f64);
    counter!(HASHES_REFUSED).absolute(load.refused);
    for pool in state.auth.store().pool_stats() {
        let in_use = pool.size.saturating_sub(pool.idle);
        gauge!(DB_CONNECTIONS, "pool" => pool.pool, "state" => "in_use").set(f64::from(in_use));
        gauge!(DB_CONNECTIONS, "pool" => pool.pool, "state" => "idle").set(f64::from(pool.idle));
    }
    for (kind, keys) in state.auth.limiter_keys() {
        gauge!(RATE_LIMIT_KEYS, "kind" => kind).set(keys as f64);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        render(),
    )
}
