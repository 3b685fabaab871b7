//! The embedded SQLite backend: zero configuration, one file.
//!
//! Writes go through a pool of one connection, so they are serialised in-process and
//! never fight over SQLite's lock; reads use their own pool and run alongside (WAL).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    Holders, ImportedUser, LoggedRevocation, NewPassword, NewSession, NewUser, Revoked, RotateRequest, Rotation,
    SessionOpen, SessionRecord, Store, StoreError, StoredKey, StoredRefreshToken, UserChanged, UserRecord, UserUpdate,
    UserWrite, roles_from_json, roles_to_json,
};
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::tokens::RefreshTokenHash;
use crate::domain::{Email, Role, SessionId, UnixTime, UserId, Username};

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.password_hash, u.is_active, u.roles, u.created_at, u.security_stamp";
const SESSION_COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.created_at AS s_created_at, s.last_used_at, s.expires_at, s.revoked_at, s.user_agent, s.ip, s.device_name";

/// A refresh rotation as one transaction script (?1 now, ?2 the presented token's hash,
/// ?3 the successor's wanted expiry, ?4 the successor's hash). Nothing outlives the
/// session's absolute end and a dead session is never extended: the session's expiry is
/// capped first and the successor takes it. The three writes share one gate, "?2 is
/// unspent and unexpired", which only the last of them changes, so all three happen or
/// none does; the final read says which: `changes()` there counts the rows of the last
/// write, the spend. (Whether the successor exists would not do: a derived successor
/// exists already when its predecessor is presented again.)
static ROTATE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "BEGIN IMMEDIATE;
         UPDATE sessions SET last_used_at = ?1, expires_at = min(?3, coalesce(max_expires_at, ?3))
          WHERE id = (SELECT session_id FROM refresh_tokens
                      WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1)
            AND revoked_at IS NULL AND expires_at > ?1;
         INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
          SELECT ?4, s.id, ?1, s.expires_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
          WHERE r.token_hash = ?2 AND r.used_at IS NULL AND r.expires_at > ?1;
         UPDATE refresh_tokens SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1;
         SELECT r.used_at, changes() AS rotated, {SESSION_COLUMNS}, {USER_COLUMNS}
          FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
          WHERE r.token_hash = ?2;
         COMMIT"
    )
});

impl SqliteStore {
    /// The one user matching `condition` (SQL over `users u`, one parameter: `value`).
    async fn user_where(&self, condition: &str, value: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {condition}");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Open (creating it, readable by the owner only) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // No ping before each use (sqlx's default): a connection to a local file does
        // not go stale, and the ping is one more round trip to the SQLite thread per
        // operation.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(backend)?;
        let readers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2) as u32 * 2;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await
            .map_err(backend)?;
        Ok(Self { read, write })
    }
}

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!("{}: {e}", path.display()))),
    }
}

/// A database error as the store reports it: retryable conditions (no connection,
/// the file locked past the busy timeout) are `Unavailable`, the rest `Backend`.
fn backend(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
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
    db: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    user: &NewUser,
    is_active: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, is_active, roles, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(&user.password_hash.0)
    .bind(is_active)
    .bind(roles_to_json(&user.roles))
    .bind(user.created_at.0)
    .bind(user.created_at.0)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn malformed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn parse_col<T: FromStr>(row: &SqliteRow, col: &str) -> Result<T, StoreError> {
    let raw: String = row.try_get(col).map_err(backend)?;
    raw.parse()
        .map_err(|_| StoreError::Backend(format!("malformed {col} in database")))
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    let roles: String = row.try_get("roles").map_err(backend)?;
    Ok(UserRecord {
        id: parse_col(row, "id")?,
        username: Username::from_store(row.try_get("username").map_err(backend)?),
        email: Email::from_store(row.try_get("email").map_err(backend)?),
        password_hash: PasswordHashString(row.try_get("password_hash").map_err(backend)?),
        is_active: row.try_get::<i64, _>("is_active").map_err(backend)? != 0,
        roles: roles_from_json(&roles),
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        security_stamp: row.try_get("security_stamp").map_err(backend)?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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

/// Run a script that opens and commits its own transaction (`BEGIN IMMEDIATE; ...;
/// COMMIT`) in one trip, and return its last row. A statement that fails stops the
/// script inside the transaction: it is rolled back, and if even that fails the
/// connection is closed rather than reused with a transaction open.
async fn run_transaction_script<'q>(
    pool: &SqlitePool,
    script: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> Result<Option<SqliteRow>, StoreError> {
    let mut conn = pool.acquire().await.map_err(backend)?;
    match script.fetch_all(&mut *conn).await {
        Ok(mut rows) => Ok(rows.pop()),
        Err(e) => {
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
            Err(db_err(e))
        }
    }
}

/// A session and its user, read together (the per-request check, and rotation).
async fn load_session_with_user<'e, E: sqlx::Executor<'e, Database = Sqlite>>(
    db: E,
    id: SessionId,
) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(db)
        .await
        .map_err(backend)?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((session_from_row(&r)?, user_from_row(&r)?))),
    }
}

async fn insert_key<'e, E: sqlx::Executor<'e, Database = Sqlite>>(db: E, key: &StoredKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, state, created_at, signs_from)
         VALUES (?, ?, ?, 'active', ?, ?)",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(B64.encode(&key.private_der))
    .bind(key.created_at.0)
    .bind(key.signs_from.0)
    .execute(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn user_in(tx: &mut Transaction<'_, Sqlite>, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    row.as_ref().map(user_from_row).transpose()
}

/// Active users holding `role`.
async fn active_holders(tx: &mut Transaction<'_, Sqlite>, role: &Role) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM users u, json_each(u.roles) r WHERE u.is_active = 1 AND r.value = ?")
        .bind(role.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)
}

/// Was `before` an active holder of `guard`'s role, and is none left now?
async fn leaves_no_holder(
    tx: &mut Transaction<'_, Sqlite>,
    before: &UserRecord,
    guard: Option<&Role>,
) -> Result<bool, StoreError> {
    let Some(role) = guard else {
        return Ok(false);
    };
    if !before.is_active || !before.roles.contains(role) {
        return Ok(false);
    }
    Ok(active_holders(tx, role).await? == 0)
}

/// Write a revocation-log row (inside the caller's transaction).
async fn log_revocation(conn: &mut sqlx::SqliteConnection, what: Revoked, now: UnixTime) -> Result<(), StoreError> {
    let (session, user) = match what {
        Revoked::Session(s) => (Some(s.to_string()), None),
        Revoked::User(u) => (None, Some(u.to_string())),
    };
    sqlx::query("INSERT INTO revocations (session_id, user_id, created_at) VALUES (?, ?, ?)")
        .bind(session)
        .bind(user)
        .bind(now.0)
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
    conn: &mut sqlx::SqliteConnection,
    user: UserId,
    keep: Option<SessionId>,
    now: UnixTime,
) -> Result<Vec<SessionId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ? RETURNING id",
    )
    .bind(now.0)
    .bind(user.to_string())
    .bind(keep.map(|k| k.to_string()))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let ids = ids
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Backend("malformed session id in database".into()))
        })
        .collect::<Result<Vec<SessionId>, _>>()?;
    // Every revoking write leaves a log row (as PostgreSQL's does): a logout-all here
    // had none, so nothing outside this process's cache could learn of it.
    for id in &ids {
        log_revocation(conn, Revoked::Session(*id), now).await?;
    }
    Ok(ids)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.write)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => backend(e),
                other => malformed(other),
            })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(backend)?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    fn pool_stats(&self) -> Vec<super::PoolStats> {
        vec![
            super::PoolStats::of("sqlite_read", &self.read),
            super::PoolStats::of("sqlite_write", &self.write),
        ]
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        insert_user(&self.write, &user, true).await?;
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
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower(?)),
                    EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(?))",
        )
        .bind(username.as_str())
        .bind(email.as_str())
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(Holders { username, email })
    }

    async fn insert_users(&self, users: Vec<ImportedUser>) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
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
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?")
            .bind(&new.0)
            .bind(user.to_string())
            .bind(&old.0)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.username) = lower(?)", username).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.email) = lower(?)", email.as_str()).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("u.id = ?", &id.to_string()).await
    }

    async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id LIMIT ? OFFSET ?");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.read)
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
        let mut tx = self.write.begin().await.map_err(backend)?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        sqlx::query(
            "UPDATE users SET roles = coalesce(?, roles), is_active = coalesce(?, is_active),
                 security_stamp = security_stamp + ?, updated_at = ? WHERE id = ?",
        )
        .bind(update.roles.as_deref().map(roles_to_json))
        .bind(update.is_active.map(i64::from))
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
        let user = user_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Backend("updated user vanished".into()))?;
        log_revocation(&mut tx, Revoked::User(id), now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(UserWrite::Done(UserChanged { user, revoked }))
    }

    async fn delete_user(
        &self,
        id: UserId,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<Vec<SessionId>>, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        let live: Vec<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?")
                .bind(id.to_string())
                .bind(now.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if leaves_no_holder(&mut tx, &before, guard).await? {
            tx.rollback().await.map_err(backend)?;
            return Ok(UserWrite::LastHolder);
        }
        log_revocation(&mut tx, Revoked::User(id), now).await?;
        tx.commit().await.map_err(backend)?;
        live.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Backend("malformed session id in database".into()))
            })
            .collect::<Result<_, _>>()
            .map(UserWrite::Done)
    }

    async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
             ORDER BY s.last_used_at DESC, s.created_at DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(now.0)
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn create_session(&self, s: NewSession) -> Result<SessionOpen, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        // The conditional insert: only while the user is as the login read them.
        let opened = sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, max_expires_at, user_agent, device_name, ip)
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?
             WHERE EXISTS (SELECT 1 FROM users WHERE id = ? AND is_active = 1 AND security_stamp = ?)",
        )
        .bind(s.id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.now.0)
        .bind(s.now.0)
        .bind(s.expires_at.0)
        .bind(s.max_expires_at.0)
        .bind(&s.user_agent)
        .bind(&s.device_name)
        .bind(&s.ip)
        .bind(s.user_id.to_string())
        .bind(s.expected_stamp)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if opened.rows_affected() == 0 {
            tx.rollback().await.map_err(backend)?;
            return Ok(SessionOpen::UserChanged);
        }
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
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
        load_session_with_user(&self.read, id).await
    }

    async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let row = sqlx::query("SELECT session_id, used_at, expires_at FROM refresh_tokens WHERE token_hash = ?")
            .bind(refresh.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(StoredRefreshToken {
                session_id: parse_col(&r, "session_id")?,
                spent: r.try_get::<Option<i64>, _>("used_at").map_err(backend)?.is_some(),
                expires_at: UnixTime(r.try_get("expires_at").map_err(backend)?),
            })
        })
        .transpose()
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError> {
        // The whole transaction is one trip to the writer thread (six separate trips
        // held the single writer three times as long). Its own task, so a client that
        // hangs up mid-way cannot leave it half-run on the connection.
        let write = self.write.clone();
        let row = tokio::spawn(async move {
            let query = sqlx::query(&ROTATE_SQL)
                .bind(req.now.0)
                .bind(req.presented.as_str())
                .bind(req.successor_expires_at.0)
                .bind(req.successor.as_str());
            run_transaction_script(&write, query).await
        })
        .await
        .map_err(|e| StoreError::Backend(format!("rotation task: {e}")))??;
        let outcome = match row {
            None => Rotation::Unknown, // never issued
            Some(row) if row.try_get::<i64, _>("rotated").map_err(backend)? != 0 => Rotation::Spent {
                session: Box::new(session_from_row(&row)?),
                user: Box::new(user_from_row(&row)?),
            },
            Some(row) => match row.try_get::<Option<i64>, _>("used_at").map_err(backend)? {
                Some(spent_at) => Rotation::AlreadySpent {
                    user_id: parse_col(&row, "s_user_id")?,
                    session_id: parse_col(&row, "s_id")?,
                    spent_at: UnixTime(spent_at),
                },
                None => Rotation::Unknown, // merely expired
            },
        };
        Ok(outcome)
    }

    async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
                .bind(now.0)
                .bind(id.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        let revoked = done.rows_affected() == 1;
        if revoked {
            log_revocation(&mut tx, Revoked::Session(id), now).await?;
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
        let user = user.map(|u| u.to_string());
        let mut tx = self.write.begin().await.map_err(backend)?;
        let row = sqlx::query(
            "UPDATE sessions SET revoked_at = ?
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ?)
               AND (? IS NULL OR user_id = ?) AND revoked_at IS NULL
             RETURNING id, user_id",
        )
        .bind(now.0)
        .bind(refresh.as_str())
        .bind(&user)
        .bind(&user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let revoked: Option<(UserId, SessionId)> = row
            .map(|r| Ok::<_, StoreError>((parse_col(&r, "user_id")?, parse_col(&r, "id")?)))
            .transpose()?;
        if let Some((_, session)) = revoked {
            log_revocation(&mut tx, Revoked::Session(session), now).await?;
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
        let mut tx = self.write.begin().await.map_err(backend)?;
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
        let mut tx = self.write.begin().await.map_err(backend)?;
        let keep_id = keep.map(|k| k.to_string());
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, security_stamp = security_stamp + 1, updated_at = ?
             WHERE id = ? AND (? IS NULL OR security_stamp = ?)
               AND (? IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = users.id
                                         AND s.revoked_at IS NULL AND s.expires_at > ?))",
        )
        .bind(&hash.0)
        .bind(now.0)
        .bind(user.to_string())
        .bind(expected_stamp)
        .bind(expected_stamp)
        .bind(&keep_id)
        .bind(&keep_id)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked = revoke_all_in(&mut tx, user, keep, now).await?;
        log_revocation(&mut tx, Revoked::User(user), now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(revoked))
    }

    async fn server_secret(&self, name: &str, fresh: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(B64.encode(&fresh))
        .bind(now.0)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.write)
            .await
            .map_err(backend)?;
        B64.decode(stored).map_err(malformed)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, private_key, state, created_at, signs_from, retires_at FROM signing_keys
             ORDER BY state = 'active' DESC, created_at DESC",
        )
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let b64: String = r.try_get("private_key").map_err(backend)?;
                Ok(StoredKey {
                    kid: r.try_get("kid").map_err(backend)?,
                    algorithm: r.try_get("algorithm").map_err(backend)?,
                    private_der: B64.decode(b64).map_err(malformed)?,
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

    async fn replace_key_material(&self, kid: &str, private_der: Vec<u8>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE signing_keys SET private_key = ? WHERE kid = ?")
            .bind(B64.encode(&private_der))
            .bind(kid)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_server_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE server_secrets SET value = ? WHERE name = ?")
            .bind(B64.encode(&value))
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_active_key(&self, key: StoredKey) -> Result<(), StoreError> {
        insert_key(&self.write, &key).await
    }

    async fn rotate_key(&self, key: StoredKey, now: UnixTime, retires_at: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = ?, retires_at = ? WHERE state = 'active'")
            .bind(now.0)
            .bind(retires_at.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_key(&mut *tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn retire_key_at(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retires_at = min(coalesce(retires_at, ?), ?) WHERE kid = ? AND state = 'retired'",
        )
        .bind(at.0)
        .bind(at.0)
        .bind(kid)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revocations_after(&self, seq: i64) -> Result<Vec<LoggedRevocation>, StoreError> {
        // A reader: each statement outside a transaction sees every commit before it,
        // and the catch-up never queues behind the one writer.
        let rows = sqlx::query("SELECT seq, session_id, user_id FROM revocations WHERE seq > ? ORDER BY seq")
            .bind(seq)
            .fetch_all(&self.read)
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
        let done = sqlx::query("DELETE FROM revocations WHERE created_at < ?")
            .bind(cutoff.0)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retires_at < ?")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(cutoff.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(tokens.rows_affected() + sessions.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::crypto::tokens::RefreshToken;
    use crate::store::test_support::store_with_a_session;

    fn rotate(presented: &RefreshTokenHash, successor: &RefreshTokenHash) -> RotateRequest {
        let now = SystemClock.now();
        RotateRequest {
            presented: presented.clone(),
            successor: successor.clone(),
            successor_expires_at: now.plus(600),
            now,
        }
    }

    #[tokio::test]
    async fn a_rotation_script_that_fails_midway_changes_nothing_and_frees_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, session, user, first) = store_with_a_session(dir.path()).await;
        // A successor that already exists fails the script at its INSERT, after the
        // session was touched and before the spend.
        let err = store.rotate_refresh(rotate(&first, &first)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        let (s, _) = store.session_with_user(session).await.unwrap().unwrap();
        assert_eq!(
            s.expires_at,
            s.created_at.plus(3600),
            "the session update was rolled back"
        );

        // The writer is free and the token still unspent: it rotates once, then is spent.
        let second = RefreshToken::generate().unwrap().1;
        match store.rotate_refresh(rotate(&first, &second)).await.unwrap() {
            Rotation::Spent { session: s, user: u } => {
                assert_eq!((s.id, u.id), (session, user));
                assert!(s.expires_at.0 <= s.created_at.0 + 3600, "never past the session's end");
            }
            other => panic!("expected a rotation, got {other:?}"),
        }
        let third = RefreshToken::generate().unwrap().1;
        match store.rotate_refresh(rotate(&first, &third)).await.unwrap() {
            Rotation::AlreadySpent {
                user_id, session_id, ..
            } => assert_eq!((session_id, user_id), (session, user)),
            other => panic!("expected a reuse, got {other:?}"),
        }
        assert!(matches!(
            store.rotate_refresh(rotate(&third, &first)).await.unwrap(),
            Rotation::Unknown
        ));
        assert!(matches!(
            store.rotate_refresh(rotate(&second, &third)).await.unwrap(),
            Rotation::Spent { .. }
        ));
    }
}
