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
        .route("/.well-known/jwks.json", crate::http::open_cors::preflight())
        .route("/.well-known/openid-configuration", crate::http::open_cors::preflight())
        .layer(crate::http::open_cors::open_cors())
}

/// RFC 7517 JWK Set: the public keys that verify access tokens (empty for HS256).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON that `crypto` builds
pub struct JwkSet {
    /// Public JWKs, each with `kid`, `kty`, `alg` and `use: "sig"`.
    keys: Vec<Value>,
}

/// OpenID Connect Discovery 1.0 (and RFC 8414): the provider's endpoints and what
/// they support.
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// The public URL (with any path prefix): `iss` of id_tokens and of authorization
    /// responses. Access tokens carry `access_token_issuer`.
    issuer: String,
    /// The `iss` of access tokens (`TOKENGATE_ISSUER`), for resource servers.
    access_token_issuer: String,
    jwks_uri: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    /// RP-initiated logout.
    end_session_endpoint: String,
    grant_types_supported: [&'static str; 4],
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    code_challenge_methods_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    subject_types_supported: [&'static str; 1],
    /// id_tokens are RS256; access tokens use `access_token_signing_alg`.
    id_token_signing_alg_values_supported: [&'static str; 1],
    access_token_signing_alg: String,
    scopes_supported: [&'static str; 5],
    claims_supported: [&'static str; 16],
    prompt_values_supported: [&'static str; 3],
    authorization_response_iss_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    claims_parameter_supported: bool,
}

/// The public keys, for resource servers that verify tokens themselves.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "The JWK Set", body = JwkSet))
)]
pub async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, crate::http::error::ApiError> {
    // No longer than a new key is published before it signs (and so shorter than the
    // overlap a retired key keeps verifying): verifiers see every rotation in time.
    let max_age = publish_ahead_secs(state.auth.access_ttl_secs());
    let cache =
        HeaderValue::from_str(&format!("public, max-age={max_age}")).unwrap_or(HeaderValue::from_static("no-cache"));
    let jwks = state.auth.jwks().await?;
    Ok(([(header::CACHE_CONTROL, cache)], Json(jwks)))
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
        issuer: base.clone(),
        access_token_issuer: state.auth.issuer().to_owned(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        authorization_endpoint: format!("{base}/oauth/authorize"),
        token_endpoint: format!("{base}/oauth/token"),
        userinfo_endpoint: format!("{base}/oauth/userinfo"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        end_session_endpoint: format!("{base}/oauth/logout"),
        grant_types_supported: ["authorization_code", "refresh_token", "client_credentials", "password"],
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "none"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
        access_token_signing_alg: state.auth.signing_algorithm(),
        scopes_supported: ["openid", "profile", "email", "roles", "offline_access"],
        claims_supported: [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "auth_time",
            "nonce",
            "amr",
            "sid",
            "azp",
            "preferred_username",
            "email",
            "email_verified",
            "roles",
        ],
        prompt_values_supported: ["none", "login", "consent"],
        authorization_response_iss_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        claims_parameter_supported: false,
    })
}
