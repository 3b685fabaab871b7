//! The embedded SQLite backend: zero configuration, one file.
//!
//! Writes go through a pool of one connection, so they are serialised in-process and
//! never fight over SQLite's lock; reads use their own pool and run alongside (WAL).
//! The flows themselves are `store::sql`'s.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};

use super::sql::db::{Db as _, Param, portable_db};
use super::sql::{Dialect, Rows, SESSION_COLUMNS, SqlStore, USER_COLUMNS, err, rotation_params};
use super::{RotateRequest, Rotation, StoreError};

portable_db!(Sqlite);

/// SQLite's ways: one writer connection, a pool of readers beside it.
pub struct SqliteDialect;

/// Each connection's page cache, in KiB.
const CACHE_KIB: u32 = 256;

/// A store on one SQLite file.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// A refresh rotation as one transaction script ($1 now, $2 the presented token's hash,
/// $3 the successor's wanted expiry, $4 the successor's hash). Nothing outlives the
/// session's absolute end and a dead session is never extended: the session's expiry is
/// capped first and the successor takes it. The three writes share one gate, "$2 is
/// unspent and unexpired", which only the last of them changes, so all three happen or
/// none does; the final read says which: `changes()` there counts the rows of the last
/// write, the spend. (Whether the successor exists would not do: a derived successor
/// exists already when its predecessor is presented again.)
static ROTATE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "BEGIN IMMEDIATE;
         UPDATE sessions SET last_used_at = $1, expires_at = min($3, coalesce(max_expires_at, $3))
          WHERE id = (SELECT session_id FROM refresh_tokens
                      WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1)
            AND revoked_at IS NULL AND expires_at > $1;
         INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
          SELECT $4, s.id, $1, s.expires_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
          WHERE r.token_hash = $2 AND r.used_at IS NULL AND r.expires_at > $1;
         UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1;
         SELECT r.used_at, changes() AS rotated, {SESSION_COLUMNS}, {USER_COLUMNS}
          FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
          WHERE r.token_hash = $2;
         COMMIT"
    )
});

impl SqliteStore {
    /// Open (creating it, readable by the owner only) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // A small page cache per connection (SQLite's default is 2 MiB each): the
            // OS keeps the file's pages cached once for all of them.
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        // No ping before each use (sqlx's default): a connection to a local file does
        // not go stale, and the ping is one more round trip to the SQLite thread per
        // operation.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(err::<SqliteDialect>)?;
        // One reader per core: reads are short, and each connection holds its own cache.
        let readers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2) as u32;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await
            .map_err(err::<SqliteDialect>)?;
        Ok(SqlStore::new(SqliteDialect, read, Some(write)))
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

/// Run a script that opens and commits its own transaction (`BEGIN IMMEDIATE; ...;
/// COMMIT`) in one trip, and return its last row. A statement that fails stops the
/// script inside the transaction: it is rolled back, and if even that fails the
/// connection is closed rather than reused with a transaction open.
async fn run_transaction_script(
    pool: &SqlitePool,
    script: &str,
    params: &[Param<'_>],
) -> Result<Option<sqlx::sqlite::SqliteRow>, StoreError> {
    let mut conn = pool.acquire().await.map_err(err::<SqliteDialect>)?;
    match Sqlite::all(&mut conn, script, params).await {
        Ok(mut rows) => Ok(rows.pop()),
        Err(e) => {
            if Sqlite::exec(&mut conn, "ROLLBACK", &[]).await.is_err() {
                conn.close_on_drop();
            }
            Err(err::<SqliteDialect>(e))
        }
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    type DB = Sqlite;
    // One writer connection: a transaction's reads see no concurrent change.
    const FOR_UPDATE: &'static str = "";
    const FOR_SHARE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const HOLDS_ROLE: &'static str = "EXISTS (SELECT 1 FROM json_each(u.roles) r WHERE r.value = $1)";
    const NON_ASCII_EMAIL: &'static str = "u.email GLOB '*[^ -~]*'";
    const LOG_REVOCATION: &'static str =
        "INSERT INTO revocations (session_id, user_id, client_id, created_at) VALUES ($1, $2, $3, $4)";
    const POOLS: &'static [&'static str] = &["sqlite_read", "sqlite_write"];

    /// The file locked past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED, any extended code).
    fn retryable_code(code: &str) -> bool {
        code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
        &MIGRATOR
    }

    async fn lock_guarded_changes(_: &mut SqliteConnection) -> Result<(), StoreError> {
        Ok(()) // the one writer serialises them
    }

    async fn rotate_refresh(write: &Pool<Sqlite>, req: RotateRequest) -> Result<Rotation, StoreError> {
        // The whole transaction is one trip to the writer thread (six separate trips
        // held the single writer three times as long). Its own task, so a client that
        // hangs up mid-way cannot leave it half-run on the connection.
        let write = write.clone();
        let row =
            tokio::spawn(async move { run_transaction_script(&write, &ROTATE_SQL, &rotation_params(&req)).await })
                .await
                .map_err(|e| StoreError::Backend(format!("rotation task: {e}")))??;
        match row {
            Some(row) if Sqlite::int(&row, "rotated").map_err(err::<Self>)? != 0 => Rows::<Self>::spent(&row),
            row => Rows::<Self>::not_spent(row.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::crypto::tokens::RefreshToken;
    use crate::crypto::tokens::RefreshTokenHash;
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
