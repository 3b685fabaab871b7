//! One-time mail tokens and the mail outbox, for both SQL backends. A token is written
//! in the same transaction as the mail that carries it, and spent by one conditional
//! write in the same transaction as what it does.

use async_trait::async_trait;
use sqlx::Database;

use super::SqlStore;
use super::db::Db;
use super::db::Param::{Flag, Int, OptText, Text};
use super::dialect::{Dialect, err};
use super::rows::Rows;
use crate::crypto::tokens::OneTimeTokenHash;
use crate::domain::{Email, MailId, TokenPurpose, UnixTime};
use crate::store::{
    ClaimedMail, Delivery, MailEntry, NewMail, NewOneTimeToken, OneTimeTokens, Outbox, OutboxStats, Redeem, Redeemed,
    Redemption, Revoked, StoreError, StoredOneTimeToken,
};

type Row<D> = <<D as Dialect>::DB as Database>::Row;

/// A one-time token's columns, as [`SqlStore::one_time`] reads them.
const ONE_TIME_COLUMNS: &str = "purpose, user_id, email, stamp, expires_at, used_at, attempts, context";

/// What a message still waiting is: neither delivered nor given up on.
const WAITING: &str = "sent_at IS NULL AND failed_at IS NULL";

/// Lock the user `$1` (a write: a row lock where rows are locked, the write lock on
/// SQLite) if they are active with stamp `$2`; one row, or none.
const LOCK_USER_AS_READ: &str =
    "UPDATE users SET updated_at = updated_at WHERE id = $1 AND is_active AND security_stamp = $2";

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn insert_mail(
        c: &mut <D::DB as Database>::Connection,
        mail: &NewMail,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        Self::exec(
            c,
            "INSERT INTO mail_outbox (id, recipient, kind, message, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
            &[
                Text(&mail.id.to_string()),
                Text(mail.recipient.as_str()),
                Text(mail.kind),
                Text(&mail.message),
                Int(now.0),
            ],
        )
        .await?;
        Ok(())
    }

    /// Spend every live token of `user` (but those of purpose `but`).
    async fn spend_all_of(
        c: &mut <D::DB as Database>::Connection,
        user: &str,
        but: Option<TokenPurpose>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        Self::exec(
            c,
            "UPDATE one_time_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL AND purpose <> $3",
            &[Int(now.0), Text(user), Text(but.map_or("", TokenPurpose::as_str))],
        )
        .await?;
        Ok(())
    }

    /// Spend the live token `hash` of `purpose` (one conditional write); its row.
    async fn spend_in(
        c: &mut <D::DB as Database>::Connection,
        hash: &OneTimeTokenHash,
        purpose: TokenPurpose,
        now: UnixTime,
    ) -> Result<Option<Row<D>>, StoreError> {
        Self::optional(
            c,
            &format!(
                "UPDATE one_time_tokens SET used_at = $1
                 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1
                 RETURNING {ONE_TIME_COLUMNS}"
            ),
            &[Int(now.0), Text(hash.as_str()), Text(purpose.as_str())],
        )
        .await
    }

    fn one_time(row: &Row<D>) -> Result<StoredOneTimeToken, StoreError> {
        let purpose = Rows::<D>::text(row, "purpose")?;
        Ok(StoredOneTimeToken {
            purpose: TokenPurpose::from_store(&purpose)
                .ok_or_else(|| StoreError::Backend(format!("unknown one-time token purpose {purpose:?}")))?,
            user: Rows::<D>::parsed(row, "user_id")?,
            email: Email::from_store(Rows::<D>::text(row, "email")?),
            stamp: Rows::<D>::int(row, "stamp")?,
            expires_at: UnixTime(Rows::<D>::int(row, "expires_at")?),
            used_at: D::DB::opt_int(row, "used_at").map_err(err::<D>)?.map(UnixTime),
            attempts: Rows::<D>::int(row, "attempts")?,
            context: D::DB::opt_text(row, "context").map_err(err::<D>)?,
        })
    }

    fn mail_entry(row: &Row<D>) -> Result<MailEntry, StoreError> {
        let opt_time = |col| Ok::<_, StoreError>(D::DB::opt_int(row, col).map_err(err::<D>)?.map(UnixTime));
        Ok(MailEntry {
            id: Rows::<D>::parsed(row, "id")?,
            recipient: Rows::<D>::text(row, "recipient")?,
            kind: Rows::<D>::text(row, "kind")?,
            created_at: UnixTime(Rows::<D>::int(row, "created_at")?),
            attempts: Rows::<D>::int(row, "attempts")?,
            next_attempt_at: UnixTime(Rows::<D>::int(row, "next_attempt_at")?),
            sent_at: opt_time("sent_at")?,
            failed_at: opt_time("failed_at")?,
            last_error: D::DB::opt_text(row, "last_error").map_err(err::<D>)?,
        })
    }
}

#[async_trait]
impl<D: Dialect> OneTimeTokens for SqlStore<D> {
    async fn issue_one_time(&self, t: NewOneTimeToken) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let user = t.user.to_string();
        // The user's row first, as a redemption takes it: two issues for one user (or an
        // issue and a redemption) go one after the other, and never lock in opposite
        // orders. A write, so SQLite takes its write lock at once too.
        let live = Self::exec(&mut tx, LOCK_USER_AS_READ, &[Text(&user), Int(t.expected_stamp)]).await?;
        if live == 0 {
            Self::rollback(tx).await?;
            return Ok(false);
        }
        if t.replaces_older {
            Self::exec(
                &mut tx,
                "UPDATE one_time_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
                &[Int(t.now.0), Text(&user), Text(t.purpose.as_str())],
            )
            .await?;
        }
        Self::exec(
            &mut tx,
            "INSERT INTO one_time_tokens (token_hash, purpose, user_id, email, stamp, created_at, expires_at, context)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                Text(t.hash.as_str()),
                Text(t.purpose.as_str()),
                Text(&user),
                Text(t.email.as_str()),
                Int(t.expected_stamp),
                Int(t.now.0),
                Int(t.expires_at.0),
                OptText(t.context.as_deref()),
            ],
        )
        .await?;
        for mail in &t.mails {
            Self::insert_mail(&mut tx, mail, t.now).await?;
        }
        Self::commit(tx).await?;
        Ok(true)
    }

    async fn one_time_token(&self, hash: &OneTimeTokenHash) -> Result<Option<StoredOneTimeToken>, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            &format!("SELECT {ONE_TIME_COLUMNS} FROM one_time_tokens WHERE token_hash = $1"),
            &[Text(hash.as_str())],
        )
        .await?;
        row.as_ref().map(Self::one_time).transpose()
    }

    async fn attempt_one_time(
        &self,
        hash: &OneTimeTokenHash,
        purpose: TokenPurpose,
        now: UnixTime,
        max: i64,
    ) -> Result<Option<StoredOneTimeToken>, StoreError> {
        let row = Self::optional(
            &mut *self.writing().await?,
            &format!(
                "UPDATE one_time_tokens SET attempts = attempts + 1
                 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 AND attempts < $4
                 RETURNING {ONE_TIME_COLUMNS}"
            ),
            &[Int(now.0), Text(hash.as_str()), Text(purpose.as_str()), Int(max)],
        )
        .await?;
        row.as_ref().map(Self::one_time).transpose()
    }

    async fn spend_one_time(
        &self,
        hash: &OneTimeTokenHash,
        purpose: TokenPurpose,
        now: UnixTime,
    ) -> Result<Option<StoredOneTimeToken>, StoreError> {
        let row = Self::spend_in(&mut *self.writing().await?, hash, purpose, now).await?;
        row.as_ref().map(Self::one_time).transpose()
    }

    async fn redeem_one_time(&self, r: Redeem) -> Result<Option<Redeemed>, StoreError> {
        let purpose = r.effect.purpose();
        let mut tx = self.begin().await?;
        // The token's user first (see `issue_one_time`).
        Self::exec(
            &mut tx,
            "UPDATE users SET updated_at = updated_at
             WHERE id = (SELECT user_id FROM one_time_tokens WHERE token_hash = $1)",
            &[Text(r.hash.as_str())],
        )
        .await?;
        // The spend: one conditional write, so of two redemptions one wins.
        let spent = Self::spend_in(&mut tx, &r.hash, purpose, r.now).await?;
        let Some(token) = spent.as_ref().map(Self::one_time).transpose()? else {
            Self::rollback(tx).await?;
            return Ok(None);
        };
        let before = match Self::user_for_update(&mut tx, token.user).await? {
            Some(u) if u.is_active && (!r.check_stamp || u.security_stamp == token.stamp) => u,
            _ => {
                Self::rollback(tx).await?;
                return Ok(None);
            }
        };
        // A sign-in that first proves the address replaces what its registrant set.
        let first_proof = match &r.effect {
            Redemption::SignIn { unproven_password } if !before.email_verified => match unproven_password {
                Some(hash) => Some(hash),
                None => {
                    Self::rollback(tx).await?;
                    return Ok(None);
                }
            },
            _ => None,
        };
        let user = token.user.to_string();
        let (now, email, yes) = (Int(r.now.0), Text(token.email.as_str()), Flag(true));
        // Every effect but an email change needs the token's address to be the user's
        // still (a link that went to a former address proves nothing and opens nothing),
        // and proves it.
        let changed =
            match &r.effect {
                Redemption::VerifyEmail | Redemption::SignIn { .. } => Self::exec(
                    &mut tx,
                    "UPDATE users SET email_verified = $4, updated_at = $1 WHERE id = $2 AND lower(email) = lower($3)",
                    &[now, Text(&user), email, yes],
                )
                .await?,
                Redemption::ChangeEmail => {
                    Self::exec(
                        &mut tx,
                        "UPDATE users SET email = $3, email_verified = $4, security_stamp = security_stamp + 1,
                         updated_at = $1 WHERE id = $2",
                        &[now, Text(&user), email, yes],
                    )
                    .await?
                }
                Redemption::ResetPassword { hash } => {
                    Self::exec(
                        &mut tx,
                        "UPDATE users SET password_hash = $4, security_stamp = security_stamp + 1, email_verified = $5,
                         updated_at = $1 WHERE id = $2 AND lower(email) = lower($3)",
                        &[now, Text(&user), email, Text(&hash.0), yes],
                    )
                    .await?
                }
            };
        if changed == 0 {
            Self::rollback(tx).await?;
            return Ok(None);
        }
        let mut revoked = Vec::new();
        if let Some(hash) = first_proof {
            Self::exec(
                &mut tx,
                "UPDATE users SET password_hash = $3, security_stamp = security_stamp + 1, updated_at = $1 WHERE id = $2",
                &[now, Text(&user), Text(&hash.0)],
            )
            .await?;
            revoked = Self::revoke_all_in(&mut tx, token.user, None, r.now).await?;
            Self::spend_all_of(&mut tx, &user, None, r.now).await?;
            // Second factors its registrant enrolled too.
            Self::delete_factors_in(&mut tx, &user).await?;
        }
        match &r.effect {
            Redemption::ResetPassword { .. } => {
                revoked = Self::revoke_all_in(&mut tx, token.user, None, r.now).await?;
                // Resets, sign-in links and email changes in flight die with the old
                // password (their stamp moved too); a verification stays good.
                Self::spend_all_of(&mut tx, &user, Some(TokenPurpose::VerifyEmail), r.now).await?;
            }
            // Every link in flight went to the old address.
            Redemption::ChangeEmail => Self::spend_all_of(&mut tx, &user, None, r.now).await?,
            Redemption::VerifyEmail | Redemption::SignIn { .. } => {}
        }
        // Every instance's cache forgets the user's record (address, stamp).
        Self::log_revocation(&mut tx, Revoked::User(token.user), r.now).await?;
        for mail in &r.mails {
            Self::insert_mail(&mut tx, mail, r.now).await?;
        }
        let user = Self::user_for_update(&mut tx, token.user)
            .await?
            .ok_or_else(|| StoreError::Backend("redeeming user vanished".into()))?;
        Self::commit(tx).await?;
        Ok(Some(Redeemed { user, revoked }))
    }
}

#[async_trait]
impl<D: Dialect> Outbox for SqlStore<D> {
    async fn enqueue_mail(&self, mails: Vec<NewMail>, now: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for mail in &mails {
            Self::insert_mail(&mut tx, mail, now).await?;
        }
        Self::commit(tx).await
    }

    async fn claim_mail(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        // The claim conditions are checked again on each row the update reaches: a row
        // another sender claimed while this one waited for its lock is passed over.
        let sql = format!(
            "UPDATE mail_outbox SET claimed_until = $2, attempts = attempts + 1, claims = claims + 1
             WHERE id IN (SELECT id FROM mail_outbox
                          WHERE {WAITING} AND next_attempt_at <= $1
                            AND (claimed_until IS NULL OR claimed_until <= $1)
                          ORDER BY next_attempt_at LIMIT $3{})
               AND {WAITING} AND (claimed_until IS NULL OR claimed_until <= $1)
             RETURNING id, recipient, kind, message, attempts, claims, created_at",
            D::SKIP_LOCKED
        );
        let rows = Self::all(
            &mut *self.writing().await?,
            &sql,
            &[Int(now.0), Int(lease_until.0), Int(i64::from(limit))],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedMail {
                    id: Rows::<D>::parsed(row, "id")?,
                    recipient: Rows::<D>::text(row, "recipient")?,
                    kind: Rows::<D>::text(row, "kind")?,
                    message: Rows::<D>::text(row, "message")?,
                    attempt: Rows::<D>::int(row, "attempts")?,
                    claim: Rows::<D>::int(row, "claims")?,
                    created_at: UnixTime(Rows::<D>::int(row, "created_at")?),
                })
            })
            .collect()
    }

    async fn finish_mail(&self, id: MailId, claim: i64, outcome: Delivery, now: UnixTime) -> Result<bool, StoreError> {
        let id = id.to_string();
        // Only the sender holding the latest claim may record it.
        let fence = "id = $2 AND claims = $3 AND sent_at IS NULL AND failed_at IS NULL";
        let (sql, error) = match &outcome {
            // Delivered: the body (a token's link) is not kept.
            Delivery::Sent => (
                format!(
                    "UPDATE mail_outbox SET sent_at = $1, message = '', claimed_until = NULL, last_error = NULL WHERE {fence}"
                ),
                None,
            ),
            Delivery::Retry { error, .. } => (
                format!(
                    "UPDATE mail_outbox SET next_attempt_at = $5, claimed_until = NULL, last_error = $4 WHERE {fence}"
                ),
                Some(error.as_str()),
            ),
            Delivery::GiveUp { error } => (
                format!("UPDATE mail_outbox SET failed_at = $1, claimed_until = NULL, last_error = $4 WHERE {fence}"),
                Some(error.as_str()),
            ),
        };
        let mut params = vec![Int(now.0), Text(&id), Int(claim)];
        if let Some(e) = error {
            params.push(Text(e));
        }
        if let Delivery::Retry { retry_at, .. } = &outcome {
            params.push(Int(retry_at.0));
        }
        Ok(Self::exec(&mut *self.writing().await?, &sql, &params).await? == 1)
    }

    async fn list_mail(&self, failed_only: bool, limit: u32) -> Result<Vec<MailEntry>, StoreError> {
        let filter = if failed_only { "WHERE failed_at IS NOT NULL" } else { "" };
        let sql = format!(
            "SELECT id, recipient, kind, created_at, attempts, next_attempt_at, sent_at, failed_at, last_error
             FROM mail_outbox {filter} ORDER BY created_at DESC, id LIMIT $1"
        );
        let rows = Self::all(&mut *self.reading().await?, &sql, &[Int(i64::from(limit))]).await?;
        rows.iter().map(Self::mail_entry).collect()
    }

    async fn retry_mail(&self, id: Option<MailId>, now: UnixTime) -> Result<u64, StoreError> {
        let id = id.map(|i| i.to_string());
        Self::exec(
            &mut *self.writing().await?,
            "UPDATE mail_outbox SET failed_at = NULL, attempts = 0, next_attempt_at = $1, claimed_until = NULL
             WHERE failed_at IS NOT NULL AND sent_at IS NULL AND ($2 IS NULL OR id = $2)",
            &[Int(now.0), OptText(id.as_deref())],
        )
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let sql = format!(
            "SELECT (SELECT count(*) FROM mail_outbox WHERE {WAITING}) AS queued,
                    (SELECT count(*) FROM mail_outbox WHERE failed_at IS NOT NULL) AS failed,
                    (SELECT min(created_at) FROM mail_outbox WHERE {WAITING}) AS oldest,
                    (SELECT min(CASE WHEN claimed_until > next_attempt_at THEN claimed_until
                                     ELSE next_attempt_at END)
                       FROM mail_outbox WHERE {WAITING}) AS next_due"
        );
        let row = Self::optional(&mut *self.reading().await?, &sql, &[])
            .await?
            .ok_or_else(|| StoreError::Backend("no row from a SELECT".into()))?;
        let count = |col| Rows::<D>::int(&row, col).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(OutboxStats {
            queued: count("queued")?,
            failed: count("failed")?,
            oldest_queued: D::DB::opt_int(&row, "oldest").map_err(err::<D>)?.map(UnixTime),
            next_due: D::DB::opt_int(&row, "next_due").map_err(err::<D>)?.map(UnixTime),
        })
    }
}
