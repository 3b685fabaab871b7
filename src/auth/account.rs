//! Accounts: registration and password change.

use super::{AuthService, Principal};
use crate::domain::{Email, Password, Role, UserId, Username};
use crate::error::ApiError;
use crate::events::{AuthEvent, ClientInfo, emit};
use crate::state::LimitKey;
use crate::store::{NewUser, StoreError, UserRecord};

impl AuthService {
    /// Create an account. Registration never grants roles: those come from an admin.
    pub async fn register(
        &self,
        username: Username,
        email: Email,
        password: Password,
        client: &ClientInfo,
    ) -> Result<UserRecord, ApiError> {
        let user = self.create_user(username, email, password, Vec::new()).await?;
        emit(AuthEvent::Register, Some(user.id), None, client);
        Ok(user)
    }

    /// Create an account with roles (the operator's `user create`).
    pub async fn create_user(
        &self,
        username: Username,
        email: Email,
        password: Password,
        roles: Vec<Role>,
    ) -> Result<UserRecord, ApiError> {
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
            Ok(u) => Ok(u),
            Err(StoreError::Conflict) => Err(ApiError::Conflict("Username or email already registered")),
            Err(e) => Err(e.into()),
        }
    }

    /// Change the caller's password: the current one must be right. Every other
    /// session is revoked; the caller's own stays.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: Password,
        new: Password,
        client: &ClientInfo,
    ) -> Result<(), ApiError> {
        // Guessing the current password with a stolen access token spends the same
        // per-username budget as guessing it at login.
        let user_key = who.user.username.as_str().to_lowercase();
        self.limit(LimitKey::LoginUser(user_key), AuthEvent::LoginLimited, client)
            .await?;
        let ok = self
            .hasher
            .verify(current, Some(who.user.password_hash.clone()))
            .await?;
        if !ok {
            emit(
                AuthEvent::PasswordChangeFailed,
                Some(who.user.id),
                Some(who.session.id),
                client,
            );
            return Err(ApiError::WrongPassword);
        }
        let hash = self.hasher.hash(new).await?;
        self.store
            .change_password(who.user.id, hash, who.session.id, self.clock.now())
            .await?;
        emit(
            AuthEvent::PasswordChanged,
            Some(who.user.id),
            Some(who.session.id),
            client,
        );
        Ok(())
    }
}
