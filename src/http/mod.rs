//! The HTTP surface: the router, its layers, and the JSON answers for unknown routes.

pub mod body;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod json;
pub mod observe;
mod open_cors;
pub mod openapi;
pub mod qr;
pub mod request_id;
pub mod routes;
mod state;
pub mod user_agent;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::http::error::ApiError;
pub use body::BODY_LIMIT;
pub use state::AppState;

/// Connection-level limits: what a slow or idle client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this time, or the connection is closed.
    /// The same clock runs while a keep-alive connection waits for its next request, so
    /// it is the idle timeout too.
    pub header_timeout_secs: u64,
    /// A request whose body and answer take longer is answered 408 (a slow body).
    pub request_timeout_secs: u64,
    /// Open connections at most; when all are taken, the one idle the longest is closed
    /// for a new one (a new one waits while none is idle).
    pub max_connections: usize,
    /// Open connections from one client network (an IPv4 address, an IPv6 /64) at most;
    /// trusted proxies are exempt.
    pub max_connections_per_client: usize,
    /// A connection is closed (gracefully) after this many requests...
    pub max_requests_per_connection: u32,
    /// ...or this long after it opened.
    pub max_connection_age_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 4096,
            max_connections_per_client: 256,
            max_requests_per_connection: 1000,
            max_connection_age_secs: 300,
        }
    }
}

/// CORS for the configured origins only: credentials allowed, so never `*`.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(cookies::CSRF_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Only `/metrics`, for `TOKENGATE_METRICS_BIND`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(routes::metrics::scrape))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// The documented API and its OpenAPI document, as JSON. Under a path prefix the
/// document's paths stay as they are and its `servers` (and the OAuth2 flow's token
/// URL) carry the prefix, so Swagger UI calls the prefixed routes.
pub fn api(prefix: &str) -> (Router<AppState>, String) {
    let (router, mut doc) = routes::api().split_for_parts();
    let router = routes::with_tutorial_aliases(router, &mut doc);
    if !prefix.is_empty() {
        doc.servers = Some(vec![utoipa::openapi::Server::new(prefix)]);
        openapi::prefix_token_url(&mut doc, prefix);
    }
    let json = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be rendered");
        "{}".to_owned()
    });
    (router, json)
}

/// The routes. Only what needs the matched route runs per route (`observe::TrackLayer`:
/// the request's span and metrics); every other layer wraps the router once, in
/// [`app`]: a layer added with `Router::layer` wraps each route separately and costs
/// a boxed clone per request.
pub fn router(state: AppState) -> Router {
    let prefix = state.path_prefix.clone();
    let (api, document) = api(&prefix);
    let routes = api
        .route("/metrics", get(routes::metrics::scrape_with_token))
        .merge(routes::docs::router(document.into(), &prefix))
        .merge(routes::account::router())
        .merge(routes::oauth_pages::router());
    // Under a prefix, nothing answers outside it.
    let routes = if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    };
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(observe::TrackLayer)
        .with_state(state)
}

/// The whole application as one service (what the server and the tests serve): the
/// router inside the layers every request passes, outermost first.
pub fn app(
    state: AppState,
    request_timeout: Duration,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    let cors_origins = state.cors_origins.clone();
    // CORS answers preflights before anything else sees them; with no origins
    // configured it is left out (same-origin only).
    let cors = (!cors_origins.is_empty()).then(|| cors(&cors_origins));
    let stack = ServiceBuilder::new()
        // Every answer (a 408 or a panic's 500 too) carries the request id.
        .layer(request_id::AssignLayer)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response { ApiError::internal("handler panicked").into_response() },
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .option_layer(cors)
        // Token responses must not be cached by anything in between (RFC 6749 5.1).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(router(state));
    ServiceExt::<Request<Body>>::map_response(stack, IntoResponse::into_response)
}
