//! Administration: list, change and delete users. Callers are checked for the
//! `admin` role by the HTTP layer's `RequireRole` guard before they get here.

use super::{AuthService, Principal};
use crate::domain::{Role, UserId};
use crate::error::ApiError;
use crate::events::{AuthEvent, ClientInfo, emit};
use crate::store::{UserRecord, UserUpdate};

impl AuthService {
    pub async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, ApiError> {
        Ok(self.store.list_users(limit, offset).await?)
    }

    /// Change roles and/or activity. Deactivation kills every session and token of the
    /// user at once; reactivation lets them log in again but revives nothing old.
    pub async fn update_user(
        &self,
        actor: Option<&Principal>,
        id: UserId,
        update: UserUpdate,
        client: &ClientInfo,
    ) -> Result<UserRecord, ApiError> {
        let before = self.store.user_by_id(id).await?.ok_or(ApiError::NotFound)?;
        let after = self
            .store
            .update_user(id, update, self.clock.now())
            .await?
            .ok_or(ApiError::NotFound)?;
        let by_session = actor.map(|a| a.session.id);
        if before.roles != after.roles {
            emit(AuthEvent::RolesChanged, Some(id), by_session, client);
        }
        match (before.is_active, after.is_active) {
            (true, false) => emit(AuthEvent::UserDeactivated, Some(id), by_session, client),
            (false, true) => emit(AuthEvent::UserActivated, Some(id), by_session, client),
            _ => {}
        }
        Ok(after)
    }

    /// Delete a user; their sessions, refresh tokens and so access tokens die with them.
    pub async fn delete_user(
        &self,
        actor: Option<&Principal>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<(), ApiError> {
        if !self.store.delete_user(id).await? {
            return Err(ApiError::NotFound);
        }
        emit(AuthEvent::UserDeleted, Some(id), actor.map(|a| a.session.id), client);
        Ok(())
    }

    /// Find a user by name, for the operator's commands.
    pub async fn user_named(&self, username: &str) -> Result<UserRecord, ApiError> {
        self.store.user_by_username(username).await?.ok_or(ApiError::NotFound)
    }

    /// Replace a user's roles (operator command).
    pub async fn set_roles(&self, id: UserId, roles: Vec<Role>, client: &ClientInfo) -> Result<UserRecord, ApiError> {
        let update = UserUpdate {
            roles: Some(roles),
            is_active: None,
        };
        self.update_user(None, id, update, client).await
    }
}
