//! `GET /auth/verify`: forward-auth for reverse proxies (nginx `auth_request`,
//! Traefik ForwardAuth, Caddy `forward_auth`).

use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::http::extract::Authenticated;

/// 200 with the caller's identity in headers and an empty body; 401 without valid
/// credentials; 403 when `?role=R` is asked and the caller lacks it.
pub async fn verify(
    Authenticated(who): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    if let Some((_, role)) = pairs.iter().find(|(k, _)| k == "role") {
        if !who.has_role(role) {
            return Err(ApiError::InsufficientRole);
        }
    }
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        // Usernames, roles and ids are ASCII by construction; never fail on one.
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-auth-user-id", who.user.id.to_string());
    put("x-auth-username", who.user.username.as_str().to_owned());
    put("x-auth-roles", who.effective_roles().join(","));
    put("x-auth-session-id", who.session.id.to_string());
    Ok((StatusCode::OK, headers))
}
