//! The applications registered with the provider (operators only: the CLI and
//! `/admin/clients`). The rules: a confidential client gets a secret, shown once and
//! stored as its SHA-256 (256 random bits: a slow hash would add nothing); a public one
//! (a SPA, a mobile app) has none and must use PKCE; at least one redirect URI, each
//! matched exactly later; scopes default to `openid profile email`.

use crate::auth::{AuthError, AuthService};
use crate::crypto::tokens::ClientSecret;
use crate::domain::{ClientId, ClientName, RedirectUri, Scope, UnixTime};
use crate::store::StoredClient;

/// The scopes a client may ask for when none are given.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// A new application.
#[derive(Clone, Debug)]
pub struct ClientRegistration {
    pub name: ClientName,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// `None`: [`DEFAULT_SCOPES`].
    pub scopes: Option<Vec<Scope>>,
    /// No secret: a SPA or a mobile app.
    pub public: bool,
    /// First-party: its users are not asked to consent.
    pub trusted: bool,
    /// The `aud` of its access tokens; `None`: its client_id.
    pub audience: Option<String>,
}

/// What changes of an application (`None`: unchanged).
pub type ClientChange = crate::store::ClientUpdate;

/// An application as operators see it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientView {
    pub id: ClientId,
    pub name: ClientName,
    pub public: bool,
    pub trusted: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub scopes: Vec<Scope>,
    pub audience: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl From<StoredClient> for ClientView {
    fn from(c: StoredClient) -> Self {
        Self {
            id: c.id,
            name: c.name,
            public: c.secret_hash.is_none(),
            trusted: c.trusted,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            scopes: c.scopes,
            audience: c.audience,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A client just registered: the secret is in this answer only.
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: ClientView,
    pub secret: Option<String>,
}

/// Each once, in the order given.
fn deduped<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// An audience: 1-200 printable characters, no space (an `aud` is one identifier).
pub fn parse_audience(raw: &str) -> Result<String, &'static str> {
    let ok = (1..=200).contains(&raw.chars().count()) && !raw.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("Audience must be 1 to 200 printable characters, with no space")
    }
}

impl AuthService {
    /// An application's tokens never carry the server's own audience (a resource server
    /// that accepts first-party tokens would take them for the user's), nor another
    /// application's client_id (that application's default audience: its API would take
    /// them for its own). Several applications may share an audience they name, as
    /// clients of one API do.
    async fn refuse_taken_audience(&self, audience: Option<&str>, own: Option<ClientId>) -> Result<(), AuthError> {
        let Some(a) = audience else { return Ok(()) };
        if a == self.tokens.audience() {
            return Err(AuthError::ServerAudience);
        }
        if let Ok(other) = a.parse::<ClientId>()
            && Some(other) != own
            && self.store.client(other).await?.is_some()
        {
            return Err(AuthError::OtherClientAudience);
        }
        Ok(())
    }

    /// Register an application: its id, and its secret (confidential clients), shown
    /// this once.
    pub async fn register_client(&self, r: ClientRegistration) -> Result<RegisteredClient, AuthError> {
        if r.redirect_uris.is_empty() {
            return Err(AuthError::NoRedirectUri);
        }
        self.refuse_taken_audience(r.audience.as_deref(), None).await?;
        if r.scopes.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthError::NoScope);
        }
        let now = self.clock.now();
        let (secret, secret_hash) = if r.public {
            (None, None)
        } else {
            let (secret, hash) = ClientSecret::generate().map_err(AuthError::internal)?;
            (Some(secret.expose().to_owned()), Some(hash))
        };
        let default_scopes = || DEFAULT_SCOPES.iter().filter_map(|s| Scope::parse(s).ok()).collect();
        let stored = StoredClient {
            id: ClientId::new(),
            name: r.name,
            secret_hash,
            redirect_uris: deduped(r.redirect_uris),
            post_logout_redirect_uris: deduped(r.post_logout_redirect_uris),
            scopes: deduped(r.scopes.unwrap_or_else(default_scopes)),
            trusted: r.trusted,
            audience: r.audience,
            created_at: now,
            updated_at: now,
        };
        self.store.create_client(stored.clone()).await?;
        // Published in the JWKS from now on: a relying party fetches the keys when it
        // reads discovery, before its first id_token.
        self.id_token_keys().await?;
        tracing::info!(client_id = %stored.id, name = stored.name.as_str(), "OAuth client registered");
        Ok(RegisteredClient {
            client: stored.into(),
            secret,
        })
    }

    /// Every application, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientView>, AuthError> {
        let all = self.store.list_clients().await?;
        Ok(all.into_iter().map(ClientView::from).collect())
    }

    /// One application.
    pub async fn client(&self, id: ClientId) -> Result<ClientView, AuthError> {
        self.store
            .client(id)
            .await?
            .map(ClientView::from)
            .ok_or(AuthError::NotFound)
    }

    /// Change an application: the fields given (and only those: two changes at once to
    /// different fields both stand).
    pub async fn change_client(&self, id: ClientId, change: ClientChange) -> Result<ClientView, AuthError> {
        if change.redirect_uris.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthError::NoRedirectUri);
        }
        if change.scopes.as_ref().is_some_and(Vec::is_empty) {
            return Err(AuthError::NoScope);
        }
        self.refuse_taken_audience(change.audience.as_ref().and_then(Option::as_deref), Some(id))
            .await?;
        let fields: Vec<&str> = [
            ("name", change.name.is_some()),
            ("redirect_uris", change.redirect_uris.is_some()),
            ("post_logout_redirect_uris", change.post_logout_redirect_uris.is_some()),
            ("scopes", change.scopes.is_some()),
            ("trusted", change.trusted.is_some()),
            ("audience", change.audience.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        let change = ClientChange {
            redirect_uris: change.redirect_uris.map(deduped),
            post_logout_redirect_uris: change.post_logout_redirect_uris.map(deduped),
            scopes: change.scopes.map(deduped),
            ..change
        };
        if !self.store.update_client(id, change, self.clock.now()).await? {
            return Err(AuthError::NotFound);
        }
        tracing::info!(client_id = %id, changed = %fields.join(","), "OAuth client changed");
        self.client(id).await
    }

    /// A new secret for a confidential application (the old one stops working at
    /// once), shown this once.
    pub async fn rotate_client_secret(&self, id: ClientId) -> Result<String, AuthError> {
        let client = self.store.client(id).await?.ok_or(AuthError::NotFound)?;
        if client.secret_hash.is_none() {
            return Err(AuthError::PublicClient);
        }
        let (secret, hash) = ClientSecret::generate().map_err(AuthError::internal)?;
        if !self.store.set_client_secret(id, hash, self.clock.now()).await? {
            return Err(AuthError::NotFound);
        }
        tracing::info!(client_id = %id, "OAuth client secret rotated");
        Ok(secret.expose().to_owned())
    }

    /// Remove an application: its codes and consents go, every session opened for it
    /// ends (its tokens die on every instance).
    pub async fn delete_client(&self, id: ClientId) -> Result<(), AuthError> {
        let Some(revoked) = self.store.delete_client(id, self.clock.now()).await? else {
            return Err(AuthError::NotFound);
        };
        tracing::info!(client_id = %id, sessions = revoked.len(), "OAuth client deleted");
        Ok(())
    }
}
