//! `/auth/cookie/*`: the browser flow. Tokens travel only in cookies, never in a body;
//! refresh and logout carry the session's CSRF token like every unsafe cookie request.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{DEVICE_TOKEN_HEADER, login_fields};
use crate::auth::TokenPair;
use crate::domain::SessionId;
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::body::FormOrJsonFields;
use crate::http::cookies::{Kind, csrf_header, is_cross_site};
use crate::http::extract::Client;

/// The body of a cookie login or refresh: what the page needs, no token.
#[derive(Serialize)]
struct CookieSession {
    csrf_token: String,
    token_type: &'static str,
    expires_in: u64,
}

fn with_cookies(mut res: Response, values: Vec<HeaderValue>) -> Response {
    for v in values {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn signed_in(state: &AppState, pair: TokenPair) -> Response {
    let csrf = state.auth.csrf_token(pair.session_id);
    let mut cookies = state
        .cookies
        .signed_in(&pair.access_token, pair.refresh_token.expose(), &csrf);
    if let Some(device) = &pair.device_token {
        cookies.push(state.cookies.device(device));
    }
    let body = CookieSession {
        csrf_token: csrf,
        token_type: "cookie",
        expires_in: pair.expires_in,
    };
    with_cookies(Json(body).into_response(), cookies)
}

/// The CSRF header must carry `session`'s token.
fn check_csrf(state: &AppState, headers: &HeaderMap, session: SessionId) -> Result<(), ApiError> {
    match csrf_header(headers) {
        Some(presented) if state.auth.csrf_matches(session, presented) => Ok(()),
        _ => Err(ApiError::CsrfFailed),
    }
}

/// `POST /auth/cookie/login`: the same bodies as `/auth/login`. A login posted from
/// another site is refused: it would sign the victim's browser in as the attacker.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    FormOrJsonFields(body): FormOrJsonFields,
) -> Result<Response, ApiError> {
    if is_cross_site(&headers, &state.public_url, &state.cors_origins) {
        return Err(ApiError::Forbidden(
            "Cross-site login refused: sign in from this site or an allowed origin",
        ));
    }
    let fields = login_fields(&body)?;
    let device_cookie = state.cookies.read(&headers, Kind::Device)?;
    let device = fields
        .device_token
        .or(device_cookie.as_deref())
        .or_else(|| headers.get(DEVICE_TOKEN_HEADER).and_then(|v| v.to_str().ok()));
    let pair = state
        .auth
        .login(fields.username, fields.password, device, &client)
        .await?;
    Ok(signed_in(&state, pair))
}

/// `POST /auth/cookie/refresh`: rotate the refresh cookie. A refused refresh also
/// clears the cookies, so the page starts clean.
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = state
        .cookies
        .read(&headers, Kind::Refresh)?
        .ok_or(ApiError::NotAuthenticated)?;
    let Some(session) = state.auth.session_of_refresh(&token).await? else {
        return Ok(with_cookies(
            ApiError::InvalidRefreshToken.into_response(),
            state.cookies.cleared(),
        ));
    };
    check_csrf(&state, &headers, session)?;
    match state.auth.refresh(&token, &client).await {
        Ok(pair) => Ok(signed_in(&state, pair)),
        Err(e @ ApiError::InvalidRefreshToken) => Ok(with_cookies(e.into_response(), state.cookies.cleared())),
        Err(e) => Err(e),
    }
}

/// `POST /auth/cookie/logout`: end the browser's session (by its access cookie, or by
/// its refresh cookie once the access cookie has expired) and clear its cookies.
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let refresh = state.cookies.read(&headers, Kind::Refresh)?;
    let access = state.cookies.read(&headers, Kind::Access)?;
    let who = match &access {
        Some(token) => state.auth.authenticate(token).await.ok(),
        None => None,
    };
    match (who, refresh.as_deref()) {
        (Some(who), refresh) => {
            check_csrf(&state, &headers, who.session.id)?;
            state.auth.logout(&who, refresh, &client).await?;
        }
        (None, Some(refresh)) => {
            if let Some(session) = state.auth.session_of_refresh(refresh).await? {
                check_csrf(&state, &headers, session)?;
                state.auth.logout_by_refresh(refresh, &client).await?;
            }
        }
        (None, None) => {}
    }
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        state.cookies.cleared(),
    ))
}
