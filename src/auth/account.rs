//! Accounts: registration and password change.

use super::User;
use super::sessions::net_of;
use super::{AuthError, TokenProblem};
use super::{AuthService, Principal};
use crate::domain::{Email, Password, Role, UserId, Username};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::store::{NewPassword, NewUser, StoreError};

impl AuthService {
    /// Create an account. Registration never grants roles: those come from an admin.
    /// Both refusals that cost nothing (the client's limit, a taken name) come before
    /// the hash, so a flood of registrations costs the server no argon2 work.
    pub async fn register(
        &self,
        username: Username,
        email: Email,
        password: Password,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        self.limit(LimitKey::RegisterIp(net_of(client)), AuthEvent::RegisterLimited, client)
            .await?;
        let user = self.create_user(username, email, password, Vec::new()).await?;
        self.events.record(AuthEvent::Register, Some(user.id), None, client);
        self.send_welcome(&user, client).await;
        Ok(user)
    }

    /// Create an account with roles (the operator's `user create`).
    pub async fn create_user(
        &self,
        username: Username,
        email: Email,
        password: Password,
        roles: Vec<Role>,
    ) -> Result<User, AuthError> {
        if self.store.holders(&username, &email).await?.any() {
            return Err(AuthError::Taken);
        }
        let password_hash = self.hasher.hash(password).await?;
        let new = NewUser {
            id: UserId::new(),
            username,
            email,
            password_hash,
            roles,
            created_at: self.clock.now(),
        };
        match self.store.create_user(new).await {
            Ok(u) => Ok(User::from(u)),
            Err(StoreError::Conflict) => Err(AuthError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    /// Change the caller's password: the current one must be right. Every other
    /// session is revoked; the caller's own stays.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: super::StepUp,
        new: Password,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        // Guessing the current password with a stolen access token spends this
        // session's own budget (failures only), so the owner, from another session, can
        // always change a password they think is compromised.
        self.step_up(who, current, client).await?;
        let hash = self.hasher.hash(new).await?;
        // Written only while the account is as verified and this session is live: a
        // change, reset or revocation that committed while this one hashed wins, and
        // this request (maybe a thief's, racing the owner) writes nothing.
        let change = NewPassword {
            user: who.user.id,
            hash,
            expected_stamp: Some(who.user.security_stamp),
            keep: Some(who.session.id),
            now: self.clock.now(),
        };
        if self.store.change_password(change).await?.is_none() {
            self.events.record(
                AuthEvent::PasswordChangeFailed,
                Some(who.user.id),
                Some(who.session.id),
                client,
            );
            return Err(AuthError::InvalidToken(TokenProblem::Revoked));
        }
        self.events.record(
            AuthEvent::PasswordChanged,
            Some(who.user.id),
            Some(who.session.id),
            client,
        );
        Ok(())
    }

    /// Reset a user's password (the operator's `user set-password`, for a user who
    /// lost theirs): every session of theirs is revoked, and logins in flight fail.
    pub async fn set_password(&self, id: UserId, new: Password, client: &ClientInfo) -> Result<(), AuthError> {
        let hash = self.hasher.hash(new).await?;
        // The operator's reset is unconditional: it is the authority, and it revokes
        // every session, including one whose change is still hashing.
        let change = NewPassword {
            user: id,
            hash,
            expected_stamp: None,
            keep: None,
            now: self.clock.now(),
        };
        if self.store.change_password(change).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        self.events.record(AuthEvent::PasswordReset, Some(id), None, client);
        Ok(())
    }
}
