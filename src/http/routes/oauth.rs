//! `/oauth/*` (JSON): the provider's token endpoint, userinfo, introspection and
//! revocation, and `/auth/consents` (the applications a user allowed). The
//! authorization endpoint is a page: `oauth_pages`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::oauth::{ClientAuth, GrantView, Introspection, OAuthTokens, TokenGrant, UserInfo};
use crate::domain::ClientId;
use crate::http::AppState;
use crate::http::body::{Checker, FormOrJsonBody, FromFields};
use crate::http::error::{ApiError, TokenEndpointError};
use crate::http::extract::{Authenticated, Client, IdPath, bearer_token};
use crate::http::json::Json;
use crate::http::openapi::{
    NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    // What an application's page calls itself (a SPA): open to any origin, no cookie.
    let for_pages = OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(userinfo, userinfo_post))
        .routes(routes!(revoke))
        .route("/oauth/token", crate::http::open_cors::preflight())
        .route("/oauth/userinfo", crate::http::open_cors::preflight())
        .route("/oauth/revoke", crate::http::open_cors::preflight())
        .layer(crate::http::open_cors::open_cors());
    OpenApiRouter::new()
        .merge(for_pages)
        .routes(routes!(introspect))
        .routes(routes!(consents))
        .routes(routes!(revoke_consent))
}

/// An error of the provider's endpoints (RFC 6749 §5.2), with the `detail` every
/// error here has.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the JSON that `ApiError` writes
pub struct ProviderErrorBody {
    #[schema(example = "unknown or expired code")]
    detail: String,
    #[schema(
        pattern = "^(invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type|invalid_scope)$",
        example = "invalid_grant"
    )]
    error: String,
    error_description: Option<String>,
}

/// The fields of a provider request, as sent (unknown ones ignored); each read as text.
pub struct OAuthFields(std::collections::HashMap<&'static str, String>);

/// Every field any provider endpoint reads.
const FIELDS: [&str; 12] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "username",
    "password",
    "client_id",
    "client_secret",
    "token",
    "access_token",
];

impl FromFields for OAuthFields {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let mut map = std::collections::HashMap::new();
        for name in FIELDS {
            if let Some(v) = c.optional_string(name) {
                map.insert(name, v.to_owned());
            }
        }
        Some(Self(map))
    }
}

impl OAuthFields {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn required(&self, name: &'static str) -> Result<String, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid_request(format!("{name} is required")))
    }
}

/// A body that could not be read as fields is OAuth's `invalid_request` (400), as
/// RFC 6749 §5.2 has it, rather than a 422; a body too large or of another type keeps
/// its own answer.
fn fields_of(body: Result<FormOrJsonBody<OAuthFields>, ApiError>) -> Result<OAuthFields, ApiError> {
    match body {
        Ok(FormOrJsonBody(fields)) => Ok(fields),
        Err(ApiError::Validation(errors)) => Err(invalid_request(
            errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.loc
                            .iter()
                            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join("."),
                        e.msg
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(other) => Err(other),
    }
}

fn invalid_request(description: String) -> ApiError {
    ApiError::OAuth {
        code: "invalid_request",
        description,
        basic: false,
    }
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1: each part form-encoded), or
/// the body's; both at once is refused.
fn client_auth(headers: &HeaderMap, fields: &OAuthFields) -> Result<ClientAuth, ApiError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let Some((_, encoded)) = basic else {
        return Ok(ClientAuth {
            client_id: fields.get("client_id"),
            client_secret: fields.get("client_secret"),
            basic: false,
        });
    };
    if fields.get("client_secret").is_some() {
        return Err(invalid_request("client credentials sent twice (Basic and body)".into()));
    }
    let bad = || invalid_request("malformed Basic credentials".into());
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    let (id, secret) = (decode(id)?, decode(secret)?);
    if fields.get("client_id").is_some_and(|body| body != id) {
        return Err(invalid_request("client_id differs from the Basic credentials".into()));
    }
    Ok(ClientAuth {
        client_id: Some(id),
        client_secret: Some(secret),
        basic: true,
    })
}

/// `POST /oauth/token`'s request (a form, RFC 6749 §4.1.3, §4.4, §6, §4.3). (The
/// schema; requests are read as [`OAuthFields`].)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthTokenRequest {
    #[schema(pattern = "^(authorization_code|refresh_token|client_credentials|password)$")]
    grant_type: String,
    /// `authorization_code`: the code from the redirect.
    code: Option<String>,
    /// `authorization_code`: exactly as in the authorization request.
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (43-128 characters).
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token to spend.
    refresh_token: Option<String>,
    /// `client_credentials`, `refresh_token`: space-separated.
    scope: Option<String>,
    /// `password` (first-party clients only).
    username: Option<String>,
    password: Option<String>,
    /// `client_secret_post` and public clients (or HTTP Basic).
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5.1; OpenID Connect Core §3.1.3.3).
#[derive(Serialize, ToSchema)]
pub struct OAuthTokenResponse {
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// With the `openid` scope: signed RS256 (see the JWKS).
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

impl From<OAuthTokens> for OAuthTokenResponse {
    fn from(t: OAuthTokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
            scope: t.scope,
        }
    }
}

/// Tokens are never cached (RFC 6749 §5.1).
fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The token endpoint: `authorization_code` (with PKCE), `refresh_token`,
/// `client_credentials`, and `password` for first-party clients. Client authentication
/// by HTTP Basic, in the body, or none for public clients.
#[utoipa::path(
    post, path = "/oauth/token", operation_id = "oauth_token", tag = "oauth",
    request_body(content((OAuthTokenRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Tokens", body = OAuthTokenResponse),
        (status = 400, description = "Refused (RFC 6749 §5.2)", body = ProviderErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`), or bad credentials", body = ProviderErrorBody,
            headers(("WWW-Authenticate" = String, description = "The challenge"))),
        (status = 403, description = "Inactive user, or MFA required (password grant)", body = ProviderErrorBody),
        PayloadTooLarge, UnsupportedMediaType, TooManyRequests, Unavailable,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<FormOrJsonBody<OAuthFields>, ApiError>,
) -> Response {
    let answer = async {
        let fields = fields_of(body)?;
        let auth = client_auth(&headers, &fields)?;
        let grant = match fields.required("grant_type")?.as_str() {
            "authorization_code" => TokenGrant::AuthorizationCode {
                code: fields.required("code")?,
                redirect_uri: fields.get("redirect_uri"),
                code_verifier: fields.get("code_verifier"),
            },
            "refresh_token" => TokenGrant::RefreshToken {
                refresh_token: fields.required("refresh_token")?,
                scope: fields.get("scope"),
            },
            "client_credentials" => TokenGrant::ClientCredentials {
                scope: fields.get("scope"),
            },
            "password" => TokenGrant::Password {
                username: fields.required("username")?,
                password: fields.required("password")?,
                scope: fields.get("scope"),
            },
            _ => {
                return Err(ApiError::OAuth {
                    code: "unsupported_grant_type",
                    description: "grant_type must be authorization_code, refresh_token, client_credentials or password"
                        .into(),
                    basic: false,
                });
            }
        };
        let tokens = state.auth.token(auth, grant, &client).await?;
        Ok(Json(OAuthTokenResponse::from(tokens)))
    };
    let res = match answer.await {
        Ok(ok) => ok.into_response(),
        Err(e) => TokenEndpointError(e).into_response(),
    };
    no_store(res)
}

/// The user's claims (OpenID Connect Core §5.3), by the token's scopes: `sub` always;
/// `preferred_username` (profile), `email` and `email_verified` (email), `roles`.
#[derive(Serialize, ToSchema)]
pub struct UserInfoResponse {
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
}

impl From<UserInfo> for UserInfoResponse {
    fn from(u: UserInfo) -> Self {
        Self {
            sub: u.sub,
            preferred_username: u.preferred_username,
            email: u.email,
            email_verified: u.email_verified,
            roles: u.roles,
        }
    }
}

async fn userinfo_for(state: &AppState, token: &str) -> Result<Response, ApiError> {
    let info = state.auth.userinfo(token).await?;
    Ok(no_store(Json(UserInfoResponse::from(info)).into_response()))
}

/// Userinfo: an application's access token with the `openid` scope, as `Bearer`.
#[utoipa::path(
    get, path = "/oauth/userinfo", operation_id = "oauth_userinfo", tag = "oauth",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfoResponse),
        (status = 403, description = "The token lacks the openid scope", body = crate::http::openapi::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "insufficient_scope"))),
        Unauthorized, Unavailable,
    )
)]
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    userinfo_for(&state, bearer_token(&headers)?).await
}

/// `POST /oauth/userinfo`'s optional body: the token as a form field (RFC 6750 §2.2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserInfoForm {
    access_token: Option<String>,
}

/// Userinfo by POST: the token as `Bearer`, or as the form's `access_token`.
#[utoipa::path(
    post, path = "/oauth/userinfo", operation_id = "oauth_userinfo_post", tag = "oauth",
    request_body(content((UserInfoForm = "application/x-www-form-urlencoded")), description = "Optional"),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfoResponse),
        (status = 403, description = "The token lacks the openid scope", body = crate::http::openapi::ErrorBody),
        Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unavailable,
    )
)]
pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return userinfo_for(&state, bearer_token(&headers)?).await;
    }
    if !body.is_empty() && !crate::http::body::is_form(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "Send the token as Bearer, or as access_token in an application/x-www-form-urlencoded body",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = pairs
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
        .ok_or(ApiError::NotAuthenticated)?;
    userinfo_for(&state, &token).await
}

/// `POST /oauth/introspect` and `/oauth/revoke`'s request (RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    token: String,
    /// `access_token` or `refresh_token` (a hint; every kind is tried).
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 7662 introspection, for an authenticated client: `{"active": false}` alone for
/// a token that is not live, or not issued to (or meant for) the asking client.
#[utoipa::path(
    post, path = "/oauth/introspect", operation_id = "oauth_introspect", tag = "oauth",
    request_body(content((TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The token's state and claims", body = Object),
        (status = 400, description = "No token", body = ProviderErrorBody),
        (status = 401, description = "Client authentication failed", body = ProviderErrorBody,
            headers(("WWW-Authenticate" = String, description = "The challenge"))),
        PayloadTooLarge, UnsupportedMediaType, Unavailable,
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<FormOrJsonBody<OAuthFields>, ApiError>,
) -> Result<Response, TokenEndpointError> {
    let fields = fields_of(body)?;
    let auth = client_auth(&headers, &fields)?;
    let token = fields.required("token")?;
    let answer = match state.auth.introspect(auth, &token).await? {
        Introspection::Active(claims) => Value::Object(claims),
        Introspection::Inactive => serde_json::json!({ "active": false }),
    };
    Ok(no_store(Json(answer).into_response()))
}

/// RFC 7009 revocation, for an authenticated client: its token's session ends (every
/// token of it). 200 for unknown tokens too.
#[utoipa::path(
    post, path = "/oauth/revoke", operation_id = "oauth_revoke", tag = "oauth",
    request_body(content((TokenForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "No token", body = ProviderErrorBody),
        (status = 401, description = "Client authentication failed", body = ProviderErrorBody,
            headers(("WWW-Authenticate" = String, description = "The challenge"))),
        PayloadTooLarge, UnsupportedMediaType, Unavailable,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<FormOrJsonBody<OAuthFields>, ApiError>,
) -> Result<StatusCode, TokenEndpointError> {
    let fields = fields_of(body)?;
    let auth = client_auth(&headers, &fields)?;
    let token = fields.required("token")?;
    state.auth.revoke_token(auth, &token, &client).await?;
    Ok(StatusCode::OK)
}

/// An application the caller allowed.
#[derive(Serialize, ToSchema)]
pub struct ConsentRead {
    #[schema(format = Uuid)]
    client_id: String,
    client_name: String,
    scopes: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<GrantView> for ConsentRead {
    fn from(g: GrantView) -> Self {
        Self {
            client_id: g.client_id.to_string(),
            client_name: g.client_name.as_str().to_owned(),
            scopes: g.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: g.created_at.to_rfc3339(),
            updated_at: g.updated_at.to_rfc3339(),
        }
    }
}

/// The applications the caller allowed (OAuth / OpenID Connect), with their scopes.
#[utoipa::path(
    get, path = "/auth/consents", operation_id = "list_consents", tag = "oauth",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The applications", body = Vec<ConsentRead>), Unauthorized, Unavailable)
)]
pub async fn consents(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<ConsentRead>>, ApiError> {
    let list = state.auth.consents(&who).await?;
    Ok(Json(list.into_iter().map(ConsentRead::from).collect()))
}

/// Take an application's access back: it asks again next time, and every token it
/// holds for the caller dies at once (on every instance within a second).
#[utoipa::path(
    delete, path = "/auth/consents/{client_id}", operation_id = "revoke_consent", tag = "oauth",
    params(("client_id" = String, Path, format = Uuid, description = "The application's id")),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 204, description = "Revoked"), Unauthorized, NotFound, Unavailable)
)]
pub async fn revoke_consent(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(who): Authenticated,
    IdPath(id): IdPath<ClientId>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_consent(&who, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
