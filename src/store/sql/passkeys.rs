//! Passkeys and WebAuthn ceremonies, for both SQL backends. Adding or removing a
//! passkey moves the user's stamp and revokes sessions in the same transaction (as a
//! TOTP factor does); a use is one conditional write on the counter; a ceremony is
//! taken by one conditional delete.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::SqlStore;
use super::db::Db as _;
use super::db::Param::{Flag, Int, OptText, Text};
use super::dialect::Dialect;
use super::rows::Rows;
use crate::crypto::tokens::OneTimeTokenHash;
use crate::domain::{CeremonyKind, PasskeyId, PasskeyName, UnixTime, UserId};
use crate::store::{
    AddPasskey, NewCeremony, PasskeyAdded, PasskeyRemoved, PasskeyUse, Passkeys, RemovePasskey, StoreError,
    StoredPasskey, TakenCeremony,
};

const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, rp_id, name, credential, sign_count, created_at, last_used_at";

type Row<D> = <<D as Dialect>::DB as sqlx::Database>::Row;

fn passkey<D: Dialect>(row: &Row<D>) -> Result<StoredPasskey, StoreError> {
    let malformed = |col: &str| StoreError::Backend(format!("malformed {col} in database"));
    Ok(StoredPasskey {
        id: Rows::<D>::parsed(row, "id")?,
        user: Rows::<D>::parsed(row, "user_id")?,
        credential_id: B64URL
            .decode(Rows::<D>::text(row, "credential_id")?)
            .map_err(|_| malformed("credential_id"))?,
        rp_id: Rows::<D>::text(row, "rp_id")?,
        name: PasskeyName::parse(&Rows::<D>::text(row, "name")?).map_err(|_| malformed("name"))?,
        credential: Rows::<D>::text(row, "credential")?,
        sign_count: u32::try_from(Rows::<D>::int(row, "sign_count")?).map_err(|_| malformed("sign_count"))?,
        created_at: UnixTime(Rows::<D>::int(row, "created_at")?),
        last_used_at: Rows::<D>::opt_int(row, "last_used_at")?.map(UnixTime),
    })
}

impl<D: Dialect> SqlStore<D> {
    /// Whether `user` has a factor left: a passkey or a confirmed TOTP factor.
    pub(super) async fn has_a_factor_in(
        c: &mut <D::DB as sqlx::Database>::Connection,
        user: &str,
    ) -> Result<bool, StoreError> {
        let row = Self::optional(
            c,
            "SELECT 1 AS found WHERE EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)
                OR EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
            &[Text(user)],
        )
        .await?;
        Ok(row.is_some())
    }

    /// With no factor left: the recovery codes go and MFA turns off; whether it did.
    pub(super) async fn off_without_factors_in(
        c: &mut <D::DB as sqlx::Database>::Connection,
        user: &str,
    ) -> Result<bool, StoreError> {
        if Self::has_a_factor_in(c, user).await? {
            return Ok(false);
        }
        Self::exec(c, "DELETE FROM recovery_codes WHERE user_id = $1", &[Text(user)]).await?;
        Self::exec(
            c,
            "UPDATE users SET mfa_enabled = $2 WHERE id = $1",
            &[Text(user), Flag(false)],
        )
        .await?;
        Ok(true)
    }
}

#[async_trait]
impl<D: Dialect> Passkeys for SqlStore<D> {
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<StoredPasskey>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            &format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"),
            &[Text(&user.to_string())],
        )
        .await?;
        rows.iter().map(passkey::<D>).collect()
    }

    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<StoredPasskey>, StoreError> {
        Self::optional(
            &mut *self.reading().await?,
            &format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"),
            &[Text(&B64URL.encode(credential_id))],
        )
        .await?
        .as_ref()
        .map(passkey::<D>)
        .transpose()
    }

    async fn record_passkey_use(&self, used: PasskeyUse) -> Result<bool, StoreError> {
        let count = i64::from(used.sign_count);
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = $4
             WHERE id = $1 AND (sign_count < $3 OR (sign_count = 0 AND $3 = 0))",
            &[
                Text(&used.id.to_string()),
                Text(&used.credential),
                Int(count),
                Int(used.now.0),
            ],
        )
        .await?;
        Ok(done == 1)
    }

    async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: PasskeyName) -> Result<bool, StoreError> {
        let done = Self::exec(
            &mut *self.writing().await?,
            "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2",
            &[Text(&id.to_string()), Text(&user.to_string()), Text(name.as_str())],
        )
        .await?;
        Ok(done == 1)
    }

    async fn open_ceremony(&self, ceremony: NewCeremony) -> Result<(), StoreError> {
        let user = ceremony.user.map(|u| u.to_string());
        Self::exec(
            &mut *self.writing().await?,
            "INSERT INTO webauthn_ceremonies (id_hash, kind, user_id, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Text(ceremony.hash.as_str()),
                Text(ceremony.kind.as_str()),
                OptText(user.as_deref()),
                Text(&ceremony.state),
                Int(ceremony.now.0),
                Int(ceremony.expires_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: &OneTimeTokenHash,
        kind: CeremonyKind,
        now: UnixTime,
    ) -> Result<Option<TakenCeremony>, StoreError> {
        let row = Self::optional(
            &mut *self.writing().await?,
            "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3
             RETURNING user_id, state",
            &[Text(hash.as_str()), Text(kind.as_str()), Int(now.0)],
        )
        .await?;
        row.map(|r| {
            let user = D::DB::opt_text(&r, "user_id")
                .map_err(super::err::<D>)?
                .map(|u| {
                    u.parse()
                        .map_err(|_| StoreError::Backend("malformed user_id in database".into()))
                })
                .transpose()?;
            Ok(TakenCeremony {
                user,
                state: Rows::<D>::text(&r, "state")?,
            })
        })
        .transpose()
    }

    async fn purge_ceremonies(&self, now: UnixTime) -> Result<u64, StoreError> {
        Self::exec(
            &mut *self.writing().await?,
            "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1",
            &[Int(now.0)],
        )
        .await
    }

    async fn passkey_rp_ids(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            "SELECT rp_id, count(*) AS n FROM passkeys GROUP BY rp_id ORDER BY rp_id",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Rows::<D>::text(r, "rp_id")?,
                    u64::try_from(Rows::<D>::int(r, "n")?).unwrap_or(0),
                ))
            })
            .collect()
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn add_passkey_in(&self, add: AddPasskey) -> Result<PasskeyAdded, StoreError> {
        let AddPasskey {
            passkey: p,
            codes_if_first,
            keep,
            keep_auth,
            now,
            mails,
        } = add;
        let who = p.user.to_string();
        let mut tx = self.begin().await?;
        // The user's row first, as every change to the user takes it (a concurrent
        // registration waits here, and then sees MFA on).
        let active = Self::exec(
            &mut tx,
            "UPDATE users SET security_stamp = security_stamp + 1, updated_at = $2 WHERE id = $1 AND is_active",
            &[Text(&who), Int(now.0)],
        )
        .await?;
        if active == 0 {
            Self::rollback(tx).await?;
            return Ok(PasskeyAdded::NoUser);
        }
        let turned_on = Self::exec(
            &mut tx,
            "UPDATE users SET mfa_enabled = $2 WHERE id = $1 AND NOT mfa_enabled",
            &[Text(&who), Flag(true)],
        )
        .await?;
        let was_on = turned_on == 0;
        let inserted = Self::exec(
            &mut tx,
            &format!(
                "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)
                 ON CONFLICT (credential_id) DO NOTHING"
            ),
            &[
                Text(&p.id.to_string()),
                Text(&who),
                Text(&B64URL.encode(&p.credential_id)),
                Text(&p.rp_id),
                Text(p.name.as_str()),
                Text(&p.credential),
                Int(i64::from(p.sign_count)),
                Int(p.created_at.0),
            ],
        )
        .await?;
        if inserted == 0 {
            Self::rollback(tx).await?;
            return Ok(PasskeyAdded::CredentialTaken);
        }
        if !was_on {
            Self::replace_codes_in(&mut tx, &who, &codes_if_first, now).await?;
        }
        Self::exec(
            &mut tx,
            "UPDATE sessions SET amr = $3 WHERE id = $1 AND user_id = $2",
            &[Text(&keep.to_string()), Text(&who), Text(&keep_auth.methods_to_store())],
        )
        .await?;
        let revoked = Self::after_mfa_change(&mut tx, p.user, Some(keep), now, &mails).await?;
        Self::commit(tx).await?;
        Ok(PasskeyAdded::Added {
            revoked,
            mfa_turned_on: !was_on,
        })
    }

    pub(super) async fn remove_passkey_in(&self, remove: RemovePasskey) -> Result<PasskeyRemoved, StoreError> {
        let RemovePasskey {
            user,
            id,
            keep,
            keep_a_factor,
            now,
            mails,
        } = remove;
        let who = user.to_string();
        let mut tx = self.begin().await?;
        Self::exec(
            &mut tx,
            "UPDATE users SET security_stamp = security_stamp + 1, updated_at = $2 WHERE id = $1",
            &[Text(&who), Int(now.0)],
        )
        .await?;
        let deleted = Self::exec(
            &mut tx,
            "DELETE FROM passkeys WHERE id = $1 AND user_id = $2",
            &[Text(&id.to_string()), Text(&who)],
        )
        .await?;
        if deleted == 0 {
            Self::rollback(tx).await?;
            return Ok(PasskeyRemoved::NotFound);
        }
        if keep_a_factor && !Self::has_a_factor_in(&mut tx, &who).await? {
            Self::rollback(tx).await?;
            return Ok(PasskeyRemoved::LastFactor);
        }
        let mfa_turned_off = Self::off_without_factors_in(&mut tx, &who).await?;
        let revoked = Self::after_mfa_change(&mut tx, user, Some(keep), now, &mails).await?;
        Self::commit(tx).await?;
        Ok(PasskeyRemoved::Removed {
            revoked,
            mfa_turned_off,
        })
    }
}
