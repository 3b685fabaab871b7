//! A layer over any `Store` that times each operation into
//! `tokengate_store_operation_duration_seconds{op}`, counts failures, and traces each
//! as a `db.<op>` span. It sits below the cache, so it measures what reaches the
//! database, and it is where an unreachable database is noticed: while it is known
//! down ([`Health`]), every call fails at once.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument as _;

use super::health::Health;
use super::{
    Holders, ImportedUser, LoggedRevocation, NewPassword, NewSession, NewUser, PoolStats, RotateRequest, Rotation,
    SessionOpen, SessionRecord, Store, StoreError, StoredKey, StoredRefreshToken, UserChanged, UserRecord, UserUpdate,
    UserWrite,
};
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::tokens::RefreshTokenHash;
use crate::domain::{Email, Role, SessionId, UnixTime, UserId, Username};
use crate::metrics::{DATABASE_UP, STORE_DURATION, STORE_ERRORS};

pub struct MeteredStore {
    inner: Arc<dyn Store>,
    health: Arc<Health>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        metrics::gauge!(DATABASE_UP).set(1.0);
        Self {
            inner,
            health: Arc::default(),
        }
    }

    /// After a failed call: a lost database is confirmed in the background.
    fn watch<T>(&self, out: &Result<T, StoreError>) {
        if matches!(out, Err(StoreError::Unavailable(_))) {
            self.health.suspect(&self.inner);
        }
    }
}

fn observe(op: &'static str, started: Instant, failed: bool) {
    metrics::histogram!(STORE_DURATION, "op" => op).record(started.elapsed().as_secs_f64());
    if failed {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// Each listed method: call the inner store, time it under the method's name.
macro_rules! metered {
    ($(async fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        #[async_trait]
        impl Store for MeteredStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    if self.health.is_down() {
                        return Err(Health::refusal());
                    }
                    let started = Instant::now();
                    let span = tracing::debug_span!(
                        "db",
                        otel.name = concat!("db.", stringify!($name)),
                        db.operation.name = stringify!($name),
                    );
                    let out = self.inner.$name($($arg),*).instrument(span).await;
                    observe(stringify!($name), started, out.is_err());
                    self.watch(&out);
                    out
                }
            )*

            /// Readiness: the known state while down, else one ping bounded by
            /// [`super::health::PING_TIMEOUT`].
            async fn ping(&self) -> Result<(), StoreError> {
                if self.health.is_down() {
                    return Err(Health::refusal());
                }
                let out = Health::ping(self.inner.as_ref()).await;
                self.watch(&out);
                out
            }

            async fn close(&self) {
                self.inner.close().await;
            }

            fn pool_stats(&self) -> Vec<PoolStats> {
                self.inner.pool_stats()
            }
        }
    };
}

metered! {
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError>;
    async fn holders(&self, username: &Username, email: &Email) -> Result<Holders, StoreError>;
    async fn insert_users(&self, users: Vec<ImportedUser>) -> Result<(), StoreError>;
    async fn upgrade_password_hash(&self, user: UserId, old: &PasswordHashString, new: PasswordHashString) -> Result<bool, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, StoreError>;
    async fn update_user(&self, id: UserId, update: UserUpdate, guard: Option<&Role>, now: UnixTime) -> Result<UserWrite<UserChanged>, StoreError>;
    async fn delete_user(&self, id: UserId, guard: Option<&Role>, now: UnixTime) -> Result<UserWrite<Vec<SessionId>>, StoreError>;
    async fn create_session(&self, session: NewSession) -> Result<SessionOpen, StoreError>;
    async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError>;
    async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError>;
    async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError>;
    async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError>;
    async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError>;
    async fn revoke_session_of_refresh(&self, user: Option<UserId>, refresh: &RefreshTokenHash, now: UnixTime) -> Result<Option<(UserId, SessionId)>, StoreError>;
    async fn revoke_sessions(&self, user: UserId, keep: Option<SessionId>, now: UnixTime) -> Result<Vec<SessionId>, StoreError>;
    async fn change_password(&self, change: NewPassword) -> Result<Option<Vec<SessionId>>, StoreError>;
    async fn server_secret(&self, name: &str, fresh: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, StoreError>;
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    async fn replace_key_material(&self, kid: &str, private_der: Vec<u8>) -> Result<bool, StoreError>;
    async fn replace_server_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError>;
    async fn add_active_key(&self, key: StoredKey) -> Result<(), StoreError>;
    async fn rotate_key(&self, key: StoredKey, now: UnixTime, retires_at: UnixTime) -> Result<(), StoreError>;
    async fn retire_key_at(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError>;
    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
    async fn revocations_after(&self, seq: i64) -> Result<Vec<LoggedRevocation>, StoreError>;
    async fn purge_revocations(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
}
