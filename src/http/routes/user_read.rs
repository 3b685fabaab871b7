//! How a user is shown on the wire.

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::User;

/// The contract's `UserRead`: never a hash.
#[derive(Serialize, ToSchema)]
pub struct UserRead {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "alice")]
    pub username: String,
    #[schema(format = Email, example = "alice@example.com")]
    pub email: String,
    pub is_active: bool,
    /// The user proved they read `email` (a verification link, a reset, an operator).
    pub email_verified: bool,
    #[schema(example = json!(["admin"]))]
    pub roles: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<User> for UserRead {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_hyphenated(),
            username: u.username.into_string(),
            email: u.email.into_string(),
            is_active: u.is_active,
            email_verified: u.email_verified,
            roles: u.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            created_at: u.created_at.to_rfc3339(),
        }
    }
}
