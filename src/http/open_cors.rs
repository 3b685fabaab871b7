//! CORS for what any application's page may call with no cookie: the provider's token
//! endpoint, userinfo and revocation, the JWKS and discovery.

use axum::http::{Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::state::AppState;

/// CORS for what any application's page may call with no cookie (the provider's token
/// endpoint, userinfo, revocation, the JWKS and discovery): any origin, never
/// credentials, so no cookie of ours ever rides along (RFC 9700 §2.6: never on the
/// authorization endpoint).
pub(crate) fn open_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// `OPTIONS` on a route under [`open_cors`]: routed into the layer, which answers the
/// preflight itself (a method the route lacks would be a 405 outside it).
pub(crate) fn preflight() -> axum::routing::MethodRouter<AppState> {
    axum::routing::options(|| async { axum::http::StatusCode::NO_CONTENT })
}
