//! `/admin/users`: user administration, `admin` role only.

use crate::http::json::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::user_read::UserRead;
use crate::auth::UserChange;
use crate::domain::{Role, UserId};
use crate::http::AppState;
use crate::http::body::{Checker, FromFields, JsonBody};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Admin, Client, IdPath, RequireRole};
use crate::http::openapi::{
    Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(update, delete))
        .routes(routes!(reset_mfa))
}

/// `PATCH /admin/users/{id}`: what to change; other fields are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateRequest {
    /// The user's whole new role list (replaces the old one).
    #[schema(value_type = Option<Vec<RoleName>>, example = json!(["admin"]))]
    roles: Option<Vec<Role>>,
    /// `false` revokes every session of the user at once.
    is_active: Option<bool>,
    /// An operator vouches for the address (`true`) or withdraws that (`false`: with
    /// `TOKENGATE_REQUIRE_VERIFIED_EMAIL`, every session of the user ends).
    email_verified: Option<bool>,
}

/// A role: 1-50 characters of a-z, 0-9, `_`, `:`, `.`, `-` (as `Role::parse` checks).
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9_:.-]{1,50}$", example = "admin")]
#[allow(dead_code)]
pub struct RoleName(String);

impl FromFields for UserUpdateRequest {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        c.forbid_others(&["roles", "is_active", "email_verified"]);
        Some(Self {
            roles: c.optional_list("roles", Role::parse),
            is_active: c.optional_bool("is_active"),
            email_verified: c.optional_bool("email_verified"),
        })
    }
}

/// Page size bounds for `GET /admin/users`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// Users, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/admin/users", operation_id = "list_users", tag = "admin",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 4294967295_u64, description = "Users to skip (default 0)"),
    ),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "A page of users", body = Vec<UserRead>), Unauthorized, Forbidden, Unprocessable, Unavailable)
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<UserRead>>, ApiError> {
    let (limit, offset) = page(query.as_deref())?;
    let users = state.auth.list_users(limit, offset).await?;
    Ok(Json(users.into_iter().map(UserRead::from).collect()))
}

/// Change a user's roles, activity and/or whether their address counts as verified.
/// Deactivating revokes every session of theirs at once; no change may leave the
/// server without an active admin.
#[utoipa::path(
    patch, path = "/admin/users/{id}", operation_id = "update_user", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    request_body = UserUpdateRequest,
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 200, description = "The user as changed", body = UserRead),
        Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Client(client): Client,
    RequireRole(admin, ..): RequireRole<Admin>,
    IdPath(id): IdPath<UserId>,
    JsonBody(body): JsonBody<UserUpdateRequest>,
) -> Result<Json<UserRead>, ApiError> {
    let UserUpdateRequest {
        roles,
        is_active,
        email_verified,
    } = body;
    let user = state
        .auth
        .update_user(
            Some(&admin),
            id,
            UserChange {
                roles,
                is_active,
                email_verified,
            },
            &client,
        )
        .await?;
    Ok(Json(UserRead::from(user)))
}

/// Delete a user and every session of theirs.
#[utoipa::path(
    delete, path = "/admin/users/{id}", operation_id = "delete_user", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 204, description = "Deleted"), Unauthorized, Forbidden, NotFound, Conflict, Unavailable)
)]
pub async fn delete(
    State(state): State<AppState>,
    Client(client): Client,
    RequireRole(admin, ..): RequireRole<Admin>,
    IdPath(id): IdPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.auth.delete_user(Some(&admin), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn a user's MFA off (they lost every factor): every session of theirs ends, and
/// they are told by mail.
#[utoipa::path(
    delete, path = "/admin/users/{id}/mfa", operation_id = "reset_user_mfa", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses(
        (status = 204, description = "MFA off; every session of the user ended"),
        Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    )
)]
pub async fn reset_mfa(
    State(state): State<AppState>,
    Client(client): Client,
    RequireRole(..): RequireRole<Admin>,
    IdPath(id): IdPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.auth.reset_mfa(id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `limit` (1..=200, default 50) and `offset` (>= 0, default 0) from the query string.
fn page(query: Option<&str>) -> Result<(u32, u32), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|_| {
        ApiError::Validation(vec![FieldError {
            loc: vec![json!("query")],
            msg: "The query string could not be decoded".into(),
            kind: "query_invalid",
        }])
    })?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut errors = Vec::new();
    let mut number = |name: &'static str, default: u32, min: u32, max: u32| match get(name) {
        None => default,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                errors.push(FieldError {
                    loc: vec![json!("query"), json!(name)],
                    msg: format!("Input should be a whole number from {min} to {max}"),
                    kind: "int_parsing",
                });
                default
            }
        },
    };
    let limit = number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
    let offset = number("offset", 0, 0, u32::MAX);
    if errors.is_empty() {
        Ok((limit, offset))
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging() {
        assert_eq!(page(None).unwrap(), (50, 0));
        assert_eq!(page(Some("limit=10&offset=20")).unwrap(), (10, 20));
        for bad in [
            "limit=-1",
            "limit=0",
            "limit=201",
            "limit=abc",
            "offset=-5",
            "offset=1.5",
        ] {
            assert!(matches!(page(Some(bad)), Err(ApiError::Validation(_))), "{bad}");
        }
    }
}
