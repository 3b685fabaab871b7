//! The user's side of the provider: the applications they allowed, and taking that
//! back (every token the application holds for them dies, on every instance).

use crate::auth::{AuthError, AuthService, Principal};
use crate::domain::{ClientId, ClientName, Scope, UnixTime};
use crate::events::{AuthEvent, ClientInfo};

/// An application the user allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantView {
    pub client_id: ClientId,
    pub client_name: ClientName,
    pub scopes: Vec<Scope>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl AuthService {
    /// The applications the caller allowed, most recently changed first.
    pub async fn consents(&self, who: &Principal) -> Result<Vec<GrantView>, AuthError> {
        let list = self.store.consents(who.user_id(), self.clock.now()).await?;
        Ok(list
            .into_iter()
            .map(|c| GrantView {
                client_id: c.client,
                client_name: c.client_name,
                scopes: c.scopes,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect())
    }

    /// Take an application's access back: the consent goes (it asks again next time)
    /// and every session opened for it ends. Nothing to take back is "not found".
    pub async fn revoke_consent(
        &self,
        who: &Principal,
        client_id: ClientId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let revoked = self
            .store
            .revoke_grant(who.user_id(), client_id, self.clock.now())
            .await?;
        if !revoked.consent && revoked.sessions.is_empty() {
            return Err(AuthError::NotFound);
        }
        self.events.record(
            AuthEvent::ConsentRevoked,
            Some(who.user_id()),
            Some(who.session_id()),
            client,
        );
        tracing::info!(client_id = %client_id, sessions = revoked.sessions.len(), "OAuth consent revoked");
        Ok(())
    }
}
