//! `/auth/*`: register, login, refresh, logout, logout-all, password.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::UserRead;
use crate::auth::TokenPair;
use crate::domain::{Email, Password, Username};
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::body::{Checker, Fields, FormOrJsonFields, JsonFields, OptionalJsonFields};
use crate::http::extract::{Authenticated, Client};

#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    /// After a login: send it back (`X-Device-Token` header or `device_token` field) on
    /// later logins, so a flood of guesses at this username does not lock this client out.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token.expose().to_owned(),
            token_type: "bearer",
            expires_in: p.expires_in,
            device_token: p.device_token,
        }
    }
}

/// The header in which API clients send their device token back.
pub const DEVICE_TOKEN_HEADER: &str = "x-device-token";

/// A login's credentials, from a form or JSON body.
pub struct LoginFields<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The device token, if the body carries one (`device_token`).
    pub device_token: Option<&'a str>,
}

/// `POST /auth/register`: JSON `{username, email, password}`.
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    JsonFields(body): JsonFields,
) -> Result<(StatusCode, Json<UserRead>), ApiError> {
    let mut c = Checker::new(&body);
    let username = c.parsed("username", Username::parse);
    let email = c.parsed("email", Email::parse);
    let password = c.parsed("password", Password::parse);
    c.finish()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    let user = state.auth.register(username, email, password, &client).await?;
    Ok((StatusCode::CREATED, Json(UserRead::from(&user))))
}

/// `username` and `password` of a login body (form or JSON), with `grant_type`
/// checked as OAuth2's password grant.
pub fn login_fields(body: &Fields) -> Result<LoginFields<'_>, ApiError> {
    let mut c = Checker::new(body);
    let username = c.string("username");
    let password = c.string("password");
    let device_token = c.optional_string("device_token");
    if c.optional_string("grant_type").is_some_and(|g| g != "password") {
        c.fail(
            "grant_type",
            "String should match pattern '^password$'",
            "string_pattern_mismatch",
        );
    }
    c.finish()?;
    let (username, password) = username
        .zip(password)
        .ok_or_else(|| ApiError::internal("checked fields missing"))?;
    Ok(LoginFields {
        username,
        password,
        device_token,
    })
}

/// `POST /auth/login`: an OAuth2 password-grant form or JSON `{username, password}`.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    FormOrJsonFields(body): FormOrJsonFields,
) -> Result<Json<TokenResponse>, ApiError> {
    let fields = login_fields(&body)?;
    let device = fields
        .device_token
        .or_else(|| headers.get(DEVICE_TOKEN_HEADER).and_then(|v| v.to_str().ok()));
    let pair = state
        .auth
        .login(fields.username, fields.password, device, &client)
        .await?;
    Ok(Json(pair.into()))
}

/// `POST /auth/refresh`: JSON `{refresh_token}`; the old token is spent.
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    JsonFields(body): JsonFields,
) -> Result<Json<TokenResponse>, ApiError> {
    let mut c = Checker::new(&body);
    let token = c.string("refresh_token");
    c.finish()?;
    let token = token.unwrap_or_default();
    let pair = state.auth.refresh(token, &client).await?;
    Ok(Json(pair.into()))
}

/// `POST /auth/logout`: Bearer, optional JSON `{refresh_token}`.
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    OptionalJsonFields(body): OptionalJsonFields,
) -> Result<StatusCode, ApiError> {
    let refresh = match &body {
        Some(fields) => {
            let mut c = Checker::new(fields);
            let r = c.optional_string("refresh_token");
            c.finish()?;
            r
        }
        None => None,
    };
    state.auth.logout(&who, refresh, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/logout-all`: every session of the caller.
pub async fn logout_all(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.auth.logout_all(&who, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/password`: JSON `{current_password, new_password}`.
pub async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    JsonFields(body): JsonFields,
) -> Result<StatusCode, ApiError> {
    let mut c = Checker::new(&body);
    let current = c.string("current_password");
    let new = c.parsed("new_password", Password::parse);
    c.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    let current = Password::candidate(current).ok_or(ApiError::WrongPassword)?;
    state.auth.change_password(&who, current, new, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
