//! Administration: list, change and delete users. Callers are checked for the
//! `admin` role by the HTTP layer's `RequireRole` guard before they get here.

use super::AuthError;
use super::User;
use super::{AuthService, Principal};
use crate::domain::{Email, Role, UserId};
use crate::events::{AuthEvent, ClientInfo};
use crate::store::{StoreError, UserUpdate, UserWrite};

/// An administrator's change to a user; `None` leaves a field as it is. What else the
/// change implies (voiding logins in flight, revoking sessions) is decided here.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    pub roles: Option<Vec<Role>>,
    pub is_active: Option<bool>,
    /// An operator vouches for (or withdraws) the address.
    pub email_verified: Option<bool>,
}

/// The result of a guarded change, as the routes answer it.
fn applied<T>(w: UserWrite<T>) -> Result<T, AuthError> {
    match w {
        UserWrite::Done(t) => Ok(t),
        UserWrite::NotFound => Err(AuthError::NotFound),
        UserWrite::LastHolder => Err(AuthError::LastAdmin),
    }
}

impl AuthService {
    pub async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<User>, AuthError> {
        Ok(self
            .store
            .list_users(limit, offset)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Change roles and/or activity. Deactivation kills every session and token of the
    /// user at once; reactivation lets them log in again but revives nothing old. A
    /// role change or deactivation also voids logins in flight (the security stamp),
    /// and no change may leave the server without an active admin.
    pub async fn update_user(
        &self,
        actor: Option<&Principal>,
        id: UserId,
        change: UserChange,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let before = self.store.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        let deactivating = change.is_active == Some(false);
        // Where a verified address is required, withdrawing it ends the user's sessions.
        let unverifying = change.email_verified == Some(false) && self.recovery.require_verified_email;
        let update = UserUpdate {
            bump_stamp: change.roles.is_some() || deactivating || unverifying,
            revoke_sessions: deactivating || unverifying,
            roles: change.roles,
            is_active: change.is_active,
            email_verified: change.email_verified,
            email: None,
        };
        let admin = Role::admin();
        let after = applied(
            self.store
                .update_user(id, update, Some(&admin), self.clock.now())
                .await?,
        )?
        .user;
        let by_session = actor.map(|a| a.session.id);
        if before.roles != after.roles {
            self.events
                .record(AuthEvent::RolesChanged, Some(id), by_session, client);
        }
        match (before.is_active, after.is_active) {
            (true, false) => self
                .events
                .record(AuthEvent::UserDeactivated, Some(id), by_session, client),
            (false, true) => self
                .events
                .record(AuthEvent::UserActivated, Some(id), by_session, client),
            _ => {}
        }
        if !before.email_verified && after.email_verified {
            self.events
                .record(AuthEvent::EmailVerified, Some(id), by_session, client);
        }
        Ok(User::from(after))
    }

    /// Delete a user; their sessions, refresh tokens and so access tokens die with them.
    pub async fn delete_user(
        &self,
        actor: Option<&Principal>,
        id: UserId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        applied(
            self.store
                .delete_user(id, Some(&Role::admin()), self.clock.now())
                .await?,
        )?;
        self.events
            .record(AuthEvent::UserDeleted, Some(id), actor.map(|a| a.session.id), client);
        Ok(())
    }

    /// Find a user by name, for the operator's commands.
    pub async fn user_named(&self, username: &str) -> Result<User, AuthError> {
        let user = self.store.user_by_username(username).await?;
        user.map(User::from).ok_or(AuthError::NotFound)
    }

    /// Give a user another address (operator command). It counts as unverified until
    /// proven or vouched for, and the links in flight to the old one die with it (the
    /// stamp moves; a verification link names the old address).
    pub async fn set_email(&self, id: UserId, email: Email) -> Result<User, AuthError> {
        let update = UserUpdate {
            email: Some(email),
            email_verified: Some(false),
            bump_stamp: true,
            ..UserUpdate::default()
        };
        match self.store.update_user(id, update, None, self.clock.now()).await {
            Err(StoreError::Conflict) => Err(AuthError::Taken),
            written => Ok(User::from(applied(written?)?.user)),
        }
    }

    /// Count a user's address as verified (operator command).
    pub async fn vouch_for_email(&self, id: UserId, client: &ClientInfo) -> Result<User, AuthError> {
        let change = UserChange {
            email_verified: Some(true),
            ..UserChange::default()
        };
        self.update_user(None, id, change, client).await
    }

    /// Replace a user's roles (operator command).
    pub async fn set_roles(&self, id: UserId, roles: Vec<Role>, client: &ClientInfo) -> Result<User, AuthError> {
        let change = UserChange {
            roles: Some(roles),
            ..UserChange::default()
        };
        self.update_user(None, id, change, client).await
    }
}
