//! `/admin/clients`: the applications registered with the OAuth2 / OpenID Connect
//! provider (`admin` role only), what `tokengate client ...` does over HTTP.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::oauth::{ClientChange, ClientRegistration, ClientView, parse_audience};
use crate::domain::{ClientId, ClientName, RedirectUri, Scope};
use crate::http::AppState;
use crate::http::body::{Checker, FromFields, JsonBody};
use crate::http::error::ApiError;
use crate::http::extract::{Admin, IdPath, RequireRole};
use crate::http::json::Json;
use crate::http::openapi::{
    Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(rotate_secret))
}

/// An application as operators see it (its secret never).
#[derive(Serialize, ToSchema)]
pub struct ClientRead {
    #[schema(format = Uuid)]
    client_id: String,
    name: String,
    /// No secret (a SPA, a mobile app): it authenticates with PKCE alone.
    public: bool,
    /// First-party: its users are not asked to consent.
    trusted: bool,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    scopes: Vec<String>,
    /// The `aud` of its access tokens; none: its `client_id`.
    audience: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<ClientView> for ClientRead {
    fn from(c: ClientView) -> Self {
        let uris = |u: Vec<RedirectUri>| u.iter().map(|u| u.as_str().to_owned()).collect();
        Self {
            client_id: c.id.to_string(),
            name: c.name.as_str().to_owned(),
            public: c.public,
            trusted: c.trusted,
            redirect_uris: uris(c.redirect_uris),
            post_logout_redirect_uris: uris(c.post_logout_redirect_uris),
            scopes: c.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            audience: c.audience,
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

/// A redirect URI: `https://`, `http://` on a loopback host, or an app's reversed-domain
/// scheme; no fragment, no user information; in its normal form, as a URL parser writes
/// it back (`https://app.example.com/`). The server checks more than a pattern can say:
/// a URI outside these rules is a 422 naming the rule.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 2000, example = "https://app.example.com/callback")]
#[allow(dead_code)]
pub struct RedirectUriString(String);

/// An OAuth scope: printable ASCII, no space, quote or backslash (RFC 6749 §3.3).
#[derive(ToSchema)]
#[schema(pattern = "^[!#-\\[\\]-~]{1,64}$", example = "openid")]
#[allow(dead_code)]
pub struct ScopeString(String);

/// An application's name as users see it on the consent page: 1-64 characters, no
/// control, invisible or text-direction characters.
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 64,
    pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u115F-\\u1160\\u180B-\\u180F\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF9-\\uFFFB]*$",
    example = "Grafana"
)]
#[allow(dead_code)]
pub struct ClientNameString(String);

/// An application just registered: its secret is in this answer only.
#[derive(Serialize, ToSchema)]
pub struct ClientCreated {
    #[serde(flatten)]
    client: ClientRead,
    /// The secret (confidential clients), shown this once: store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// A confidential application's new secret, shown this once; the old one no longer
/// works.
#[derive(Serialize, ToSchema)]
pub struct ClientSecretRotated {
    #[schema(format = Uuid)]
    client_id: String,
    client_secret: String,
}

/// `POST /admin/clients`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreateBody {
    #[schema(value_type = ClientNameString)]
    name: ClientName,
    /// At least one; each matched exactly (for a loopback host, any port).
    #[schema(value_type = Vec<RedirectUriString>, min_items = 1, example = json!(["https://grafana.example.com/login/generic_oauth"]))]
    redirect_uris: Vec<RedirectUri>,
    /// Where RP-initiated logout may send the user back.
    #[schema(value_type = Option<Vec<RedirectUriString>>)]
    post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    /// The scopes it may ask for [default: openid profile email].
    #[schema(value_type = Option<Vec<ScopeString>>, min_items = 1, example = json!(["openid", "profile", "email"]))]
    scopes: Option<Vec<Scope>>,
    /// No secret (a SPA, a mobile app) [default: false].
    public: Option<bool>,
    /// First-party: no consent screen [default: false].
    trusted: Option<bool>,
    /// The `aud` of its access tokens [default: its `client_id`]: 1-200 printable
    /// characters, no space, never the server's own audience.
    #[schema(min_length = 1, max_length = 200, example = "https://api.example.com")]
    audience: Option<String>,
}

/// The fields a change may give; a registration may also say `public`.
const CHANGEABLE: [&str; 6] = [
    "name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "scopes",
    "trusted",
    "audience",
];

impl FromFields for ClientCreateBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        c.forbid_others(&[CHANGEABLE.as_slice(), &["public"]].concat());
        let name = c.parsed("name", ClientName::parse);
        let redirect_uris = c.list("redirect_uris", RedirectUri::parse);
        let post_logout_redirect_uris = c.optional_list("post_logout_redirect_uris", RedirectUri::parse);
        let scopes = c.optional_list("scopes", Scope::parse);
        let public = c.optional_bool("public");
        let trusted = c.optional_bool("trusted");
        let audience = c.optional_parsed("audience", parse_audience);
        Some(Self {
            name: name?,
            redirect_uris: redirect_uris?,
            post_logout_redirect_uris,
            scopes,
            public,
            trusted,
            audience,
        })
    }
}

/// `PATCH /admin/clients/{id}`: the fields given change; `audience: ""` goes back to the
/// default (its `client_id`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdateBody {
    #[schema(value_type = Option<ClientNameString>)]
    name: Option<ClientName>,
    #[schema(value_type = Option<Vec<RedirectUriString>>, min_items = 1)]
    redirect_uris: Option<Vec<RedirectUri>>,
    #[schema(value_type = Option<Vec<RedirectUriString>>)]
    post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    #[schema(value_type = Option<Vec<ScopeString>>, min_items = 1)]
    scopes: Option<Vec<Scope>>,
    trusted: Option<bool>,
    /// `""`: back to the default.
    #[schema(value_type = Option<String>, max_length = 200)]
    audience: Option<Option<String>>,
}

impl FromFields for ClientUpdateBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        c.forbid_others(&CHANGEABLE);
        Some(Self {
            name: c.optional_parsed("name", ClientName::parse),
            redirect_uris: c.optional_list("redirect_uris", RedirectUri::parse),
            post_logout_redirect_uris: c.optional_list("post_logout_redirect_uris", RedirectUri::parse),
            scopes: c.optional_list("scopes", Scope::parse),
            trusted: c.optional_bool("trusted"),
            audience: c.optional_parsed("audience", |a| match a {
                "" => Ok(None),
                a => parse_audience(a).map(Some),
            }),
        })
    }
}

/// Every application, oldest first.
#[utoipa::path(
    get, path = "/admin/clients", operation_id = "list_clients", tag = "admin",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The applications", body = Vec<ClientRead>), Unauthorized, Forbidden, Unavailable)
)]
pub async fn list(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
) -> Result<Json<Vec<ClientRead>>, ApiError> {
    let all = state.auth.clients().await?;
    Ok(Json(all.into_iter().map(ClientRead::from).collect()))
}

/// Register an application: its `client_id`, and its `client_secret` (confidential
/// clients) shown this once.
#[utoipa::path(
    post, path = "/admin/clients", operation_id = "create_client", tag = "admin",
    request_body = ClientCreateBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 201, description = "Registered", body = ClientCreated),
        Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
    JsonBody(body): JsonBody<ClientCreateBody>,
) -> Result<(StatusCode, Json<ClientCreated>), ApiError> {
    let registered = state
        .auth
        .register_client(ClientRegistration {
            name: body.name,
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris.unwrap_or_default(),
            scopes: body.scopes,
            public: body.public.unwrap_or(false),
            trusted: body.trusted.unwrap_or(false),
            audience: body.audience,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated {
            client: registered.client.into(),
            client_secret: registered.secret,
        }),
    ))
}

/// One application.
#[utoipa::path(
    get, path = "/admin/clients/{id}", operation_id = "get_client", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The client_id")),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The application", body = ClientRead), Unauthorized, Forbidden, NotFound, Unavailable)
)]
pub async fn get_one(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
    IdPath(id): IdPath<ClientId>,
) -> Result<Json<ClientRead>, ApiError> {
    Ok(Json(state.auth.client(id).await?.into()))
}

/// Change an application: the fields given.
#[utoipa::path(
    patch, path = "/admin/clients/{id}", operation_id = "update_client", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The client_id")),
    request_body = ClientUpdateBody,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "Changed", body = ClientRead),
        Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
    IdPath(id): IdPath<ClientId>,
    JsonBody(body): JsonBody<ClientUpdateBody>,
) -> Result<Json<ClientRead>, ApiError> {
    let change = ClientChange {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        scopes: body.scopes,
        trusted: body.trusted,
        audience: body.audience,
    };
    Ok(Json(state.auth.change_client(id, change).await?.into()))
}

/// Remove an application: its grants and every token issued to it die.
#[utoipa::path(
    delete, path = "/admin/clients/{id}", operation_id = "delete_client", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The client_id")),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 204, description = "Removed"), Unauthorized, Forbidden, NotFound, Unavailable)
)]
pub async fn delete(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
    IdPath(id): IdPath<ClientId>,
) -> Result<StatusCode, ApiError> {
    state.auth.delete_client(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a confidential application a new secret, shown this once; the old one stops
/// working at once.
#[utoipa::path(
    post, path = "/admin/clients/{id}/rotate-secret", operation_id = "rotate_client_secret", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The client_id")),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new secret", body = ClientSecretRotated),
        Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    RequireRole(..): RequireRole<Admin>,
    IdPath(id): IdPath<ClientId>,
) -> Result<Json<ClientSecretRotated>, ApiError> {
    let client_secret = state.auth.rotate_client_secret(id).await?;
    Ok(Json(ClientSecretRotated {
        client_id: id.to_string(),
        client_secret,
    }))
}
