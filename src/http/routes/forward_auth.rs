//! `GET /auth/verify`: forward-auth for reverse proxies (nginx `auth_request`,
//! Traefik ForwardAuth, Caddy `forward_auth`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use axum::routing::any;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;
use crate::http::cookies::is_unsafe;
use crate::http::error::ApiError;
use crate::http::extract::authenticate;
use crate::http::openapi::{Forbidden, Unauthorized, Unavailable};

/// Any method is routed (a proxy may send the subrequest with the original request's
/// method); the document lists GET, what nginx's `auth_request` sends (one operation
/// id per operation keeps generated clients valid).
pub fn router() -> OpenApiRouter<AppState> {
    #[derive(OpenApi)]
    #[openapi(paths(verify))]
    struct Doc;
    OpenApiRouter::with_openapi(Doc::openapi()).route("/auth/verify", any(verify))
}

/// Headers in which proxies pass the method of the request they are checking: nginx's
/// `auth_request` always sends GET (our snippets add `X-Original-Method`), Traefik
/// sends `X-Forwarded-Method`.
const ORIGINAL_METHOD: [&str; 2] = ["x-forwarded-method", "x-original-method"];

/// Is the request being authorised a state-changing one? The stricter of the method
/// we see and any method a proxy names wins: a spoofed header can only demand a CSRF
/// token, never waive one, so it needs no proxy trust.
fn original_is_unsafe(method: &Method, headers: &HeaderMap) -> bool {
    is_unsafe(method)
        || ORIGINAL_METHOD.iter().any(|name| {
            headers
                .get_all(*name)
                .iter()
                .any(|v| match Method::from_bytes(v.as_bytes()) {
                    Ok(m) => is_unsafe(&m),
                    // Unreadable: assume the worst.
                    Err(_) => true,
                })
        })
}

/// Forward-auth (any method is accepted): 200 with the caller's identity in `X-Auth-*` headers and an empty
/// body; 401 without valid credentials; 403 when `?role=R` is asked and the caller
/// lacks it, or when a cookie-authenticated state-changing request lacks its CSRF token.
#[utoipa::path(
    get, path = "/auth/verify", tag = "operations",
    params(
        ("role" = Option<String>, Query, description = "A role the caller must hold"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The method of the request being authorised (Traefik)"),
        ("X-Original-Method" = Option<String>, Header, description = "The same, as the nginx snippets send it"),
    ),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "Allowed", headers(
            ("X-Auth-User-Id" = String), ("X-Auth-Username" = String),
            ("X-Auth-Roles" = String, description = "Comma-separated effective roles"),
            ("X-Auth-Session-Id" = String),
        )),
        Unauthorized, Forbidden, Unavailable,
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    method: Method,
    request_headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let unsafe_method = original_is_unsafe(&method, &request_headers);
    let who = authenticate(&request_headers, &state, unsafe_method).await?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    if let Some((_, role)) = pairs.iter().find(|(k, _)| k == "role") {
        state.auth.require_role(&who, role)?;
    }
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        // Usernames, roles and ids are ASCII by construction; never fail on one.
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-auth-user-id", who.user_id().to_string());
    put("x-auth-username", who.username().as_str().to_owned());
    put("x-auth-roles", who.effective_roles().join(","));
    put("x-auth-session-id", who.session_id().to_string());
    Ok((StatusCode::OK, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_method_wins() {
        let mut h = HeaderMap::new();
        assert!(!original_is_unsafe(&Method::GET, &h));
        assert!(original_is_unsafe(&Method::POST, &h));
        h.insert("x-forwarded-method", HeaderValue::from_static("GET"));
        assert!(original_is_unsafe(&Method::POST, &h), "a header never waives the check");
        h.insert("x-original-method", HeaderValue::from_static("DELETE"));
        assert!(original_is_unsafe(&Method::GET, &h));
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-method", HeaderValue::from_static("P O S T"));
        assert!(original_is_unsafe(&Method::GET, &bad));
    }
}
