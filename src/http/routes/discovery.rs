//! `/.well-known/*`: the JWK Set and OpenID-style discovery, so other services can
//! verify tokengate's tokens without being able to mint them.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::auth::keys::publish_ahead_secs;
use crate::http::AppState;

/// `GET /.well-known/jwks.json`: public keys only; empty for HS256.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // No longer than a new key is published before it signs (and so shorter than the
    // overlap a retired key keeps verifying): verifiers see every rotation in time.
    let max_age = publish_ahead_secs(state.auth.access_ttl_secs());
    let cache =
        HeaderValue::from_str(&format!("public, max-age={max_age}")).unwrap_or(HeaderValue::from_static("no-cache"));
    ([(header::CACHE_CONTROL, cache)], Json(state.auth.jwks()))
}

/// `GET /.well-known/openid-configuration`. URLs start with the configured public
/// URL, never with a request's `Host` header (which a client chooses).
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.auth.issuer().to_owned();
    let base = &state.public_url;
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/auth/login"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [state.auth.signing_algorithm()],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "type", "roles", "sid"],
    }))
}
