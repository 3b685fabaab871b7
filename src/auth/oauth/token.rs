//! The token endpoint's rules (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.6; OpenID
//! Connect Core §3.1.3): who the client is, and what each grant gives it.

use std::sync::Arc;

use subtle::ConstantTimeEq as _;

use super::{OAuthError, OAuthErrorCode, has_scope};
use crate::auth::sessions::net_of;
use crate::auth::{AppIssue, AppSignIn, AuthError, AuthService, TokenPair};
use crate::crypto::id_token::{self, IdTokenClaims};
use crate::crypto::keys::KeyRing;
use crate::crypto::pkce;
use crate::crypto::tokens::{AuthCodeHash, ClientClaims, ClientSecretHash, RefreshToken, RefreshTokenHash};
use crate::domain::{Authentication, ClientId, Scope, SessionId};
use crate::events::{AuthEvent, ClientInfo};
use crate::limits::LimitKey;
use crate::store::{CodeTaken, NewSession, SessionClient, SessionOpen, StoredClient, UserRecord};

/// How the client authenticated (RFC 6749 §2.3.1): HTTP Basic, or the body's
/// `client_id` and `client_secret`; a public client sends its id only.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// A token request's grant.
#[derive(Debug)]
pub enum TokenGrant {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
    },
    /// Trusted confidential applications only: a password, checked as `/auth/login`
    /// checks it, for a session of the application's.
    Password {
        username: String,
        password: String,
        scope: Option<String>,
    },
}

/// What the token endpoint answers (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug)]
pub struct OAuthTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// Space-separated; `None` for first-party tokens.
    pub scope: Option<String>,
}

impl From<TokenPair> for OAuthTokens {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            expires_in: p.expires_in,
            refresh_token: Some(p.refresh_token.expose().to_owned()),
            id_token: p.id_token,
            scope: p.scopes.as_deref().map(Scope::join),
        }
    }
}

fn oauth(code: OAuthErrorCode, description: &str) -> AuthError {
    AuthError::OAuth(OAuthError::new(code, description))
}

/// The scopes `raw` asks for, each among `allowed` (when known), or `invalid_scope`
/// saying `beyond`.
fn asked_within(raw: &str, allowed: Option<&[Scope]>, beyond: &str) -> Result<Vec<Scope>, AuthError> {
    let asked =
        super::authorize::parse_scopes(raw).ok_or_else(|| oauth(OAuthErrorCode::InvalidScope, "scope is malformed"))?;
    match allowed {
        Some(allowed) if asked.iter().any(|s| !allowed.contains(s)) => Err(oauth(OAuthErrorCode::InvalidScope, beyond)),
        _ => Ok(asked),
    }
}

fn invalid_grant(description: &str) -> AuthError {
    oauth(OAuthErrorCode::InvalidGrant, description)
}

impl AuthService {
    /// The keys that sign and verify id_tokens: made at the provider's first use (by
    /// this instance or another), then kept in memory and reloaded with the others.
    pub async fn id_token_keys(&self) -> Result<Arc<KeyRing>, AuthError> {
        if let Some(ring) = self.existing_id_token_keys().await? {
            return Ok(ring);
        }
        self.keys
            .ensure_id_token_key(self.clock.now())
            .await
            .map_err(AuthError::internal)?;
        self.existing_id_token_keys()
            .await?
            .ok_or_else(|| AuthError::internal("no id_token key after making one"))
    }

    /// The id_token keys if the provider made one (the JWKS publishes them from then
    /// on): a read until they exist.
    pub async fn existing_id_token_keys(&self) -> Result<Option<Arc<KeyRing>>, AuthError> {
        if let Some(ring) = self.loaded_id_token_keys() {
            return Ok(Some(ring));
        }
        self.reload_id_token_keys().await.map_err(AuthError::internal)
    }

    pub(crate) fn has_loaded_id_token_keys(&self) -> bool {
        self.loaded_id_token_keys().is_some()
    }

    fn loaded_id_token_keys(&self) -> Option<Arc<KeyRing>> {
        self.id_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Read the id_token keys again (after a rotation anywhere); the ring, if any.
    pub(crate) async fn reload_id_token_keys(&self) -> Result<Option<Arc<KeyRing>>, crate::auth::keys::KeyError> {
        let Some(ring) = self.keys.id_token_ring(self.clock.now()).await? else {
            return Ok(None);
        };
        let ring = Arc::new(ring);
        *self.id_keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ring.clone());
        Ok(Some(ring))
    }

    /// Who is asking: a registered client, with its secret if it has one.
    pub(super) async fn authenticate_client(&self, auth: &ClientAuth) -> Result<StoredClient, AuthError> {
        let refused = |description: &str| {
            AuthError::OAuth(OAuthError {
                code: OAuthErrorCode::InvalidClient,
                description: description.to_owned(),
                basic: auth.basic,
            })
        };
        let raw = auth
            .client_id
            .as_deref()
            .ok_or_else(|| refused("client authentication is required"))?;
        // One answer for an unknown client and a wrong secret.
        let failed = "client authentication failed";
        let id: ClientId = raw.parse().map_err(|_| refused(failed))?;
        let client = self.store.client(id).await?.ok_or_else(|| refused(failed))?;
        match (&client.secret_hash, auth.client_secret.as_deref()) {
            (Some(stored), Some(presented)) => {
                let presented = ClientSecretHash::of(presented);
                if bool::from(presented.as_str().as_bytes().ct_eq(stored.as_str().as_bytes())) {
                    Ok(client)
                } else {
                    Err(refused(failed))
                }
            }
            (Some(_), None) => Err(refused("this client must authenticate with its secret")),
            (None, Some(_)) => Err(refused("a public client has no secret")),
            (None, None) => Ok(client),
        }
    }

    /// A token request: the client authenticated, then its grant.
    pub async fn token(
        &self,
        auth: ClientAuth,
        grant: TokenGrant,
        client: &ClientInfo,
    ) -> Result<OAuthTokens, AuthError> {
        match grant {
            TokenGrant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                self.limit(LimitKey::RefreshIp(net_of(client)), AuthEvent::RefreshLimited, client)
                    .await?;
                let app = self.authenticate_client(&auth).await.inspect_err(|_| {
                    self.events.record(AuthEvent::TokenRejected, None, None, client);
                })?;
                self.exchange_code(&app, &code, redirect_uri.as_deref(), code_verifier.as_deref(), client)
                    .await
                    .inspect_err(|e| {
                        if matches!(e, AuthError::OAuth(_)) {
                            self.events.record(AuthEvent::TokenRejected, None, None, client);
                        }
                    })
            }
            TokenGrant::RefreshToken { refresh_token, scope } => {
                let app = self.authenticate_client(&auth).await?;
                // A scope is checked before the token is spent: a refused one costs the
                // client nothing.
                let narrowed = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
                    None => None,
                    Some(raw) => Some(self.narrowed_scopes(&app, &refresh_token, raw).await?),
                };
                let keys = self.id_token_keys().await?;
                let issue = AppIssue {
                    client: &app,
                    id_keys: &keys,
                    nonce: None,
                    narrowed: narrowed.as_deref(),
                };
                let pair = self.refresh_as(&refresh_token, Some(&issue), client).await?;
                Ok(pair.into())
            }
            TokenGrant::ClientCredentials { scope } => {
                self.limit(LimitKey::RefreshIp(net_of(client)), AuthEvent::RefreshLimited, client)
                    .await?;
                let app = self.authenticate_client(&auth).await?;
                self.client_credentials(&app, scope.as_deref(), client)
            }
            TokenGrant::Password {
                username,
                password,
                scope,
            } => {
                let app = self.authenticate_client(&auth).await?;
                // Trusted and confidential: the endpoint is open to any origin, and a
                // public client's id alone would let any page collect passwords.
                if !app.trusted || app.secret_hash.is_none() {
                    return Err(oauth(
                        OAuthErrorCode::UnauthorizedClient,
                        "the password grant is for trusted confidential clients only",
                    ));
                }
                let scopes = match scope.as_deref().filter(|s| !s.trim().is_empty()) {
                    None => app.scopes.clone(),
                    Some(raw) => asked_within(raw, Some(&app.scopes), "scope is not allowed for this client")?,
                };
                let sign_in = AppSignIn {
                    id_keys: self.id_token_keys().await?,
                    client: app,
                    scopes,
                };
                let pair = self
                    .login_for(&username, &password, None, None, Some(sign_in), client)
                    .await?;
                Ok(pair.into())
            }
        }
    }

    /// The scopes a refresh asks for, if all were granted to the token's session by
    /// this client; read before the token is spent. A token that is not this client's
    /// is left to the refresh itself to refuse.
    async fn narrowed_scopes(&self, app: &StoredClient, presented: &str, raw: &str) -> Result<Vec<Scope>, AuthError> {
        let granted = match RefreshTokenHash::of_presented(presented) {
            Some(hash) => match self.store.refresh_token(&hash).await? {
                Some(t) => self
                    .store
                    .session_with_user(t.session_id)
                    .await?
                    .and_then(|(s, _)| s.client)
                    .filter(|c| c.id == app.id)
                    .map(|c| c.scopes),
                None => None,
            },
            None => None,
        };
        asked_within(raw, granted.as_deref(), "scope exceeds what was granted")
    }

    /// `authorization_code`: the code, once, by the client, redirect URI and verifier
    /// it was issued for. A code that comes back revokes what its first use issued.
    async fn exchange_code(
        &self,
        app: &StoredClient,
        presented: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        client: &ClientInfo,
    ) -> Result<OAuthTokens, AuthError> {
        let hash = AuthCodeHash::of_presented(presented).ok_or_else(|| invalid_grant("unknown or expired code"))?;
        let now = self.clock.now();
        let session_id = SessionId::new();
        let code = match self.store.take_code(&hash, session_id, now).await? {
            CodeTaken::Taken(code) => code,
            CodeTaken::Unknown => return Err(invalid_grant("unknown or expired code")),
            CodeTaken::Reused { user, session } => {
                if let Some(s) = session {
                    self.store.revoke_session(user, s, now).await?;
                }
                self.events.record(AuthEvent::CodeReuse, Some(user), session, client);
                return Err(invalid_grant(
                    "code already used; the tokens issued with it are revoked",
                ));
            }
        };
        // The code is spent from here: a thief's attempt burns it for the real client too.
        if code.client != app.id {
            return Err(invalid_grant("code was issued to another client"));
        }
        if redirect_uri != Some(code.redirect_uri.as_str()) {
            return Err(invalid_grant("redirect_uri does not match the authorization request"));
        }
        let Some(verifier) = verifier else {
            return Err(invalid_grant("code_verifier is required (PKCE)"));
        };
        if !pkce::verifies(verifier, &code.code_challenge) {
            return Err(invalid_grant("code_verifier does not match the code_challenge"));
        }
        let changed = || invalid_grant("the user changed since the code was issued");
        let user = self.store.user_by_id(code.user).await?.ok_or_else(changed)?;
        if !user.is_active || user.security_stamp != code.user_stamp {
            return Err(changed());
        }
        let (refresh, refresh_hash) = RefreshToken::generate().map_err(AuthError::internal)?;
        let (expires_at, max_expires_at) = self.sessions.expiries(now);
        let session = NewSession {
            id: session_id,
            user_id: user.id,
            expected_stamp: code.user_stamp,
            now,
            expires_at,
            max_expires_at,
            user_agent: client.user_agent.clone(),
            ip: self.sessions.ip.keep(client.ip),
            // What the user sees in their session list: the application's name.
            device_name: Some(app.name.as_str().chars().take(64).collect()),
            refresh_hash,
            auth: code.auth,
            client: Some(SessionClient {
                id: app.id,
                scopes: code.scopes.clone(),
            }),
            from_code: Some(hash),
        };
        if self.store.create_session(session).await? == SessionOpen::UserChanged {
            // The user changed, or the code came back meanwhile: nothing opens.
            return Err(invalid_grant("code already used, or the user changed"));
        }
        self.events
            .record(AuthEvent::CodeExchanged, Some(user.id), Some(session_id), client);
        let key = if has_scope(&code.scopes, "openid") {
            Some(self.id_token_keys().await?)
        } else {
            None
        };
        let pair = match &key {
            Some(key) => self.app_pair(
                &user,
                session_id,
                code.auth,
                &code.scopes,
                refresh,
                &AppIssue {
                    client: app,
                    id_keys: key,
                    nonce: code.nonce.as_deref(),
                    narrowed: None,
                },
            )?,
            None => self.app_tokens_without_id(&user, session_id, code.auth, &code.scopes, refresh, app)?,
        };
        Ok(pair.into())
    }

    /// `client_credentials`: a confidential client's token for itself, with the
    /// scopes it asks for among its own (none about a user).
    fn client_credentials(
        &self,
        app: &StoredClient,
        scope: Option<&str>,
        client: &ClientInfo,
    ) -> Result<OAuthTokens, AuthError> {
        if app.secret_hash.is_none() {
            return Err(oauth(
                OAuthErrorCode::UnauthorizedClient,
                "a public client cannot use client_credentials",
            ));
        }
        let asked = super::authorize::parse_scopes(scope.unwrap_or_default())
            .ok_or_else(|| oauth(OAuthErrorCode::InvalidScope, "scope is malformed"))?;
        if let Some(s) = asked
            .iter()
            .find(|s| !app.scopes.contains(s) || USER_SCOPES.contains(&s.as_str()))
        {
            return Err(oauth(
                OAuthErrorCode::InvalidScope,
                &format!(
                    "scope {:?} is not available to this client on its own behalf",
                    s.as_str()
                ),
            ));
        }
        let scope = Scope::join(&asked);
        let signed = self.tokens.sign_client_credentials(
            &ClientClaims {
                client_id: app.id.to_string(),
                scope: scope.clone(),
                audience: app.audience.clone(),
            },
            self.clock.now(),
        )?;
        self.events.record(AuthEvent::ClientToken, None, None, client);
        tracing::info!(client_id = %app.id, "OAuth client_credentials token issued");
        Ok(OAuthTokens {
            access_token: signed.token,
            expires_in: self.tokens.ttl_secs(),
            refresh_token: None,
            id_token: None,
            scope: Some(scope),
        })
    }

    /// An application's access token (its audience, `client_id`, `scope`; the user's
    /// roles only with the `roles` scope).
    fn app_access(
        &self,
        user: &UserRecord,
        session: SessionId,
        auth: Authentication,
        scopes: &[Scope],
        app: &StoredClient,
    ) -> Result<String, AuthError> {
        let roles: &[crate::domain::Role] = if has_scope(scopes, "roles") { &user.roles } else { &[] };
        let signed = self.tokens.sign_for_client(
            user.id,
            &user.username,
            session,
            roles,
            &auth,
            &ClientClaims {
                client_id: app.id.to_string(),
                scope: Scope::join(scopes),
                audience: app.audience.clone(),
            },
            self.clock.now(),
        )?;
        Ok(signed.token)
    }

    /// Tokens for an application whose grant has no `openid`: no id_token.
    fn app_tokens_without_id(
        &self,
        user: &UserRecord,
        session: SessionId,
        auth: Authentication,
        scopes: &[Scope],
        refresh: RefreshToken,
        app: &StoredClient,
    ) -> Result<TokenPair, AuthError> {
        Ok(TokenPair {
            access_token: self.app_access(user, session, auth, scopes, app)?,
            refresh_token: refresh,
            expires_in: self.tokens.ttl_secs(),
            session_id: session,
            device_token: None,
            id_token: None,
            scopes: Some(scopes.to_vec()),
        })
    }

    /// Tokens for an application: its access token, and an id_token when `openid` was
    /// granted.
    pub(crate) fn app_pair(
        &self,
        user: &UserRecord,
        session: SessionId,
        auth: Authentication,
        scopes: &[Scope],
        refresh: RefreshToken,
        issue: &AppIssue<'_>,
    ) -> Result<TokenPair, AuthError> {
        let mut pair = self.app_tokens_without_id(user, session, auth, scopes, refresh, issue.client)?;
        if has_scope(scopes, "openid") {
            let now = self.clock.now();
            let claims = IdTokenClaims {
                iss: self.provider.issuer.clone(),
                sub: user.id.to_string(),
                aud: issue.client.id.to_string(),
                azp: issue.client.id.to_string(),
                exp: now.plus(self.tokens.ttl_secs()).0,
                iat: now.0,
                auth_time: auth.at.0,
                nonce: issue.nonce.map(str::to_owned),
                amr: auth.amr(),
                sid: session.to_string(),
                preferred_username: has_scope(scopes, "profile").then(|| user.username.as_str().to_owned()),
                email: has_scope(scopes, "email").then(|| user.email.as_str().to_owned()),
                email_verified: has_scope(scopes, "email").then_some(user.email_verified),
                roles: has_scope(scopes, "roles").then(|| user.roles.iter().map(|r| r.as_str().to_owned()).collect()),
            };
            pair.id_token = Some(id_token::sign(issue.id_keys.signing(now), &claims)?);
        }
        Ok(pair)
    }
}

/// Scopes about a user: a client alone (`client_credentials`) has none of them.
const USER_SCOPES: [&str; 5] = ["openid", "profile", "email", "roles", "offline_access"];
