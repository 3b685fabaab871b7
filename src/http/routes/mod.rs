//! Route handlers, one file per area. Each extracts, calls the service, maps.

pub mod account;
pub mod admin;
pub mod auth;
pub mod cookie;
pub mod discovery;
pub mod forward_auth;
pub mod health;
pub mod me;
pub mod sessions;

use serde::Serialize;

use crate::store::UserRecord;

/// The contract's `UserRead`: never a hash.
#[derive(Serialize)]
pub struct UserRead {
    pub id: String,
    pub username: String,
    pub email: String,
    pub is_active: bool,
    pub roles: Vec<String>,
    pub created_at: String,
}

impl From<&UserRecord> for UserRead {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.as_str().to_owned(),
            email: u.email.as_str().to_owned(),
            is_active: u.is_active,
            roles: u.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            created_at: u.created_at.to_rfc3339(),
        }
    }
}
