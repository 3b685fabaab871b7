//! What every handler can reach.

use std::sync::Arc;

use axum::http::HeaderValue;
use ipnet::IpNet;

use super::cookies::CookiePolicy;
use crate::auth::AuthService;
use crate::domain::Secret;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<AuthService>,
    /// The external base URL (`TOKENGATE_PUBLIC_URL`, else `http://` + the bind
    /// address): every absolute URL we emit starts with it; never a request header.
    pub public_url: Arc<str>,
    /// Where the routes are mounted (`TOKENGATE_PATH_PREFIX`): `""` or `/api/v1`.
    pub path_prefix: Arc<str>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub cookies: CookiePolicy,
    /// Exact origins allowed by CORS (with credentials); empty: same-origin only.
    pub cors_origins: Arc<[HeaderValue]>,
    /// The bearer token `/metrics` answers to on this router; `None`: 404 here (a
    /// separate address may serve it, `TOKENGATE_METRICS_BIND`).
    pub metrics_token: Option<Arc<Secret>>,
}
