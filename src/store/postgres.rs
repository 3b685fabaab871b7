//! The PostgreSQL backend: one database shared by any number of instances.
//!
//! Times are `timestamptz`, ids `uuid`, roles `text[]`; the conversions to the domain's
//! Unix seconds and id types happen in the SQL (`to_timestamp`, `extract(epoch ...)`,
//! `::uuid`, `::text`). Every multi-statement change is one transaction, and the
//! statements that race across instances take the row locks they need (see each).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, Row, Transaction};

use super::{
    Holders, ImportedUser, LoggedRevocation, NewPassword, NewSession, NewUser, Revoked, RotateRequest, Rotation,
    SessionOpen, SessionRecord, Store, StoreError, StoredKey, StoredRefreshToken, UserChanged, UserRecord, UserUpdate,
    UserWrite,
};
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::tokens::RefreshTokenHash;
use crate::domain::{Email, Role, SessionId, UnixTime, UserId, Username};

pub struct PgStore {
    pool: PgPool,
    /// To open a connection of its own (outside the pool) when asked whether the server
    /// answers at all.
    opts: PgConnectOptions,
}

/// A refresh rotation as one statement ($1 now, $2 the presented token's hash, $3 the
/// successor's wanted expiry, $4 the successor's hash); a row (the session and user as
/// they were before) only if the presented token was spent here. Nothing outlives the
/// session's absolute end and a dead session is never extended: the session's expiry is
/// capped first and the successor takes it.
static ROTATE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH spent AS (
            UPDATE refresh_tokens SET used_at = to_timestamp($1)
            WHERE token_hash = $2 AND used_at IS NULL AND expires_at > to_timestamp($1)
            RETURNING session_id
         ), moved AS (
            UPDATE sessions SET last_used_at = to_timestamp($1),
                expires_at = least(to_timestamp($3), coalesce(max_expires_at, to_timestamp($3)))
            WHERE id = (SELECT session_id FROM spent) AND revoked_at IS NULL AND expires_at > to_timestamp($1)
            RETURNING id, expires_at
         ), successor AS (
            INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
            SELECT $4, s.id, to_timestamp($1), coalesce(m.expires_at, s.expires_at)
            FROM spent JOIN sessions s ON s.id = spent.session_id LEFT JOIN moved m ON m.id = s.id
            RETURNING session_id
         )
         SELECT {SESSION_COLUMNS}, {USER_COLUMNS}
         FROM successor JOIN sessions s ON s.id = successor.session_id JOIN users u ON u.id = s.user_id"
    )
});

impl PgStore {
    /// The one user matching `condition` (SQL over `users u`, one parameter: `value`).
    async fn user_where(&self, condition: &str, value: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {condition}");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

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
        Self::answer(&opts, connect_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(connect_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(backend)?;
        Ok(Self { pool, opts })
    }
}

impl PgStore {
    /// One connection of its own, opened and asked `SELECT 1` within `within`: whether
    /// the server answers, whatever the pool is doing.
    async fn answer(opts: &PgConnectOptions, within: Duration) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        let attempt = async {
            let mut conn = PgConnection::connect_with(opts).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        };
        match tokio::time::timeout(within, attempt).await {
            // "Too many connections" is an answer: the server is up, and busy.
            Ok(Err(sqlx::Error::Database(d))) if d.code().as_deref() == Some("53300") => Ok(()),
            Ok(r) => r.map_err(backend),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                within.as_millis()
            ))),
        }
    }
}

/// A database error as the store reports it: lost connections, serialisation failures,
/// deadlocks and an overloaded server are `Unavailable` (a retry may work).
fn backend(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "40001" | "40P01" | "53300" | "57P01" | "57P03")
        }),
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => backend(e),
    }
}

/// One user row; `Conflict` when the username or email is taken.
async fn insert_user<'e>(
    db: impl sqlx::Executor<'e, Database = Postgres>,
    user: &NewUser,
    is_active: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, is_active, roles, created_at, updated_at)
         VALUES ($1::uuid, $2, $3, $4, $5, $6::text[], to_timestamp($7), to_timestamp($7))",
    )
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(&user.password_hash.0)
    .bind(is_active)
    .bind(role_names(&user.roles))
    .bind(user.created_at.0)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn malformed(what: &str) -> StoreError {
    StoreError::Backend(format!("malformed {what} in database"))
}

const USER_COLUMNS: &str = "u.id::text AS id, u.username, u.email, u.password_hash, u.is_active, u.roles, \
     extract(epoch from u.created_at)::bigint AS created_at, u.security_stamp";
const SESSION_COLUMNS: &str = "s.id::text AS s_id, s.user_id::text AS s_user_id, \
     extract(epoch from s.created_at)::bigint AS s_created_at, \
     extract(epoch from s.last_used_at)::bigint AS last_used_at, \
     extract(epoch from s.expires_at)::bigint AS expires_at, \
     extract(epoch from s.revoked_at)::bigint AS revoked_at, s.user_agent, s.ip, s.device_name";

fn parse_col<T: std::str::FromStr>(row: &PgRow, col: &str) -> Result<T, StoreError> {
    let raw: String = row.try_get(col).map_err(backend)?;
    raw.parse().map_err(|_| malformed(col))
}

fn user_from_row(row: &PgRow) -> Result<UserRecord, StoreError> {
    let roles: Vec<String> = row.try_get("roles").map_err(backend)?;
    Ok(UserRecord {
        id: parse_col(row, "id")?,
        username: Username::from_store(row.try_get("username").map_err(backend)?),
        email: Email::from_store(row.try_get("email").map_err(backend)?),
        password_hash: PasswordHashString(row.try_get("password_hash").map_err(backend)?),
        is_active: row.try_get("is_active").map_err(backend)?,
        // Unknown or malformed stored roles are dropped rather than trusted.
        roles: roles.iter().filter_map(|r| Role::parse(r).ok()).collect(),
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        security_stamp: row.try_get("security_stamp").map_err(backend)?,
    })
}

fn session_from_row(row: &PgRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: parse_col(row, "s_id")?,
        user_id: parse_col(row, "s_user_id")?,
        created_at: UnixTime(row.try_get("s_created_at").map_err(backend)?),
        last_used_at: UnixTime(row.try_get("last_used_at").map_err(backend)?),
        expires_at: UnixTime(row.try_get("expires_at").map_err(backend)?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(backend)?
            .map(UnixTime),
        user_agent: row.try_get("user_agent").map_err(backend)?,
        device_name: row.try_get("device_name").map_err(backend)?,
        ip: row.try_get("ip").map_err(backend)?,
    })
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}

fn session_ids(ids: Vec<String>) -> Result<Vec<SessionId>, StoreError> {
    ids.iter()
        .map(|s| s.parse().map_err(|_| malformed("session id")))
        .collect()
}

async fn load_session_with_user(
    conn: &mut PgConnection,
    id: SessionId,
) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1::uuid"
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    row.map(|r| Ok((session_from_row(&r)?, user_from_row(&r)?))).transpose()
}

/// The user, locked against concurrent change until the transaction ends.
async fn user_locked(tx: &mut Transaction<'_, Postgres>, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1::uuid FOR UPDATE");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    row.as_ref().map(user_from_row).transpose()
}

/// Was `before` an active holder of `guard`'s role, and is none left now? Guarded
/// changes first take one transaction-wide advisory lock, so two of them (two admins
/// demoting each other at once) never both see the other still holding the role.
async fn leaves_no_holder(
    tx: &mut Transaction<'_, Postgres>,
    before: &UserRecord,
    guard: Option<&Role>,
) -> Result<bool, StoreError> {
    let Some(role) = guard else {
        return Ok(false);
    };
    if !before.is_active || !before.roles.contains(role) {
        return Ok(false);
    }
    let holders: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_active AND $1 = ANY(roles)")
        .bind(role.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(holders == 0)
}

/// One lock for every change guarded by a role (see [`leaves_no_holder`]).
async fn lock_guarded_changes(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tokengate:role-guard'))")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Write a revocation-log row (inside the caller's transaction), stamped by the
/// database's clock: an instance whose clock lags cannot date a row into the past.
async fn log_revocation(conn: &mut PgConnection, what: Revoked) -> Result<(), StoreError> {
    let (session, user) = match what {
        Revoked::Session(s) => (Some(s.to_string()), None),
        Revoked::User(u) => (None, Some(u.to_string())),
    };
    sqlx::query("INSERT INTO revocations (session_id, user_id, created_at) VALUES ($1::uuid, $2::uuid, now())")
        .bind(session)
        .bind(user)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            // The revocation's transaction rolls back with it: nothing half-done, and a
            // retry may succeed, so the caller answers 503, never 500.
            StoreError::Unavailable(format!("the revocation log cannot be written: {e}"))
        })?;
    Ok(())
}

/// Revoke every live session of `user` but `keep` and log each; the sessions revoked.
async fn revoke_all_in(
    conn: &mut PgConnection,
    user: UserId,
    keep: Option<SessionId>,
    now: UnixTime,
) -> Result<Vec<SessionId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = to_timestamp($1)
         WHERE user_id = $2::uuid AND revoked_at IS NULL AND id IS DISTINCT FROM $3::uuid
         RETURNING id::text",
    )
    .bind(now.0)
    .bind(user.to_string())
    .bind(keep.map(|k| k.to_string()))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let ids = session_ids(ids)?;
    for id in &ids {
        log_revocation(conn, Revoked::Session(*id)).await?;
    }
    Ok(ids)
}

async fn insert_key(conn: &mut PgConnection, key: &StoredKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, state, created_at, signs_from)
         VALUES ($1, $2, $3, 'active', to_timestamp($4), to_timestamp($5))",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_der)
    .bind(key.created_at.0)
    .bind(key.signs_from.0)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx holds a PostgreSQL advisory lock while it migrates: instances starting
        // together migrate once.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => backend(e),
                other => StoreError::Backend(other.to_string()),
            })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    async fn reachable(&self, within: Duration) -> Result<(), StoreError> {
        Self::answer(&self.opts, within).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_stats(&self) -> Vec<super::PoolStats> {
        vec![super::PoolStats::of("postgres", &self.pool)]
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        insert_user(&self.pool, &user, true).await?;
        Ok(UserRecord {
            id: user.id,
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            is_active: true,
            roles: user.roles,
            created_at: user.created_at,
            security_stamp: 0,
        })
    }

    async fn holders(&self, username: &Username, email: &Email) -> Result<Holders, StoreError> {
        let (username, email): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1)),
                    EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))",
        )
        .bind(username.as_str())
        .bind(email.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(Holders { username, email })
    }

    async fn insert_users(&self, users: Vec<ImportedUser>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for u in &users {
            insert_user(&mut *tx, &u.user, u.is_active).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn upgrade_password_hash(
        &self,
        user: UserId,
        old: &PasswordHashString,
        new: PasswordHashString,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2::uuid AND password_hash = $3")
            .bind(&new.0)
            .bind(user.to_string())
            .bind(&old.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.username) = lower($1)", username).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.email) = lower($1)", email.as_str()).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("u.id = $1::uuid", &id.to_string()).await
    }

    async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<UserChanged>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if guard.is_some() {
            lock_guarded_changes(&mut tx).await?;
        }
        let Some(before) = user_locked(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        sqlx::query(
            "UPDATE users SET roles = coalesce($1::text[], roles), is_active = coalesce($2, is_active),
                 security_stamp = security_stamp + $3, updated_at = to_timestamp($4) WHERE id = $5::uuid",
        )
        .bind(update.roles.as_deref().map(role_names))
        .bind(update.is_active)
        .bind(i64::from(update.bump_stamp))
        .bind(now.0)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if leaves_no_holder(&mut tx, &before, guard).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(UserWrite::LastHolder);
        }
        let revoked = if update.revoke_sessions {
            revoke_all_in(&mut tx, id, None, now).await?
        } else {
            Vec::new()
        };
        let user = user_locked(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Backend("updated user vanished".into()))?;
        log_revocation(&mut tx, Revoked::User(id)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(UserWrite::Done(UserChanged { user, revoked }))
    }

    async fn delete_user(
        &self,
        id: UserId,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<Vec<SessionId>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if guard.is_some() {
            lock_guarded_changes(&mut tx).await?;
        }
        let Some(before) = user_locked(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT id::text FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL AND expires_at > to_timestamp($2)",
        )
        .bind(id.to_string())
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM users WHERE id = $1::uuid")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if leaves_no_holder(&mut tx, &before, guard).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(UserWrite::LastHolder);
        }
        log_revocation(&mut tx, Revoked::User(id)).await?;
        tx.commit().await.map_err(backend)?;
        session_ids(live).map(UserWrite::Done)
    }

    async fn create_session(&self, s: NewSession) -> Result<SessionOpen, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Lock the user row: a password change, deactivation or deletion committing
        // meanwhile either happened before (we see its stamp) or waits for us (and its
        // revocation then sees this session).
        let current: Option<(bool, i64)> =
            sqlx::query_as("SELECT is_active, security_stamp FROM users WHERE id = $1::uuid FOR SHARE")
                .bind(s.user_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if current != Some((true, s.expected_stamp)) {
            tx.rollback().await.map_err(backend)?;
            return Ok(SessionOpen::UserChanged);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, max_expires_at, user_agent, device_name, ip)
             VALUES ($1::uuid, $2::uuid, to_timestamp($3), to_timestamp($3), to_timestamp($4), to_timestamp($5), $6, $7, $8)",
        )
        .bind(s.id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.now.0)
        .bind(s.expires_at.0)
        .bind(s.max_expires_at.0)
        .bind(&s.user_agent)
        .bind(&s.device_name)
        .bind(&s.ip)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
             VALUES ($1, $2::uuid, to_timestamp($3), to_timestamp($4))",
        )
        .bind(s.refresh_hash.as_str())
        .bind(s.id.to_string())
        .bind(s.now.0)
        .bind(s.expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(backend)?;
        Ok(SessionOpen::Opened)
    }

    async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        load_session_with_user(&mut conn, id).await
    }

    async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s
             WHERE s.user_id = $1::uuid AND s.revoked_at IS NULL AND s.expires_at > to_timestamp($2)
             ORDER BY s.last_used_at DESC, s.created_at DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(now.0)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let row = sqlx::query(
            "SELECT session_id::text AS session_id, used_at IS NOT NULL AS spent,
                    extract(epoch from expires_at)::bigint AS expires_at
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(refresh.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|r| {
            Ok(StoredRefreshToken {
                session_id: parse_col(&r, "session_id")?,
                spent: r.try_get("spent").map_err(backend)?,
                expires_at: UnixTime(r.try_get("expires_at").map_err(backend)?),
            })
        })
        .transpose()
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError> {
        // One statement, so one round trip and its own transaction. A concurrent
        // rotation of the same token waits on the row lock, then re-checks
        // `used_at IS NULL` and finds it spent: one winner.
        let row = sqlx::query(&ROTATE_SQL)
            .bind(req.now.0)
            .bind(req.presented.as_str())
            .bind(req.successor_expires_at.0)
            .bind(req.successor.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        if let Some(row) = row {
            return Ok(Rotation::Spent {
                session: Box::new(session_from_row(&row)?),
                user: Box::new(user_from_row(&row)?),
            });
        }
        // Nothing spent: a new statement (a new snapshot, so a rotation that won a race
        // against this one is seen) says whether it had been spent before.
        let prior = sqlx::query(
            "SELECT r.session_id::text AS session_id, extract(epoch from r.used_at)::bigint AS spent_at,
                    s.user_id::text AS user_id
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(req.presented.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(prior) = prior else {
            return Ok(Rotation::Unknown); // never issued
        };
        match prior.try_get::<Option<i64>, _>("spent_at").map_err(backend)? {
            Some(spent_at) => Ok(Rotation::AlreadySpent {
                user_id: parse_col(&prior, "user_id")?,
                session_id: parse_col(&prior, "session_id")?,
                spent_at: UnixTime(spent_at),
            }),
            None => Ok(Rotation::Unknown), // merely expired
        }
    }

    async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = to_timestamp($1)
             WHERE id = $2::uuid AND user_id = $3::uuid AND revoked_at IS NULL",
        )
        .bind(now.0)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let revoked = done.rows_affected() == 1;
        if revoked {
            log_revocation(&mut tx, Revoked::Session(id)).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn revoke_session_of_refresh(
        &self,
        user: Option<UserId>,
        refresh: &RefreshTokenHash,
        now: UnixTime,
    ) -> Result<Option<(UserId, SessionId)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(
            "UPDATE sessions SET revoked_at = to_timestamp($1)
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)
               AND ($3::uuid IS NULL OR user_id = $3::uuid) AND revoked_at IS NULL
             RETURNING id::text AS id, user_id::text AS user_id",
        )
        .bind(now.0)
        .bind(refresh.as_str())
        .bind(user.map(|u| u.to_string()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let revoked: Option<(UserId, SessionId)> = row
            .map(|r| Ok::<_, StoreError>((parse_col(&r, "user_id")?, parse_col(&r, "id")?)))
            .transpose()?;
        if let Some((_, session)) = revoked {
            log_revocation(&mut tx, Revoked::Session(session)).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let revoked = revoke_all_in(&mut tx, user, keep, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn change_password(&self, change: NewPassword) -> Result<Option<Vec<SessionId>>, StoreError> {
        let NewPassword {
            user,
            hash,
            expected_stamp,
            keep,
            now,
        } = change;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The row lock makes a login's session insert (which locks the row FOR SHARE)
        // come strictly before or after this change; a concurrent change waits for this
        // one and then finds the stamp moved.
        let keep_id = keep.map(|k| k.to_string());
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, security_stamp = security_stamp + 1, updated_at = to_timestamp($2)
             WHERE id = $3::uuid AND ($4::bigint IS NULL OR security_stamp = $4)
               AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = $5::uuid
                      AND s.user_id = users.id AND s.revoked_at IS NULL AND s.expires_at > to_timestamp($2)))",
        )
        .bind(&hash.0)
        .bind(now.0)
        .bind(user.to_string())
        .bind(expected_stamp)
        .bind(&keep_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked = revoke_all_in(&mut tx, user, keep, now).await?;
        log_revocation(&mut tx, Revoked::User(user)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(revoked))
    }

    async fn server_secret(&self, name: &str, fresh: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, to_timestamp($3))
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn replace_key_material(&self, kid: &str, private_der: Vec<u8>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
            .bind(private_der)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_server_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE server_secrets SET value = $1 WHERE name = $2")
            .bind(value)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, private_key, state,
                    extract(epoch from created_at)::bigint AS created_at,
                    extract(epoch from signs_from)::bigint AS signs_from,
                    extract(epoch from retires_at)::bigint AS retires_at
             FROM signing_keys ORDER BY state = 'active' DESC, created_at DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(StoredKey {
                    kid: r.try_get("kid").map_err(backend)?,
                    algorithm: r.try_get("algorithm").map_err(backend)?,
                    private_der: r.try_get("private_key").map_err(backend)?,
                    active: r.try_get::<String, _>("state").map_err(backend)? == "active",
                    created_at: UnixTime(r.try_get("created_at").map_err(backend)?),
                    signs_from: UnixTime(r.try_get("signs_from").map_err(backend)?),
                    retires_at: r
                        .try_get::<Option<i64>, _>("retires_at")
                        .map_err(backend)?
                        .map(UnixTime),
                })
            })
            .collect()
    }

    async fn add_active_key(&self, key: StoredKey) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_key(&mut conn, &key).await
    }

    async fn rotate_key(&self, key: StoredKey, now: UnixTime, retires_at: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = to_timestamp($1), retires_at = to_timestamp($2)
             WHERE state = 'active'",
        )
        .bind(now.0)
        .bind(retires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn retire_key_at(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retires_at = least(coalesce(retires_at, to_timestamp($1)), to_timestamp($1))
             WHERE kid = $2 AND state = 'retired'",
        )
        .bind(at.0)
        .bind(kid)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revocations_after(&self, seq: i64) -> Result<Vec<LoggedRevocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, session_id::text AS session_id, user_id::text AS user_id FROM revocations
             WHERE seq > $1 ORDER BY seq",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq").map_err(backend)?;
                let session: Option<String> = r.try_get("session_id").map_err(backend)?;
                let user: Option<String> = r.try_get("user_id").map_err(backend)?;
                LoggedRevocation::from_columns(seq, session, user)
            })
            .collect()
    }

    async fn purge_revocations(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE created_at < to_timestamp($1)")
            .bind(cutoff.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < to_timestamp($1)")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retires_at < to_timestamp($1)")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < to_timestamp($1)")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(tokens.rows_affected() + sessions.rows_affected())
    }
}
