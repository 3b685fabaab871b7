//! `/auth/cookie/*`: the browser flow. Tokens travel only in cookies, never in a body;
//! refresh and logout carry the session's CSRF token like every unsafe cookie request.

use crate::http::json::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{PasswordGrant, device_header};
use super::mfa::MfaLoginBody;
use super::passkeys::{LoginFinishBody, LoginStartBody};
use super::recovery::MagicLoginBody;
use crate::auth::{AuthError, TokenPair};
use crate::domain::SessionId;
use crate::http::AppState;
use crate::http::body::{FormOrJsonBody, JsonBody};
use crate::http::cookies::{Kind, csrf_header, is_cross_site};
use crate::http::error::ApiError;
use crate::http::extract::Client;
use crate::http::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, Unprocessable,
    UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(magic_link_login))
        .routes(routes!(login_mfa))
        .routes(routes!(passkey_login_start))
        .routes(routes!(passkey_login_finish))
}

/// The body of a cookie login or refresh: what the page needs, no token (the tokens
/// are in HttpOnly cookies).
#[derive(Serialize, ToSchema)]
pub struct CookieSession {
    /// Send it as `X-CSRF-Token` on every unsafe cookie-authenticated request.
    csrf_token: String,
    #[schema(example = "cookie")]
    token_type: &'static str,
    /// Seconds until the access cookie's token expires.
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

/// Log a browser in: the same bodies as `/auth/login`; the tokens are set as HttpOnly
/// cookies. A login posted from another site is refused: it would sign the victim's
/// browser in as the attacker.
#[utoipa::path(
    post, path = "/auth/cookie/login", operation_id = "cookie_login", tag = "cookie",
    request_body(content(
        (PasswordGrant = "application/x-www-form-urlencoded"),
        (PasswordGrant = "application/json"),
    )),
    responses(
        (status = 200, description = "Logged in; cookies set", body = CookieSession),
        Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    FormOrJsonBody(body): FormOrJsonBody<PasswordGrant>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&state, &headers)?;
    let device_cookie = state.cookies.read(&headers, Kind::Device)?;
    let device = body
        .device_token
        .as_deref()
        .or(device_cookie.as_deref())
        .or_else(|| device_header(&headers));
    let pair = state
        .auth
        .login(&body.username, &body.password, device, body.device_name, &client)
        .await?;
    Ok(signed_in(&state, pair))
}

/// A sign-in posted from another site would sign the victim's browser in as the
/// attacker (login CSRF).
fn refuse_cross_site(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_cross_site(headers, &state.public_url, &state.cors_origins) {
        return Err(ApiError::Forbidden(
            "Cross-site login refused: sign in from this site or an allowed origin",
        ));
    }
    Ok(())
}

/// Sign a browser in with a sign-in link's token (with `TOKENGATE_MAGIC_LINKS=on`):
/// the cookies of `/auth/cookie/login`. The page `/account/magic` posts it.
#[utoipa::path(
    post, path = "/auth/cookie/magic-link/login", operation_id = "cookie_magic_link_login", tag = "cookie",
    request_body = MagicLoginBody,
    responses(
        (status = 200, description = "Logged in; cookies set", body = CookieSession),
        (status = 400, description = "Invalid or expired token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "Sign-in links are off here", body = crate::http::openapi::ErrorBody),
        Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn magic_link_login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MagicLoginBody>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&state, &headers)?;
    let pair = state
        .auth
        .magic_link_login(&body.token, body.device_name, &client)
        .await?;
    Ok(signed_in(&state, pair))
}

/// The second step of a browser's sign-in (`/auth/login/mfa`'s body): the cookies of
/// `/auth/cookie/login`.
#[utoipa::path(
    post, path = "/auth/cookie/login/mfa", operation_id = "cookie_login_mfa", tag = "cookie",
    request_body = MfaLoginBody,
    responses(
        (status = 200, description = "Logged in; cookies set", body = CookieSession),
        Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn login_mfa(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MfaLoginBody>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&state, &headers)?;
    let pair = state.auth.complete_mfa(&body.mfa_token, &body.code, &client).await?;
    Ok(signed_in(&state, pair))
}

/// `/auth/passkeys/login/start` for the browser flow (the same options; nothing is set).
#[utoipa::path(
    post, path = "/auth/cookie/passkeys/login/start", operation_id = "cookie_passkey_login_start", tag = "cookie",
    request_body = LoginStartBody,
    responses(
        (status = 200, description = "The ceremony begun", body = super::passkeys::CeremonyRead),
        Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    )
)]
pub async fn passkey_login_start(
    state: State<AppState>,
    client: Client,
    body: JsonBody<LoginStartBody>,
) -> Result<Json<super::passkeys::CeremonyRead>, ApiError> {
    super::passkeys::login_start(state, client, body).await
}

/// A browser's passkey sign-in (`/auth/passkeys/login/finish`'s body): the cookies of
/// `/auth/cookie/login`.
#[utoipa::path(
    post, path = "/auth/cookie/passkeys/login/finish", operation_id = "cookie_passkey_login_finish", tag = "cookie",
    request_body = LoginFinishBody,
    responses(
        (status = 200, description = "Logged in; cookies set", body = CookieSession),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
        TooManyRequests, Unavailable,
    )
)]
pub async fn passkey_login_finish(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginFinishBody>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&state, &headers)?;
    let pair = state
        .auth
        .finish_passkey_sign_in(&body.ceremony_id, body.credential, &client)
        .await?;
    Ok(signed_in(&state, pair))
}

/// Rotate the refresh cookie (needs `X-CSRF-Token`). A refused refresh also clears
/// the cookies, so the page starts clean.
#[utoipa::path(
    post, path = "/auth/cookie/refresh", operation_id = "cookie_refresh", tag = "cookie",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, description = "Rotated; cookies set", body = CookieSession),
        Unauthorized, Forbidden, TooManyRequests, Unavailable,
    )
)]
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
        Err(AuthError::InvalidRefreshToken) => Ok(with_cookies(
            ApiError::InvalidRefreshToken.into_response(),
            state.cookies.cleared(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// End the browser's session (by its access cookie, or by its refresh cookie once the
/// access cookie has expired) and clear its cookies (needs `X-CSRF-Token` when it
/// carries a session's cookie; without one there is nothing to end, and it only clears).
#[utoipa::path(
    post, path = "/auth/cookie/logout", operation_id = "cookie_logout", tag = "cookie",
    params(("X-CSRF-Token" = Option<String>, Header,
            description = "The session's CSRF token; required when the request carries a session cookie")),
    responses((status = 204, description = "Logged out; cookies cleared"), Forbidden, Unavailable)
)]
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
            check_csrf(&state, &headers, who.session_id())?;
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
