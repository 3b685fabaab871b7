//! The PostgreSQL backend: one database shared by any number of instances.
//!
//! The flows are `store::sql`'s; here are the connections, the row locks the statements
//! that race across instances take, and the refresh rotation as one statement.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Pool, Postgres};

use super::sql::db::{Db as _, Param, portable_db};
use super::sql::{Dialect, Rows, SESSION_COLUMNS, SqlStore, USER_COLUMNS, err, rotation_params};
use super::{RotateRequest, Rotation, StoreError};

portable_db!(Postgres);

/// PostgreSQL's ways: one pool for reads and writes, row locks where instances race.
pub struct PgDialect {
    /// To open a connection of its own (outside the pool) when asked whether the server
    /// answers at all.
    opts: PgConnectOptions,
}

/// A store on a PostgreSQL database.
pub type PgStore = SqlStore<PgDialect>;

/// A refresh rotation as one statement ($1 now, $2 the presented token's hash, $3 the
/// successor's wanted expiry, $4 the successor's hash); a row (the session and user as
/// they were before) only if the presented token was spent here. Nothing outlives the
/// session's absolute end and a dead session is never extended: the session's expiry is
/// capped first and the successor takes it.
static ROTATE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH spent AS (
            UPDATE refresh_tokens SET used_at = $1
            WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
            RETURNING session_id
         ), moved AS (
            UPDATE sessions SET last_used_at = $1, expires_at = least($3, coalesce(max_expires_at, $3))
            WHERE id = (SELECT session_id FROM spent) AND revoked_at IS NULL AND expires_at > $1
            RETURNING id, expires_at
         ), successor AS (
            INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
            SELECT $4, s.id, $1, coalesce(m.expires_at, s.expires_at)
            FROM spent JOIN sessions s ON s.id = spent.session_id LEFT JOIN moved m ON m.id = s.id
            RETURNING session_id
         )
         SELECT {SESSION_COLUMNS}, {USER_COLUMNS}
         FROM successor JOIN sessions s ON s.id = successor.session_id JOIN users u ON u.id = s.user_id"
    )
});

impl PgStore {
    /// Connect to `url` with at most `pool_size` connections.
    pub async fn connect(url: &str, pool_size: u32, connect_timeout: Duration) -> Result<Self, StoreError> {
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Backend(e.to_string()))?;
        // NOTICEs (a second instance's "relation _sqlx_migrations already exists") are
        // not worth a log line; warnings and errors still are.
        let opts = opts.options([("client_min_messages", "warning")]);
        // One connection first, so that a refusal names its cause (refused, unknown
        // host, authentication); the pool would only say that it timed out.
        answer(&opts, connect_timeout).await?;
        let pool: PgPool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(connect_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(err::<PgDialect>)?;
        Ok(SqlStore::new(PgDialect { opts }, pool, None))
    }
}

/// One connection of its own, opened and asked `SELECT 1` within `within`: whether
/// the server answers, whatever the pool is doing.
async fn answer(opts: &PgConnectOptions, within: Duration) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let attempt = async {
        let mut conn = PgConnection::connect_with(opts).await?;
        Postgres::exec(&mut conn, "SELECT 1", &[]).await?;
        conn.close().await
    };
    match tokio::time::timeout(within, attempt).await {
        // "Too many connections" is an answer: the server is up, and busy.
        Ok(Err(sqlx::Error::Database(d))) if d.code().as_deref() == Some("53300") => Ok(()),
        Ok(r) => r.map_err(err::<PgDialect>),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            within.as_millis()
        ))),
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type DB = Postgres;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_SHARE: &'static str = " FOR SHARE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const HOLDS_ROLE: &'static str = "(u.roles::jsonb ? $1)";
    const NON_ASCII_EMAIL: &'static str = "u.email ~ '[^ -~]'";
    /// Dated by the database's clock where the caller's lags: an instance whose clock is
    /// behind cannot date a row into the past (and have it purged early).
    const LOG_REVOCATION: &'static str = "INSERT INTO revocations (session_id, user_id, client_id, created_at)
         VALUES ($1, $2, $3, greatest($4, floor(extract(epoch FROM now()))::bigint))";

    const POOLS: &'static [&'static str] = &["postgres"];

    /// A lost connection (08...), serialisation failures, deadlocks, too many
    /// connections, a server shutting down or starting.
    fn retryable_code(code: &str) -> bool {
        code.starts_with("08") || matches!(code, "40001" | "40P01" | "53300" | "57P01" | "57P03")
    }

    /// sqlx holds a PostgreSQL advisory lock while it migrates: instances starting
    /// together migrate once.
    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
        &MIGRATOR
    }

    /// One transaction-wide advisory lock for every change guarded by a role.
    async fn lock_guarded_changes(c: &mut PgConnection) -> Result<(), StoreError> {
        Postgres::exec(c, "SELECT pg_advisory_xact_lock(hashtext('tokengate:role-guard'))", &[])
            .await
            .map_err(err::<Self>)?;
        Ok(())
    }

    async fn rotate_refresh(pool: &Pool<Postgres>, req: RotateRequest) -> Result<Rotation, StoreError> {
        let mut c = pool.acquire().await.map_err(err::<Self>)?;
        // One statement, so one round trip and its own transaction. A concurrent
        // rotation of the same token waits on the row lock, then re-checks
        // `used_at IS NULL` and finds it spent: one winner.
        let params = rotation_params(&req);
        if let Some(row) = Postgres::optional(&mut c, &ROTATE_SQL, &params)
            .await
            .map_err(err::<Self>)?
        {
            return Rows::<Self>::spent(&row);
        }
        // Nothing spent: a new statement (a new snapshot, so a rotation that won a race
        // against this one is seen) says whether it had been spent before.
        let prior = Postgres::optional(
            &mut c,
            "SELECT r.used_at, s.id AS s_id, s.user_id AS s_user_id
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
            &[Param::Text(req.presented.as_str())],
        )
        .await
        .map_err(err::<Self>)?;
        Rows::<Self>::not_spent(prior.as_ref())
    }

    async fn reachable(&self, within: Duration) -> Option<Result<(), StoreError>> {
        Some(answer(&self.opts, within).await)
    }
}
