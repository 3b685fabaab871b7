//! Every rule of the product, with no HTTP and no SQL: what login issues, how refresh
//! rotates, what logout kills. Handlers call one method here each.

mod account;
mod admin;
pub mod keys;
mod sessions;

pub use sessions::SessionView;

use std::sync::Arc;

use crate::clock::Clock;
use crate::crypto::passwords::{HashError, PasswordHasher};
use crate::crypto::tokens::{AccessToken, AccessTokens, RefreshToken, TokenError};
use crate::error::ApiError;
use crate::events::{AuthEvent, ClientInfo, emit};
use crate::state::{LimitKey, Limiter};
use crate::store::{SessionRecord, Store, StoreError, UserRecord};

/// A caller whose access token verified and whose session and account are live.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserRecord,
    pub session: SessionRecord,
    pub token: AccessToken,
}

impl Principal {
    /// A role counts only while both the token and the account carry it: a grant
    /// applies from the next login or refresh, a removal at once.
    pub fn has_role(&self, role: &str) -> bool {
        self.token.roles.iter().any(|r| r == role) && self.user.roles.iter().any(|r| r.as_str() == role)
    }

    /// The roles that count (see [`Principal::has_role`]).
    pub fn effective_roles(&self) -> Vec<&str> {
        self.user
            .roles
            .iter()
            .map(|r| r.as_str())
            .filter(|r| self.token.roles.iter().any(|t| t == r))
            .collect()
    }
}

/// What login and refresh hand out.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    pub expires_in: u64,
}

pub struct AuthService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    tokens: AccessTokens,
    limiter: Arc<dyn Limiter>,
    clock: Arc<dyn Clock>,
    refresh_ttl_secs: u64,
    keys: keys::KeyMode,
}

impl AuthService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        limiter: Arc<dyn Limiter>,
        clock: Arc<dyn Clock>,
        refresh_ttl_secs: u64,
        keys: keys::KeyMode,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            limiter,
            clock,
            refresh_ttl_secs,
            keys,
        }
    }

    /// Count an attempt against `key`; over the limit it is refused (and logged).
    async fn limit(&self, key: LimitKey, event: AuthEvent, client: &ClientInfo) -> Result<(), ApiError> {
        self.limiter.hit(&key).await.map_err(|retry| {
            emit(event, None, None, client);
            ApiError::RateLimited {
                retry_after_secs: retry.secs(),
            }
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Verify a bearer access token and its revocation state: the session is live and
    /// belongs to the token's user, and the user is active. One indexed read, no write.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, ApiError> {
        let now = self.clock.now();
        let token = self.tokens.verify(bearer, now).map_err(|e| {
            tracing::debug!(reason = %e, "access token refused");
            ApiError::InvalidToken
        })?;
        let (session, user) = self
            .store
            .session_with_user(token.session_id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        if session.user_id != token.user_id || !session.is_live(now) || !user.is_active {
            return Err(ApiError::InvalidToken);
        }
        Ok(Principal { user, session, token })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        ApiError::internal(e)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Rejected(_) => ApiError::InvalidToken,
            TokenError::Signing(m) => ApiError::Internal(m),
        }
    }
}
