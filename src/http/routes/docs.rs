//! `GET /openapi.json` and `GET /docs`: the OpenAPI document and Swagger UI. The UI's
//! files are compiled into the binary (Swagger UI, Apache-2.0, through
//! `utoipa-swagger-ui`'s vendored copy), so the page works with no network; it is
//! served under a CSP as strict as `/account`'s, which it allows because none of its
//! scripts or styles are inline.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use crate::http::AppState;
use crate::http::error::ApiError;

/// Only this origin's scripts, styles and connections; Swagger UI draws its icons as
/// `data:` SVGs, and sets one inline style of its own (allowed by its hash alone; the
/// browser names the hash in the violation it reports without it).
const CSP: &str = "default-src 'none'; script-src 'self'; \
                   style-src 'self' 'unsafe-hashes' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
                   connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

/// The two routes, serving `document` (the OpenAPI JSON, rendered once); the page
/// fetches it under `prefix`.
pub fn router(document: Bytes, prefix: &str) -> Router<AppState> {
    let docs_index = format!("{prefix}{DOCS_PATH}/");
    let config = Arc::new(
        Config::new([format!("{prefix}{OPENAPI_PATH}")])
            // A login in the page lasts as long as the tab, never in localStorage.
            .persist_authorization(false)
            .try_it_out_enabled(true),
    );
    let index_config = config.clone();
    Router::new()
        .route(
            OPENAPI_PATH,
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    document.clone(),
                )
            }),
        )
        .route(DOCS_PATH, get(move || async move { Redirect::permanent(&docs_index) }))
        .route("/docs/", get(move || async move { file("index.html", &index_config) }))
        .route(
            "/docs/{*file}",
            get(move |Path(name): Path<String>| async move { file(&name, &config) }),
        )
}

fn file(name: &str, config: &Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(name, config.clone()) {
        Ok(Some(f)) => {
            let content_type =
                HeaderValue::from_str(&f.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let headers: [(HeaderName, HeaderValue); 5] = [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                // Its own URL goes to this origin only: a login from it is named for it.
                (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ];
            let body = match f.bytes {
                Cow::Borrowed(b) => Bytes::from_static(b),
                Cow::Owned(b) => Bytes::from(b),
            };
            // The page's files are stored gzipped in the binary and sent as they are:
            // every browser that can run Swagger UI accepts gzip.
            let encoding = f
                .gzpipped
                .then_some([(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))]);
            (headers, encoding, body).into_response()
        }
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}
