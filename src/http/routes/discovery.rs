//! `/.well-known/*`: the JWK Set and OpenID-style discovery, so other services can
//! verify tokengate's tokens without being able to mint them.

use crate::http::json::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::keys::publish_ahead_secs;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
}

/// RFC 7517 JWK Set: the public keys that verify access tokens (empty for HS256).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON that `crypto` builds
pub struct JwkSet {
    /// Public JWKs, each with `kid`, `kty`, `alg` and `use: "sig"`.
    keys: Vec<Value>,
}

/// OpenID-style discovery of the token endpoint and keys.
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    grant_types_supported: [&'static str; 2],
    response_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [String; 1],
    claims_supported: [&'static str; 10],
}

/// The public keys, for resource servers that verify tokens themselves.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "The JWK Set", body = JwkSet))
)]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // No longer than a new key is published before it signs (and so shorter than the
    // overlap a retired key keeps verifying): verifiers see every rotation in time.
    let max_age = publish_ahead_secs(state.auth.access_ttl_secs());
    let cache =
        HeaderValue::from_str(&format!("public, max-age={max_age}")).unwrap_or(HeaderValue::from_static("no-cache"));
    ([(header::CACHE_CONTROL, cache)], Json(state.auth.jwks()))
}

/// Discovery. URLs start with the configured public URL, never with a request's
/// `Host` header (which a client chooses).
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "Discovery document", body = OpenIdConfiguration))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<OpenIdConfiguration> {
    let base = format!("{}{}", state.public_url, state.path_prefix);
    Json(OpenIdConfiguration {
        issuer: state.auth.issuer().to_owned(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        token_endpoint: format!("{base}/auth/login"),
        grant_types_supported: ["password", "refresh_token"],
        response_types_supported: ["token"],
        token_endpoint_auth_methods_supported: ["none"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: [state.auth.signing_algorithm()],
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "type", "roles", "sid"],
    })
}
