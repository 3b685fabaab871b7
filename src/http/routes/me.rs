use axum::Json;

use super::UserRead;
use crate::http::extract::Authenticated;

/// `GET /me`: the caller's account.
pub async fn me(Authenticated(who): Authenticated) -> Json<UserRead> {
    Json(UserRead::from(&who.user))
}
