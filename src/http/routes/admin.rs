//! `/admin/users`: user administration, `admin` role only.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;

use super::UserRead;
use crate::domain::{Role, UserId};
use crate::error::{ApiError, FieldError};
use crate::http::AppState;
use crate::http::body::{Checker, JsonFields};
use crate::http::extract::{Admin, Client, IdPath, RequireRole};
use crate::store::UserUpdate;

/// Page size bounds for `GET /admin/users`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// `GET /admin/users?limit&offset`.
pub async fn list(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<UserRead>>, ApiError> {
    let (limit, offset) = page(query.as_deref())?;
    let users = state.auth.list_users(limit, offset).await?;
    Ok(Json(users.iter().map(UserRead::from).collect()))
}

/// `PATCH /admin/users/{id}`: JSON `{roles?, is_active?}`.
pub async fn update(
    State(state): State<AppState>,
    Client(client): Client,
    RequireRole(admin, ..): RequireRole<Admin>,
    IdPath(id): IdPath<UserId>,
    JsonFields(body): JsonFields,
) -> Result<Json<UserRead>, ApiError> {
    let mut c = Checker::new(&body);
    c.forbid_others(&["roles", "is_active"]);
    let roles = c.optional_list("roles", Role::parse);
    let is_active = c.optional_bool("is_active");
    c.finish()?;
    let user = state
        .auth
        .update_user(
            Some(&admin),
            id,
            UserUpdate {
                roles,
                is_active,
                ..UserUpdate::default()
            },
            &client,
        )
        .await?;
    Ok(Json(UserRead::from(&user)))
}

/// `DELETE /admin/users/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Client(client): Client,
    RequireRole(admin, ..): RequireRole<Admin>,
    IdPath(id): IdPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.auth.delete_user(Some(&admin), id, &client).await?;
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
