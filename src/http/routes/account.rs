//! `/account`: a small built-in page that uses the cookie flow (sign in, sessions,
//! password, email, sign out), and the pages mailed links open (`/account/verify`,
//! `/account/reset`, `/account/magic`: they read the token from the fragment and spend
//! it only when the user submits). Plain HTML + JS embedded in the binary; no inline
//! script or style, so its Content-Security-Policy needs no `unsafe-inline`; no page
//! sends a Referer anywhere.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;

/// The page and its files (HTML, not part of the JSON API's document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(index))
        .route("/account/verify", get(link_page))
        .route("/account/reset", get(link_page))
        .route("/account/magic", get(link_page))
        .route("/account/common.js", get(common_script))
        .route("/account/app.js", get(script))
        .route("/account/passkeys.js", get(passkeys_script))
        .route("/account/link.js", get(link_script))
        .route("/account/app.css", get(style))
}

const INDEX: &str = include_str!("../account/index.html");
const LINK_PAGE: &str = include_str!("../account/link.html");
const COMMON_SCRIPT: &str = include_str!("../account/common.js");
const SCRIPT: &str = include_str!("../account/app.js");
const PASSKEYS_SCRIPT: &str = include_str!("../account/passkeys.js");
const LINK_SCRIPT: &str = include_str!("../account/link.js");
const STYLE: &str = include_str!("../account/app.css");

/// Everything the page loads comes from this origin; it may not be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body)
}

/// `GET /account`
pub async fn index() -> impl IntoResponse {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /account/verify`, `/account/reset`, `/account/magic`: one page, its form
/// chosen by the path.
pub async fn link_page() -> impl IntoResponse {
    page("text/html; charset=utf-8", LINK_PAGE)
}

/// `GET /account/common.js`
pub async fn common_script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", COMMON_SCRIPT)
}

/// `GET /account/link.js`
pub async fn link_script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", LINK_SCRIPT)
}

/// `GET /account/app.js`
pub async fn script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /account/passkeys.js`
pub async fn passkeys_script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", PASSKEYS_SCRIPT)
}

/// `GET /account/app.css`
pub async fn style() -> impl IntoResponse {
    page("text/css; charset=utf-8", STYLE)
}
