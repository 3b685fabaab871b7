//! `GET /me`.

use crate::http::json::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::user_read::UserRead;
use crate::http::AppState;
use crate::http::extract::Authenticated;
use crate::http::openapi::{Forbidden, Unauthorized, Unavailable};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller's account.
#[utoipa::path(
    get, path = "/me", tag = "auth",
    security(("OAuth2PasswordBearer" = []), ("bearerAuth" = [])),
    responses((status = 200, description = "The caller", body = UserRead), Unauthorized, Forbidden, Unavailable)
)]
pub async fn me(Authenticated(who): Authenticated) -> Json<UserRead> {
    Json(UserRead::from(who.user()))
}
