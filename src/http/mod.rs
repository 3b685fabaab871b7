//! The HTTP surface: the router, its layers, and the JSON answers for unknown routes.

pub mod body;
pub mod extract;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::AuthService;
use crate::error::ApiError;

/// Bodies larger than this are answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<AuthService>,
    pub trusted_proxies: Arc<[IpNet]>,
}

/// The whole application as a router (tests serve exactly this).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/auth/register", post(routes::auth::register))
        .route("/auth/login", post(routes::auth::login))
        .route("/auth/refresh", post(routes::auth::refresh))
        .route("/auth/logout", post(routes::auth::logout))
        .route("/auth/logout-all", post(routes::auth::logout_all))
        .route("/auth/password", post(routes::auth::change_password))
        .route("/auth/sessions", get(routes::sessions::list))
        .route(
            "/auth/sessions/{id}",
            axum::routing::delete(routes::sessions::revoke),
        )
        // Any method: proxies may send the subrequest with the original request's method.
        .route("/auth/verify", any(routes::forward_auth::verify))
        .route("/admin/users", get(routes::admin::list))
        .route(
            "/admin/users/{id}",
            axum::routing::patch(routes::admin::update).delete(routes::admin::delete),
        )
        .route("/me", get(routes::me::me))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Token responses must not be cached by anything in between (RFC 6749 5.1).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response {
                ApiError::internal("handler panicked").into_response()
            },
        ))
        .with_state(state)
}
