//! `/auth/cookie/*`: the browser flow. Tokens travel only in cookies, never in a body;
//! refresh and logout carry the CSRF header like every unsafe cookie request.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::login_fields;
use crate::auth::TokenPair;
use crate::crypto::tokens::csrf_token;
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::body::FormOrJsonFields;
use crate::http::cookies::{self, check_csrf};
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

fn signed_in(state: &AppState, pair: TokenPair) -> Result<Response, ApiError> {
    let csrf = csrf_token().map_err(ApiError::internal)?;
    let cookies = state
        .cookies
        .signed_in(&pair.access_token, pair.refresh_token.expose(), &csrf);
    let body = CookieSession {
        csrf_token: csrf,
        token_type: "cookie",
        expires_in: pair.expires_in,
    };
    Ok(with_cookies(Json(body).into_response(), cookies))
}

/// `POST /auth/cookie/login`: the same bodies as `/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    FormOrJsonFields(body): FormOrJsonFields,
) -> Result<Response, ApiError> {
    let (username, password) = login_fields(&body)?;
    let pair = state.auth.login(username, password, &client).await?;
    signed_in(&state, pair)
}

/// `POST /auth/cookie/refresh`: rotate the refresh cookie. A refused refresh also
/// clears the cookies, so the page starts clean.
pub async fn refresh(State(state): State<AppState>, Client(client): Client, headers: HeaderMap) -> Response {
    if let Err(e) = check_csrf(&headers) {
        return e.into_response();
    }
    let Some(token) = cookies::read(&headers, cookies::REFRESH) else {
        return ApiError::NotAuthenticated.into_response();
    };
    match state.auth.refresh(&token, &client).await {
        Ok(pair) => signed_in(&state, pair).unwrap_or_else(IntoResponse::into_response),
        Err(e @ ApiError::InvalidRefreshToken) => with_cookies(e.into_response(), state.cookies.cleared()),
        Err(e) => e.into_response(),
    }
}

/// `POST /auth/cookie/logout`: end the browser's session (by its access cookie, or by
/// its refresh cookie once the access cookie has expired) and clear all three cookies.
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_csrf(&headers)?;
    let refresh = cookies::read(&headers, cookies::REFRESH);
    let access = cookies::read(&headers, cookies::ACCESS);
    let who = match &access {
        Some(token) => state.auth.authenticate(token).await.ok(),
        None => None,
    };
    match (who, refresh.as_deref()) {
        (Some(who), refresh) => state.auth.logout(&who, refresh, &client).await?,
        (None, Some(refresh)) => state.auth.logout_by_refresh(refresh, &client).await?,
        (None, None) => {}
    }
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        state.cookies.cleared(),
    ))
}
