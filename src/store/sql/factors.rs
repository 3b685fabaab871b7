//! Second factors, for both SQL backends: a TOTP factor per user and their recovery
//! codes. Turning MFA on or off moves the user's stamp and revokes sessions in the same
//! transaction; a step or a code is spent by one conditional write.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::Database;

use super::SqlStore;
use super::db::Param::{Flag, Int, Text};
use super::dialect::Dialect;
use super::rows::Rows;
use crate::crypto::recovery_codes::RecoveryCodeHash;
use crate::domain::{SessionId, UnixTime, UserId};
use crate::store::{
    AddPasskey, ConfirmTotp, FactorChanges, FactorScope, FactorsRemoved, NewMail, PasskeyAdded, PasskeyRemoved,
    RemoveFactors, RemovePasskey, Revoked, SecondFactorState, SecondFactors, StoreError, StoredTotp,
};

impl<D: Dialect> SqlStore<D> {
    /// Delete every factor (passkeys too) and code of `user` and turn their MFA off.
    pub(super) async fn delete_factors_in(
        c: &mut <D::DB as Database>::Connection,
        user: &str,
    ) -> Result<(), StoreError> {
        let who = [Text(user)];
        Self::exec(c, "DELETE FROM totp_factors WHERE user_id = $1", &who).await?;
        Self::exec(c, "DELETE FROM passkeys WHERE user_id = $1", &who).await?;
        Self::exec(c, "DELETE FROM recovery_codes WHERE user_id = $1", &who).await?;
        Self::exec(
            c,
            "UPDATE users SET mfa_enabled = $2 WHERE id = $1",
            &[Text(user), Flag(false)],
        )
        .await?;
        Ok(())
    }

    /// Replace `user`'s recovery codes by `codes`.
    pub(super) async fn replace_codes_in(
        c: &mut <D::DB as Database>::Connection,
        user: &str,
        codes: &[RecoveryCodeHash],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        Self::exec(c, "DELETE FROM recovery_codes WHERE user_id = $1", &[Text(user)]).await?;
        for code in codes {
            Self::exec(
                c,
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                &[Text(user), Text(code.as_str()), Int(now.0)],
            )
            .await?;
        }
        Ok(())
    }

    /// After a change that turns MFA on or off: the stamp moved in it, so every session
    /// but `keep` dies and every instance's cache forgets the user; the mail goes with it.
    pub(super) async fn after_mfa_change(
        c: &mut <D::DB as Database>::Connection,
        user: UserId,
        keep: Option<SessionId>,
        now: UnixTime,
        mails: &[NewMail],
    ) -> Result<Vec<SessionId>, StoreError> {
        let revoked = Self::revoke_all_in(c, user, keep, now).await?;
        Self::log_revocation(c, Revoked::User(user), now).await?;
        for mail in mails {
            Self::insert_mail(c, mail, now).await?;
        }
        Ok(revoked)
    }
}

#[async_trait]
impl<D: Dialect> SecondFactors for SqlStore<D> {
    async fn second_factors(&self, user: UserId) -> Result<SecondFactorState, StoreError> {
        let mut c = self.reading().await?;
        let who = user.to_string();
        let totp = Self::optional(
            &mut c,
            "SELECT secret, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = $1",
            &[Text(&who)],
        )
        .await?
        .map(|row| {
            Ok::<_, StoreError>(StoredTotp {
                secret: Rows::<D>::base64(&row, "secret")?,
                created_at: UnixTime(Rows::<D>::int(&row, "created_at")?),
                confirmed_at: Rows::<D>::opt_int(&row, "confirmed_at")?.map(UnixTime),
                last_step: Rows::<D>::opt_int(&row, "last_step")?,
            })
        })
        .transpose()?;
        let left = Self::optional(
            &mut c,
            "SELECT count(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            &[Text(&who)],
        )
        .await?
        .map(|row| Rows::<D>::int(&row, "n"))
        .transpose()?
        .unwrap_or(0);
        let passkeys = Self::optional(
            &mut c,
            "SELECT count(*) AS n FROM passkeys WHERE user_id = $1",
            &[Text(&who)],
        )
        .await?
        .map(|row| Rows::<D>::int(&row, "n"))
        .transpose()?
        .unwrap_or(0);
        Ok(SecondFactorState {
            totp,
            recovery_codes_left: u32::try_from(left).unwrap_or(0),
            passkeys: u32::try_from(passkeys).unwrap_or(0),
        })
    }

    async fn begin_totp(&self, user: UserId, secret: Vec<u8>, now: UnixTime) -> Result<bool, StoreError> {
        // One statement: a pending factor is replaced, a confirmed one is left alone.
        let written = Self::exec(
            &mut *self.writing().await?,
            "INSERT INTO totp_factors (user_id, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at,
                 last_step = NULL
             WHERE totp_factors.confirmed_at IS NULL",
            &[Text(&user.to_string()), Text(&B64.encode(&secret)), Int(now.0)],
        )
        .await?;
        Ok(written == 1)
    }

    async fn advance_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE totp_factors SET last_step = $2
             WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
            &[Text(&user.to_string()), Int(step)],
        )
        .await?;
        Ok(done == 1)
    }

    async fn recovery_code_unused(&self, user: UserId, code: &RecoveryCodeHash) -> Result<bool, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            "SELECT 1 AS found FROM recovery_codes WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            &[Text(&user.to_string()), Text(code.as_str())],
        )
        .await?;
        Ok(row.is_some())
    }

    async fn spend_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            &[Text(&user.to_string()), Text(code.as_str()), Int(now.0)],
        )
        .await?;
        Ok(done == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: Vec<RecoveryCodeHash>,
        now: UnixTime,
        mails: Vec<NewMail>,
    ) -> Result<bool, StoreError> {
        let who = user.to_string();
        let mut tx = self.begin().await?;
        let on = Self::exec(
            &mut tx,
            "UPDATE users SET updated_at = updated_at WHERE id = $1 AND mfa_enabled",
            &[Text(&who)],
        )
        .await?;
        if on == 0 {
            Self::rollback(tx).await?;
            return Ok(false);
        }
        Self::replace_codes_in(&mut tx, &who, &codes, now).await?;
        for mail in &mails {
            Self::insert_mail(&mut tx, mail, now).await?;
        }
        Self::commit(tx).await?;
        Ok(true)
    }

    async fn totp_secrets(&self) -> Result<Vec<(UserId, Vec<u8>)>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            "SELECT user_id, secret FROM totp_factors ORDER BY user_id",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((Rows::<D>::parsed(r, "user_id")?, Rows::<D>::base64(r, "secret")?)))
            .collect()
    }

    async fn reseal_totp_secret(&self, user: UserId, old: Vec<u8>, new: Vec<u8>) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE totp_factors SET secret = $3 WHERE user_id = $1 AND secret = $2",
            &[
                Text(&user.to_string()),
                Text(&B64.encode(&old)),
                Text(&B64.encode(&new)),
            ],
        )
        .await?;
        Ok(done == 1)
    }
}

#[async_trait]
impl<D: Dialect> FactorChanges for SqlStore<D> {
    async fn confirm_totp(&self, confirm: ConfirmTotp) -> Result<Option<Vec<SessionId>>, StoreError> {
        let ConfirmTotp {
            user,
            secret,
            step,
            codes,
            keep,
            keep_auth,
            now,
            mails,
        } = confirm;
        let who = user.to_string();
        let mut tx = self.begin().await?;
        // The user's row first, as every change to the user takes it.
        Self::exec(
            &mut tx,
            "UPDATE users SET mfa_enabled = $3, security_stamp = security_stamp + 1, updated_at = $2
             WHERE id = $1 AND is_active",
            &[Text(&who), Int(now.0), Flag(true)],
        )
        .await?;
        let confirmed = Self::exec(
            &mut tx,
            "UPDATE totp_factors SET confirmed_at = $2, last_step = $3
             WHERE user_id = $1 AND confirmed_at IS NULL AND secret = $4
               AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND is_active)",
            &[Text(&who), Int(now.0), Int(step), Text(&B64.encode(&secret))],
        )
        .await?;
        if confirmed == 0 {
            Self::rollback(tx).await?;
            return Ok(None);
        }
        Self::replace_codes_in(&mut tx, &who, &codes, now).await?;
        Self::exec(
            &mut tx,
            "UPDATE sessions SET amr = $3 WHERE id = $1 AND user_id = $2",
            &[Text(&keep.to_string()), Text(&who), Text(&keep_auth.methods_to_store())],
        )
        .await?;
        let revoked = Self::after_mfa_change(&mut tx, user, Some(keep), now, &mails).await?;
        Self::commit(tx).await?;
        Ok(Some(revoked))
    }

    async fn remove_second_factors(&self, removal: RemoveFactors) -> Result<FactorsRemoved, StoreError> {
        let RemoveFactors {
            user,
            scope,
            keep_a_factor,
            keep,
            now,
            mails,
        } = removal;
        let who = user.to_string();
        let mut tx = self.begin().await?;
        let had = Self::exec(
            &mut tx,
            "UPDATE users SET security_stamp = security_stamp + 1, updated_at = $2 WHERE id = $1 AND mfa_enabled",
            &[Text(&who), Int(now.0)],
        )
        .await?;
        if had == 0 {
            Self::rollback(tx).await?;
            return Ok(FactorsRemoved::Nothing);
        }
        match scope {
            FactorScope::Every => Self::delete_factors_in(&mut tx, &who).await?,
            FactorScope::Totp => {
                let confirmed = Self::exec(
                    &mut tx,
                    "DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
                    &[Text(&who)],
                )
                .await?;
                if confirmed == 0 {
                    Self::rollback(tx).await?;
                    return Ok(FactorsRemoved::Nothing);
                }
                if keep_a_factor && !Self::has_a_factor_in(&mut tx, &who).await? {
                    Self::rollback(tx).await?;
                    return Ok(FactorsRemoved::LastFactor);
                }
                Self::off_without_factors_in(&mut tx, &who).await?;
            }
        }
        let revoked = Self::after_mfa_change(&mut tx, user, keep, now, &mails).await?;
        Self::commit(tx).await?;
        Ok(FactorsRemoved::Removed(revoked))
    }

    async fn add_passkey(&self, add: AddPasskey) -> Result<PasskeyAdded, StoreError> {
        self.add_passkey_in(add).await
    }

    async fn remove_passkey(&self, remove: RemovePasskey) -> Result<PasskeyRemoved, StoreError> {
        self.remove_passkey_in(remove).await
    }
}
