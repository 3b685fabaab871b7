//! What applications do with their tokens: read the user's claims (OpenID Connect
//! userinfo), ask whether a token is live (RFC 7662), and give a token up (RFC 7009).

use serde_json::{Map, Value, json};

use super::{ClientAuth, has_scope};
use crate::auth::{AuthError, AuthService, TokenProblem};
use crate::crypto::tokens::RefreshTokenHash;
use crate::domain::{Scope, SessionId, UnixTime};
use crate::events::{AuthEvent, ClientInfo};
use crate::store::StoredClient;

/// The user's claims as their application's scopes allow (OpenID Connect Core §5.3).
#[derive(Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub roles: Option<Vec<String>>,
}

/// An introspection's answer: `{"active": false}` alone for anything not live, or
/// not the asking client's to know about.
#[derive(Debug, PartialEq)]
pub enum Introspection {
    Inactive,
    Active(Map<String, Value>),
}

impl AuthService {
    /// The claims of the user an application's access token stands for; the token must
    /// carry `openid` and its session must be live.
    pub async fn userinfo(&self, bearer: &str) -> Result<UserInfo, AuthError> {
        let now = self.clock.now();
        let token = self
            .tokens
            .verify_any_why(bearer, now)
            .map_err(|(_, refusal)| AuthError::InvalidToken(super::super::refusal_problem(refusal)))?;
        let revoked = AuthError::InvalidToken(TokenProblem::Revoked);
        let Some((session, user)) = self.store.session_with_user(token.session_id).await? else {
            return Err(revoked);
        };
        if session.user_id != token.user_id || !session.is_live(now) || !user.is_active {
            return Err(revoked);
        }
        let scopes = match (&session.client, &token.client) {
            (Some(granted), Some((client_id, _))) if granted.id.to_string() == *client_id => &granted.scopes,
            _ => return Err(AuthError::InsufficientScope("openid")),
        };
        if !has_scope(scopes, "openid") {
            return Err(AuthError::InsufficientScope("openid"));
        }
        Ok(UserInfo {
            sub: user.id.to_string(),
            preferred_username: has_scope(scopes, "profile").then(|| user.username.as_str().to_owned()),
            email: has_scope(scopes, "email").then(|| user.email.as_str().to_owned()),
            email_verified: has_scope(scopes, "email").then_some(user.email_verified),
            roles: has_scope(scopes, "roles").then(|| user.roles.iter().map(|r| r.as_str().to_owned()).collect()),
        })
    }

    /// RFC 7662: whether `token` is live, for an authenticated client. A client learns
    /// only of tokens issued to it or meant for it (its audience); anything else is
    /// inactive, so it cannot probe others' tokens.
    pub async fn introspect(&self, auth: ClientAuth, token: &str) -> Result<Introspection, AuthError> {
        let app = self.authenticate_client(&auth).await?;
        let now = self.clock.now();
        if let Some(claims) = self.tokens.inspect(token, now) {
            return self.introspect_access(&app, claims, now).await;
        }
        if let Some(hash) = RefreshTokenHash::of_presented(token) {
            return self.introspect_refresh(&app, &hash, now).await;
        }
        Ok(Introspection::Inactive)
    }

    async fn introspect_access(
        &self,
        app: &StoredClient,
        mut claims: Map<String, Value>,
        now: UnixTime,
    ) -> Result<Introspection, AuthError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let ours = text("client_id").is_some_and(|c| c == app.id.to_string());
        let meant_for = app
            .audience
            .as_deref()
            .is_some_and(|a| a != self.tokens.audience() && text("aud").as_deref() == Some(a));
        if !ours && !meant_for {
            return Ok(Introspection::Inactive);
        }
        // A user's token is live while its session is.
        if let Some(sid) = text("sid") {
            let Ok(sid) = sid.parse::<SessionId>() else {
                return Ok(Introspection::Inactive);
            };
            match self.store.session_with_user(sid).await? {
                Some((session, user))
                    if session.is_live(now) && user.is_active && text("sub") == Some(user.id.to_string()) =>
                {
                    claims.insert("username".into(), json!(user.username.as_str()));
                }
                _ => return Ok(Introspection::Inactive),
            }
        }
        claims.remove("type");
        claims.insert("active".into(), json!(true));
        claims.insert("token_type".into(), json!("Bearer"));
        Ok(Introspection::Active(claims))
    }

    async fn introspect_refresh(
        &self,
        app: &StoredClient,
        hash: &RefreshTokenHash,
        now: UnixTime,
    ) -> Result<Introspection, AuthError> {
        let Some(stored) = self.store.refresh_token(hash).await? else {
            return Ok(Introspection::Inactive);
        };
        if stored.spent || now >= stored.expires_at {
            return Ok(Introspection::Inactive);
        }
        match self.store.session_with_user(stored.session_id).await? {
            Some((session, user)) if session.is_live(now) && user.is_active => {
                let Some(granted) = session.client.filter(|c| c.id == app.id) else {
                    return Ok(Introspection::Inactive);
                };
                let mut claims = Map::new();
                claims.insert("active".into(), json!(true));
                claims.insert("token_type".into(), json!("refresh_token"));
                claims.insert("client_id".into(), json!(app.id.to_string()));
                claims.insert("scope".into(), json!(Scope::join(&granted.scopes)));
                claims.insert("sub".into(), json!(user.id.to_string()));
                claims.insert("username".into(), json!(user.username.as_str()));
                claims.insert("exp".into(), json!(stored.expires_at.0));
                claims.insert("sid".into(), json!(session.id.to_string()));
                claims.insert("iss".into(), json!(self.provider.issuer));
                Ok(Introspection::Active(claims))
            }
            _ => Ok(Introspection::Inactive),
        }
    }

    /// RFC 7009: an authenticated client gives up one of its tokens; its session (and
    /// every token of it) ends. Unknown tokens, and other clients' tokens, are no-ops
    /// (the answer is the same).
    pub async fn revoke_token(&self, auth: ClientAuth, token: &str, client: &ClientInfo) -> Result<(), AuthError> {
        let app = self.authenticate_client(&auth).await?;
        let now = self.clock.now();
        let session = if let Some(claims) = self.tokens.inspect(token, now) {
            let issued_to_app = claims.get("client_id").and_then(Value::as_str) == Some(&app.id.to_string());
            claims
                .get("sid")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<SessionId>().ok())
                .filter(|_| issued_to_app)
        } else if let Some(hash) = RefreshTokenHash::of_presented(token) {
            self.store.refresh_token(&hash).await?.map(|t| t.session_id)
        } else {
            None
        };
        let Some(id) = session else { return Ok(()) };
        if let Some((record, _)) = self.store.session_with_user(id).await?
            && record.client.as_ref().is_some_and(|c| c.id == app.id)
            && self.store.revoke_session(record.user_id, id, now).await?
        {
            self.events
                .record(AuthEvent::SessionRevoked, Some(record.user_id), Some(id), client);
        }
        Ok(())
    }
}
