//! Every storage flow, written once for both SQL backends: the statements, the order
//! of lock, check and write, and the revocation-log row each revoking write leaves.
//! A backend ([`Dialect`]) brings its connections, its migrations, the few clauses
//! its SQL spells differently, and the refresh rotation (one round trip, which each
//! database reaches its own way).

mod clients;
pub mod db;
mod dialect;
mod factors;
mod grants;
mod mail;
mod passkeys;
mod rows;

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::{Database, Pool};

use self::db::{Db, Param};
pub use self::dialect::Dialect;
pub(crate) use self::dialect::err;
pub(crate) use self::rows::{Rows, SESSION_COLUMNS, USER_COLUMNS};
use super::{
    Holders, ImportedUser, Keys, Lifecycle, LoggedRevocation, NewPassword, NewSession, NewUser, PoolStats,
    RevocationLog, Revoked, RotateRequest, Rotation, SessionOpen, SessionRecord, Sessions, StoreError, StoredKey,
    StoredRefreshToken, UserChanged, UserChanges, UserRecord, UserUpdate, UserWrite, Users, roles_to_json,
};
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::tokens::RefreshTokenHash;
use crate::domain::{Email, Role, Scope, SessionId, UnixTime, UserId, Username};
use Param::{Flag, Int, OptFlag, OptInt, OptText, Text};

/// A SQL database as a [`Store`].
pub struct SqlStore<D: Dialect> {
    d: D,
    read: Pool<D::DB>,
    /// `None`: writes go through the read pool.
    write: Option<Pool<D::DB>>,
}

/// The parameters of a rotation script: `$1` now, `$2` the presented token's hash, `$3`
/// the successor's wanted expiry, `$4` the successor's hash.
pub(crate) fn rotation_params(req: &RotateRequest) -> [Param<'_>; 4] {
    [
        Int(req.now.0),
        Text(req.presented.as_str()),
        Int(req.successor_expires_at.0),
        Text(req.successor.as_str()),
    ]
}

fn id_param<T: ToString>(v: &T) -> String {
    v.to_string()
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(d: D, read: Pool<D::DB>, write: Option<Pool<D::DB>>) -> Self {
        Self { d, read, write }
    }

    fn writer(&self) -> &Pool<D::DB> {
        self.write.as_ref().unwrap_or(&self.read)
    }

    async fn reading(&self) -> Result<sqlx::pool::PoolConnection<D::DB>, StoreError> {
        self.read.acquire().await.map_err(err::<D>)
    }

    async fn writing(&self) -> Result<sqlx::pool::PoolConnection<D::DB>, StoreError> {
        self.writer().acquire().await.map_err(err::<D>)
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, D::DB>, StoreError> {
        self.writer().begin().await.map_err(err::<D>)
    }

    async fn exec(c: &mut <D::DB as Database>::Connection, sql: &str, p: &[Param<'_>]) -> Result<u64, StoreError> {
        D::DB::exec(c, sql, p).await.map_err(err::<D>)
    }

    async fn all(
        c: &mut <D::DB as Database>::Connection,
        sql: &str,
        p: &[Param<'_>],
    ) -> Result<Vec<<D::DB as Database>::Row>, StoreError> {
        D::DB::all(c, sql, p).await.map_err(err::<D>)
    }

    async fn optional(
        c: &mut <D::DB as Database>::Connection,
        sql: &str,
        p: &[Param<'_>],
    ) -> Result<Option<<D::DB as Database>::Row>, StoreError> {
        D::DB::optional(c, sql, p).await.map_err(err::<D>)
    }

    async fn commit(tx: sqlx::Transaction<'static, D::DB>) -> Result<(), StoreError> {
        tx.commit().await.map_err(err::<D>)
    }

    async fn rollback(tx: sqlx::Transaction<'static, D::DB>) -> Result<(), StoreError> {
        tx.rollback().await.map_err(err::<D>)
    }

    /// The one user matching `condition` (over `users u`, one parameter: `value`).
    async fn user_where(&self, condition: &str, value: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {condition}");
        let row = Self::optional(&mut *self.reading().await?, &sql, &[Text(value)]).await?;
        row.as_ref().map(Rows::<D>::user).transpose()
    }

    /// The user, read for a change in this transaction (locked where rows are).
    async fn user_for_update(
        c: &mut <D::DB as Database>::Connection,
        id: UserId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1{}", D::FOR_UPDATE);
        let row = Self::optional(c, &sql, &[Text(&id.to_string())]).await?;
        row.as_ref().map(Rows::<D>::user).transpose()
    }

    /// Was `before` an active holder of `guard`'s role, and is none left now? Guarded
    /// changes first take [`Dialect::lock_guarded_changes`], so two of them (two admins
    /// demoting each other at once) never both see the other still holding the role.
    async fn leaves_no_holder(
        c: &mut <D::DB as Database>::Connection,
        before: &UserRecord,
        guard: Option<&Role>,
    ) -> Result<bool, StoreError> {
        let Some(role) = guard else {
            return Ok(false);
        };
        if !before.is_active || !before.roles.contains(role) {
            return Ok(false);
        }
        let sql = format!(
            "SELECT count(*) AS n FROM users u WHERE u.is_active AND {}",
            D::HOLDS_ROLE
        );
        let row = Self::optional(c, &sql, &[Text(role.as_str())]).await?;
        let holders = row.map(|r| D::DB::int(&r, "n")).transpose().map_err(err::<D>)?;
        Ok(holders.unwrap_or(0) == 0)
    }

    /// Write a revocation-log row inside the caller's transaction. When it cannot be
    /// written the transaction rolls back with it: nothing half-done, and a retry may
    /// succeed, so the caller answers 503, never 500.
    async fn log_revocation(
        c: &mut <D::DB as Database>::Connection,
        what: Revoked,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let (session, user, client) = match what {
            Revoked::Session(s) => (Some(s.to_string()), None, None),
            Revoked::User(u) => (None, Some(u.to_string()), None),
            Revoked::Client(id) => (None, None, Some(id.to_string())),
        };
        D::DB::exec(
            c,
            D::LOG_REVOCATION,
            &[
                OptText(session.as_deref()),
                OptText(user.as_deref()),
                OptText(client.as_deref()),
                Int(now.0),
            ],
        )
        .await
        .map_err(|e| StoreError::Unavailable(format!("the revocation log cannot be written: {e}")))?;
        Ok(())
    }

    /// Revoke every live session of `user` but `keep` and log each; those revoked.
    async fn revoke_all_in(
        c: &mut <D::DB as Database>::Connection,
        user: UserId,
        keep: Option<SessionId>,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let keep = keep.as_ref().map(id_param);
        let (user, condition) = (user.to_string(), "user_id = $2 AND id IS DISTINCT FROM $3");
        let params = [Text(&user), OptText(keep.as_deref())];
        let mut revoked = Self::revoke_where(c, condition, &params, now).await?;
        // Twice: a session an authorization code was opening from one of these (it
        // holds that browser session's row until it commits) is not in the first
        // statement's view, which waited for it; the second one's sees it.
        revoked.extend(Self::revoke_where(c, condition, &params, now).await?);
        Ok(revoked)
    }

    /// Revoke the live sessions `condition` selects (over `sessions`; its parameters
    /// are `params`, numbered from `$2`) and log each; those revoked.
    async fn revoke_where(
        c: &mut <D::DB as Database>::Connection,
        condition: &str,
        params: &[Param<'_>],
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut all = vec![Int(now.0)];
        all.extend_from_slice(params);
        let sql = format!("UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND {condition} RETURNING id");
        let rows = Self::all(c, &sql, &all).await?;
        let ids = rows
            .iter()
            .map(|r| Rows::<D>::parsed(r, "id"))
            .collect::<Result<Vec<SessionId>, _>>()?;
        for id in &ids {
            Self::log_revocation(c, Revoked::Session(*id), now).await?;
        }
        Ok(ids)
    }

    async fn insert_user(
        c: &mut <D::DB as Database>::Connection,
        user: &NewUser,
        is_active: bool,
        email_verified: bool,
    ) -> Result<(), StoreError> {
        Self::exec(
            c,
            "INSERT INTO users (id, username, email, password_hash, is_active, roles, created_at, updated_at, email_verified)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            &[
                Text(&user.id.to_string()),
                Text(user.username.as_str()),
                Text(user.email.as_str()),
                Text(&user.password_hash.0),
                Flag(is_active),
                Text(&roles_to_json(&user.roles)),
                Int(user.created_at.0),
                Flag(email_verified),
            ],
        )
        .await?;
        Ok(())
    }

    async fn insert_key(c: &mut <D::DB as Database>::Connection, key: &StoredKey) -> Result<(), StoreError> {
        Self::exec(
            c,
            "INSERT INTO signing_keys (kid, algorithm, private_key, state, created_at, signs_from, purpose)
             VALUES ($1, $2, $3, 'active', $4, $5, $6)",
            &[
                Text(&key.kid),
                Text(key.algorithm.jose_name()),
                Text(&B64.encode(&key.private_der)),
                Int(key.created_at.0),
                Int(key.signs_from.0),
                Text(key.purpose.as_str()),
            ],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> Lifecycle for SqlStore<D> {
    async fn migrate(&self) -> Result<(), StoreError> {
        D::DB::migrate(self.writer(), D::migrator()).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => err::<D>(e),
            other => StoreError::Backend(other.to_string()),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Self::exec(&mut *self.reading().await?, "SELECT 1", &[]).await?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        if let Some(w) = &self.write {
            w.close().await;
        }
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        std::iter::once(&self.read)
            .chain(&self.write)
            .zip(D::POOLS)
            .map(|(pool, name)| PoolStats::of(name, pool))
            .collect()
    }

    async fn reachable(&self, within: Duration) -> Result<(), StoreError> {
        match self.d.reachable(within).await {
            Some(answer) => answer,
            None => self.ping().await,
        }
    }

    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let cutoff = [Int(cutoff.0)];
        let tokens = Self::exec(&mut tx, "DELETE FROM refresh_tokens WHERE expires_at < $1", &cutoff).await?;
        Self::exec(
            &mut tx,
            "DELETE FROM signing_keys WHERE state = 'retired' AND retires_at < $1",
            &cutoff,
        )
        .await?;
        let sessions = Self::exec(&mut tx, "DELETE FROM sessions WHERE expires_at < $1", &cutoff).await?;
        let one_time = Self::exec(&mut tx, "DELETE FROM one_time_tokens WHERE expires_at < $1", &cutoff).await?;
        // A code is kept past its minute for as long, so that a replay is still known.
        Self::exec(&mut tx, "DELETE FROM oauth_codes WHERE expires_at < $1", &cutoff).await?;
        // Delivered mail is kept (without its body) as long as an expired session is;
        // mail given up on too (its link, if it had one, is dead by then).
        Self::exec(
            &mut tx,
            "DELETE FROM mail_outbox WHERE sent_at < $1 OR failed_at < $1",
            &cutoff,
        )
        .await?;
        Self::commit(tx).await?;
        Ok(tokens + sessions + one_time)
    }

    fn cache_trusted(&self) -> Option<bool> {
        None
    }
}

#[async_trait]
impl<D: Dialect> Users for SqlStore<D> {
    async fn create_user(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        Self::insert_user(&mut *self.writing().await?, &user, true, false).await?;
        Ok(UserRecord {
            id: user.id,
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            is_active: true,
            roles: user.roles,
            created_at: user.created_at,
            security_stamp: 0,
            email_verified: false,
            mfa_enabled: false,
        })
    }

    async fn holders(&self, username: &Username, email: &Email) -> Result<Holders, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1)) AS username,
                    EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)) AS email",
            &[Text(username.as_str()), Text(email.as_str())],
        )
        .await?
        .ok_or_else(|| StoreError::Backend("no row from a SELECT".into()))?;
        Ok(Holders {
            username: D::DB::flag(&row, "username").map_err(err::<D>)?,
            email: D::DB::flag(&row, "email").map_err(err::<D>)?,
        })
    }

    async fn insert_users(&self, users: Vec<ImportedUser>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for u in &users {
            Self::insert_user(&mut tx, &u.user, u.is_active, u.email_verified).await?;
        }
        Self::commit(tx).await
    }

    async fn upgrade_password_hash(
        &self,
        user: UserId,
        old: &PasswordHashString,
        new: PasswordHashString,
    ) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
            &[Text(&new.0), Text(&user.to_string()), Text(&old.0)],
        )
        .await?;
        Ok(done == 1)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.username) = lower($1)", username).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("lower(u.email) = lower($1)", email.as_str()).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("u.id = $1", &id.to_string()).await
    }

    async fn list_users(&self, limit: u32, offset: u32) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2");
        let rows = Self::all(
            &mut *self.reading().await?,
            &sql,
            &[Int(i64::from(limit)), Int(i64::from(offset))],
        )
        .await?;
        rows.iter().map(Rows::<D>::user).collect()
    }

    async fn users_with_non_ascii_email(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {}", D::NON_ASCII_EMAIL);
        let rows = Self::all(&mut *self.reading().await?, &sql, &[]).await?;
        rows.iter().map(Rows::<D>::user).collect()
    }
}

#[async_trait]
impl<D: Dialect> UserChanges for SqlStore<D> {
    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<UserChanged>, StoreError> {
        let mut tx = self.begin().await?;
        if guard.is_some() {
            D::lock_guarded_changes(&mut tx).await?;
        }
        let Some(before) = Self::user_for_update(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        let roles = update.roles.as_deref().map(roles_to_json);
        Self::exec(
            &mut tx,
            "UPDATE users SET roles = coalesce($1, roles), is_active = coalesce($2, is_active),
                 security_stamp = security_stamp + $3, updated_at = $4,
                 email_verified = coalesce($6, email_verified), email = coalesce($7, email) WHERE id = $5",
            &[
                OptText(roles.as_deref()),
                OptFlag(update.is_active),
                Int(i64::from(update.bump_stamp)),
                Int(now.0),
                Text(&id.to_string()),
                OptFlag(update.email_verified),
                OptText(update.email.as_ref().map(Email::as_str)),
            ],
        )
        .await?;
        if Self::leaves_no_holder(&mut tx, &before, guard).await? {
            Self::rollback(tx).await?;
            return Ok(UserWrite::LastHolder);
        }
        let revoked = if update.revoke_sessions {
            Self::revoke_all_in(&mut tx, id, None, now).await?
        } else {
            Vec::new()
        };
        let user = Self::user_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Backend("updated user vanished".into()))?;
        Self::log_revocation(&mut tx, Revoked::User(id), now).await?;
        Self::commit(tx).await?;
        Ok(UserWrite::Done(UserChanged { user, revoked }))
    }

    async fn delete_user(
        &self,
        id: UserId,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<Vec<SessionId>>, StoreError> {
        let mut tx = self.begin().await?;
        if guard.is_some() {
            D::lock_guarded_changes(&mut tx).await?;
        }
        let Some(before) = Self::user_for_update(&mut tx, id).await? else {
            return Ok(UserWrite::NotFound);
        };
        let user = id.to_string();
        let live = Self::all(
            &mut tx,
            "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            &[Text(&user), Int(now.0)],
        )
        .await?
        .iter()
        .map(|r| Rows::<D>::parsed(r, "id"))
        .collect::<Result<Vec<SessionId>, _>>()?;
        Self::exec(&mut tx, "DELETE FROM users WHERE id = $1", &[Text(&user)]).await?;
        if Self::leaves_no_holder(&mut tx, &before, guard).await? {
            Self::rollback(tx).await?;
            return Ok(UserWrite::LastHolder);
        }
        Self::log_revocation(&mut tx, Revoked::User(id), now).await?;
        Self::commit(tx).await?;
        Ok(UserWrite::Done(live))
    }

    async fn change_password(&self, change: NewPassword) -> Result<Option<Vec<SessionId>>, StoreError> {
        let NewPassword {
            user,
            hash,
            expected_stamp,
            keep,
            now,
        } = change;
        let mut tx = self.begin().await?;
        // Where rows are locked, this write's row lock puts a login's session insert
        // (which reads the row FOR SHARE) strictly before or after this change; a
        // concurrent change waits for this one and then finds the stamp moved.
        let keep_id = keep.as_ref().map(id_param);
        let done = Self::exec(
            &mut tx,
            "UPDATE users SET password_hash = $1, security_stamp = security_stamp + 1, updated_at = $2
             WHERE id = $3 AND ($4 IS NULL OR security_stamp = $4)
               AND ($5 IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = $5 AND s.user_id = users.id
                                          AND s.revoked_at IS NULL AND s.expires_at > $2))",
            &[
                Text(&hash.0),
                Int(now.0),
                Text(&user.to_string()),
                OptInt(expected_stamp),
                OptText(keep_id.as_deref()),
            ],
        )
        .await?;
        if done == 0 {
            return Ok(None);
        }
        let revoked = Self::revoke_all_in(&mut tx, user, keep, now).await?;
        Self::log_revocation(&mut tx, Revoked::User(user), now).await?;
        Self::commit(tx).await?;
        Ok(Some(revoked))
    }
}

#[async_trait]
impl<D: Dialect> Sessions for SqlStore<D> {
    async fn create_session(&self, s: NewSession) -> Result<SessionOpen, StoreError> {
        let mut tx = self.begin().await?;
        let id = s.id.to_string();
        // One conditional insert: only while the user is as the login read them. Where
        // rows are locked the user row is held FOR SHARE until the commit, so a password
        // change, deactivation or deletion either came before (its stamp is seen here)
        // or waits for this one (and its revocation then sees this session). A session
        // of an authorization code holds, the same way, the code's row (read by its key
        // alone: a lock is taken only on the rows a query returns, so a condition on
        // `reused_at` inside the locking read would skip the lock), so a replay marking it
        // comes before (seen here) or after the commit (its revocation sees this
        // session); and the user's consent to the application, so that taking the
        // application back either comes first or sees this session. One
        // statement, so SQLite takes its write lock at once and waits out another
        // writer (a `tokengate user` command) instead of failing between a read and a
        // write.
        let sql = format!(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, max_expires_at, user_agent, device_name, ip,
                                   auth_time, amr, client_id, scope)
             SELECT $1, $2, $3, $3, $4, $5, $6, $7, $8, $10, $11, $12, $13
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND is_active AND security_stamp = $9{share})
               AND (SELECT reused_at FROM oauth_codes WHERE code_hash = $14{share}) IS NULL
               AND ($14 IS NULL OR EXISTS (SELECT 1 FROM oauth_consents WHERE user_id = $2 AND client_id = $12{share}))
               AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.code_hash = $14 AND c.browser_session_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM sessions b WHERE b.id = c.browser_session_id AND b.revoked_at IS NULL
                                   AND b.expires_at > $3{share}))",
            share = D::FOR_SHARE
        );
        let client_id = s.client.as_ref().map(|c| c.id.to_string());
        let scope = s.client.as_ref().map(|c| Scope::join(&c.scopes));
        let opened = Self::exec(
            &mut tx,
            &sql,
            &[
                Text(&id),
                Text(&s.user_id.to_string()),
                Int(s.now.0),
                Int(s.expires_at.0),
                Int(s.max_expires_at.0),
                OptText(s.user_agent.as_deref()),
                OptText(s.device_name.as_deref()),
                OptText(s.ip.as_deref()),
                Int(s.expected_stamp),
                Int(s.auth.at.0),
                Text(&s.auth.methods_to_store()),
                OptText(client_id.as_deref()),
                OptText(scope.as_deref()),
                OptText(s.from_code.as_ref().map(|c| c.as_str())),
            ],
        )
        .await?;
        if opened == 0 {
            Self::rollback(tx).await?;
            return Ok(SessionOpen::UserChanged);
        }
        Self::exec(
            &mut tx,
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[
                Text(s.refresh_hash.as_str()),
                Text(&id),
                Int(s.now.0),
                Int(s.expires_at.0),
            ],
        )
        .await?;
        Self::commit(tx).await?;
        Ok(SessionOpen::Opened)
    }

    async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            &SESSION_WITH_USER,
            &[Text(&id.to_string())],
        )
        .await?;
        row.map(|r| Ok((Rows::<D>::session(&r)?, Rows::<D>::user(&r)?)))
            .transpose()
    }

    async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
             ORDER BY s.last_used_at DESC, s.created_at DESC"
        );
        let rows = Self::all(
            &mut *self.reading().await?,
            &sql,
            &[Text(&user.to_string()), Int(now.0)],
        )
        .await?;
        rows.iter().map(Rows::<D>::session).collect()
    }

    async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            "SELECT session_id, used_at, expires_at FROM refresh_tokens WHERE token_hash = $1",
            &[Text(refresh.as_str())],
        )
        .await?;
        row.map(|r| {
            Ok(StoredRefreshToken {
                session_id: Rows::<D>::parsed(&r, "session_id")?,
                spent: D::DB::opt_int(&r, "used_at").map_err(err::<D>)?.is_some(),
                expires_at: UnixTime(D::DB::int(&r, "expires_at").map_err(err::<D>)?),
            })
        })
        .transpose()
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError> {
        D::rotate_refresh(self.writer(), req).await
    }

    async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = Self::exec(
            &mut tx,
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            &[Int(now.0), Text(&id.to_string()), Text(&user.to_string())],
        )
        .await?;
        let revoked = done == 1;
        if revoked {
            Self::log_revocation(&mut tx, Revoked::Session(id), now).await?;
        }
        Self::commit(tx).await?;
        Ok(revoked)
    }

    async fn revoke_session_of_refresh(
        &self,
        user: Option<UserId>,
        refresh: &RefreshTokenHash,
        now: UnixTime,
    ) -> Result<Option<(UserId, SessionId)>, StoreError> {
        let user = user.as_ref().map(id_param);
        let mut tx = self.begin().await?;
        let row = Self::optional(
            &mut tx,
            "UPDATE sessions SET revoked_at = $1
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)
               AND ($3 IS NULL OR user_id = $3) AND revoked_at IS NULL
             RETURNING id, user_id",
            &[Int(now.0), Text(refresh.as_str()), OptText(user.as_deref())],
        )
        .await?;
        let revoked: Option<(UserId, SessionId)> = row
            .map(|r| Ok::<_, StoreError>((Rows::<D>::parsed(&r, "user_id")?, Rows::<D>::parsed(&r, "id")?)))
            .transpose()?;
        if let Some((_, session)) = revoked {
            Self::log_revocation(&mut tx, Revoked::Session(session), now).await?;
        }
        Self::commit(tx).await?;
        Ok(revoked)
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut tx = self.begin().await?;
        let revoked = Self::revoke_all_in(&mut tx, user, keep, now).await?;
        Self::commit(tx).await?;
        Ok(revoked)
    }
}

#[async_trait]
impl<D: Dialect> Keys for SqlStore<D> {
    async fn server_secret(&self, name: &str, fresh: Vec<u8>, now: UnixTime) -> Result<Vec<u8>, StoreError> {
        let mut c = self.writing().await?;
        Self::exec(
            &mut c,
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[Text(name), Text(&B64.encode(&fresh)), Int(now.0)],
        )
        .await?;
        let row = Self::optional(
            &mut c,
            "SELECT value FROM server_secrets WHERE name = $1",
            &[Text(name)],
        )
        .await?
        .ok_or_else(|| StoreError::Backend(format!("server secret {name:?} vanished")))?;
        Rows::<D>::base64(&row, "value")
    }

    async fn stored_server_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            "SELECT value FROM server_secrets WHERE name = $1",
            &[Text(name)],
        )
        .await?;
        row.map(|r| Rows::<D>::base64(&r, "value")).transpose()
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            "SELECT kid, purpose, algorithm, private_key, state, created_at, signs_from, retires_at FROM signing_keys
             ORDER BY state = 'active' DESC, created_at DESC",
            &[],
        )
        .await?;
        rows.iter().map(Rows::<D>::key).collect()
    }

    async fn replace_key_material(&self, kid: &str, private_der: Vec<u8>) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE signing_keys SET private_key = $1 WHERE kid = $2",
            &[Text(&B64.encode(&private_der)), Text(kid)],
        )
        .await?;
        Ok(done == 1)
    }

    async fn replace_server_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE server_secrets SET value = $1 WHERE name = $2",
            &[Text(&B64.encode(&value)), Text(name)],
        )
        .await?;
        Ok(done == 1)
    }

    async fn add_active_key(&self, key: StoredKey) -> Result<(), StoreError> {
        Self::insert_key(&mut *self.writing().await?, &key).await
    }

    async fn rotate_key(&self, key: StoredKey, now: UnixTime, retires_at: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        Self::exec(
            &mut tx,
            "UPDATE signing_keys SET state = 'retired', retired_at = $1, retires_at = $2
             WHERE state = 'active' AND purpose = $3",
            &[Int(now.0), Int(retires_at.0), Text(key.purpose.as_str())],
        )
        .await?;
        Self::insert_key(&mut tx, &key).await?;
        Self::commit(tx).await
    }

    async fn retire_key_at(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError> {
        // Only ever earlier: a key already due to stop verifying keeps its end.
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE signing_keys SET retires_at = CASE WHEN retires_at IS NULL OR retires_at > $1 THEN $1 ELSE retires_at END
             WHERE kid = $2 AND state = 'retired'",
            &[Int(at.0), Text(kid)],
        )
        .await?;
        Ok(done == 1)
    }
}

#[async_trait]
impl<D: Dialect> RevocationLog for SqlStore<D> {
    async fn revocations_after(&self, seq: i64) -> Result<Vec<LoggedRevocation>, StoreError> {
        // A reader: each statement outside a transaction sees every commit before it,
        // and the catch-up never queues behind a writer.
        let rows = Self::all(
            &mut *self.reading().await?,
            "SELECT seq, session_id, user_id, client_id FROM revocations WHERE seq > $1 ORDER BY seq",
            &[Int(seq)],
        )
        .await?;
        rows.iter().map(Rows::<D>::revocation).collect()
    }

    async fn purge_revocations(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        Self::exec(
            &mut *self.writing().await?,
            "DELETE FROM revocations WHERE created_at < $1",
            &[Int(cutoff.0)],
        )
        .await
    }
}

/// The per-request check's read: a session and its user (`$1`: the session id).
static SESSION_WITH_USER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {SESSION_COLUMNS}, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1")
});
