//! What one SQL database brings to the shared flows, and how its errors are reported.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::db::{self, Db};
use crate::store::{RotateRequest, Rotation, StoreError};

/// What one SQL database brings to the shared flows.
#[async_trait]
pub trait Dialect: Send + Sync + 'static {
    type DB: Db;
    /// Appended to a read of the row a transaction goes on to change ("FOR UPDATE"
    /// where rows are locked; nothing where writers are serialised anyway).
    const FOR_UPDATE: &'static str;
    /// Appended to a read of a row that must not change before the commit.
    const FOR_SHARE: &'static str;
    /// Appended to a read of rows to claim: rows another transaction holds are passed
    /// over instead of waited for (nothing where writers are serialised anyway).
    const SKIP_LOCKED: &'static str;
    /// A condition on `users u`: the user holds role `$1`.
    const HOLDS_ROLE: &'static str;
    /// A condition on `users u`: the stored address has a character outside printable
    /// ASCII.
    const NON_ASCII_EMAIL: &'static str;
    /// A revocation-log row: `$1` session, `$2` user, `$3` the caller's clock.
    const LOG_REVOCATION: &'static str;

    /// The names of the read and the write pool, for metrics (one name: one pool).
    const POOLS: &'static [&'static str];
    /// Whether the database's error code says a retry may pass (a busy file, a
    /// serialisation failure, a server going down).
    fn retryable_code(code: &str) -> bool;
    /// The embedded migrations of this backend's schema.
    fn migrator() -> &'static sqlx::migrate::Migrator;
    /// Serialise changes guarded by a role, before the user row is read (see
    /// [`super::SqlStore::leaves_no_holder`]).
    async fn lock_guarded_changes(c: &mut <Self::DB as Database>::Connection) -> Result<(), StoreError>;
    /// See [`crate::store::Sessions::rotate_refresh`]; `pool` is the write pool.
    async fn rotate_refresh(pool: &Pool<Self::DB>, req: RotateRequest) -> Result<Rotation, StoreError>;
    /// A way of its own to ask whether the database answers at all (see
    /// [`crate::store::Lifecycle::reachable`]); `None`: a ping through the pool tells.
    async fn reachable(&self, within: Duration) -> Option<Result<(), StoreError>> {
        let _ = within;
        None
    }
}

/// A database error as the store reports it.
pub(crate) fn err<D: Dialect>(e: sqlx::Error) -> StoreError {
    // No connection at all is retryable with every driver; past that, the code says.
    let retryable = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| D::retryable_code(&c)),
        _ => false,
    };
    db::classified(e, retryable)
}
