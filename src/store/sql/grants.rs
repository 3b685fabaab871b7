//! What the provider hands out, for both SQL backends: authorization codes (hashes
//! only, used once), and what each user allowed each application.

use async_trait::async_trait;

use super::SqlStore;
use super::db::Db as _;
use super::db::Param::{Int, OptText, Text};
use super::dialect::Dialect;
use super::rows::{Rows, scopes_from_text};
use crate::crypto::tokens::AuthCodeHash;
use crate::domain::{Authentication, ClientId, ClientName, Scope, SessionId, UnixTime, UserId};
use crate::store::{CodeTaken, GrantRevoked, Grants, NewCode, StoreError, StoredCode, StoredConsent};

const CODE_COLUMNS: &str = "client_id, user_id, redirect_uri, code_challenge, nonce, scope, auth_time, amr, \
                            user_stamp, browser_session_id, expires_at";

type Row<D> = <<D as Dialect>::DB as sqlx::Database>::Row;

fn code<D: Dialect>(row: &Row<D>) -> Result<StoredCode, StoreError> {
    Ok(StoredCode {
        client: Rows::<D>::parsed(row, "client_id")?,
        user: Rows::<D>::parsed(row, "user_id")?,
        redirect_uri: Rows::<D>::text(row, "redirect_uri")?,
        code_challenge: Rows::<D>::text(row, "code_challenge")?,
        nonce: D::DB::opt_text(row, "nonce").map_err(super::err::<D>)?,
        scopes: scopes_from_text(&Rows::<D>::text(row, "scope")?)?,
        auth: Authentication::from_store(
            UnixTime(Rows::<D>::int(row, "auth_time")?),
            &Rows::<D>::text(row, "amr")?,
        ),
        user_stamp: Rows::<D>::int(row, "user_stamp")?,
        browser_session: Rows::<D>::parsed(row, "browser_session_id")?,
        expires_at: UnixTime(Rows::<D>::int(row, "expires_at")?),
    })
}

#[async_trait]
impl<D: Dialect> Grants for SqlStore<D> {
    async fn save_code(&self, new: NewCode) -> Result<(), StoreError> {
        let c = &new.code;
        Self::exec(
            &mut *self.writing().await?,
            &format!("INSERT INTO oauth_codes (code_hash, {CODE_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
            &[
                Text(new.hash.as_str()),
                Text(&c.client.to_string()),
                Text(&c.user.to_string()),
                Text(&c.redirect_uri),
                Text(&c.code_challenge),
                OptText(c.nonce.as_deref()),
                Text(&Scope::join(&c.scopes)),
                Int(c.auth.at.0),
                Text(&c.auth.methods_to_store()),
                Int(c.user_stamp),
                Text(&c.browser_session.to_string()),
                Int(c.expires_at.0),
                Int(new.now.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn take_code(&self, hash: &AuthCodeHash, session: SessionId, now: UnixTime) -> Result<CodeTaken, StoreError> {
        let mut c = self.writing().await?;
        let taken = Self::optional(
            &mut c,
            &format!(
                "UPDATE oauth_codes SET used_at = $2, session_id = $3
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {CODE_COLUMNS}"
            ),
            &[Text(hash.as_str()), Int(now.0), Text(&session.to_string())],
        )
        .await?;
        if let Some(row) = taken {
            return code::<D>(&row).map(CodeTaken::Taken);
        }
        // Used before (whenever: a code that comes back after its minute is still a
        // replay): marked, so the session of its first use never opens if it has not.
        let reused = Self::optional(
            &mut c,
            "UPDATE oauth_codes SET reused_at = COALESCE(reused_at, $2)
             WHERE code_hash = $1 AND used_at IS NOT NULL RETURNING user_id, session_id",
            &[Text(hash.as_str()), Int(now.0)],
        )
        .await?;
        match reused {
            Some(row) => Ok(CodeTaken::Reused {
                user: Rows::<D>::parsed(&row, "user_id")?,
                session: D::DB::opt_text(&row, "session_id")
                    .map_err(super::err::<D>)?
                    .and_then(|s| s.parse().ok()),
            }),
            None => Ok(CodeTaken::Unknown),
        }
    }

    async fn consent(&self, user: UserId, client: ClientId) -> Result<Option<Vec<Scope>>, StoreError> {
        let row = Self::optional(
            &mut *self.reading().await?,
            "SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
            &[Text(&user.to_string()), Text(&client.to_string())],
        )
        .await?;
        row.map(|r| scopes_from_text(&Rows::<D>::text(&r, "scope")?))
            .transpose()
    }

    async fn save_consent(
        &self,
        user: UserId,
        client: ClientId,
        scopes: Vec<Scope>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        Self::exec(
            &mut *self.writing().await?,
            "INSERT INTO oauth_consents (user_id, client_id, scope, created_at, updated_at)
             SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM oauth_clients WHERE id = $2)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
            &[
                Text(&user.to_string()),
                Text(&client.to_string()),
                Text(&Scope::join(&scopes)),
                Int(now.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn consents(&self, user: UserId, _now: UnixTime) -> Result<Vec<StoredConsent>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            "SELECT g.client_id, c.name, g.scope, g.created_at, g.updated_at
             FROM oauth_consents g JOIN oauth_clients c ON c.id = g.client_id
             WHERE g.user_id = $1 ORDER BY g.updated_at DESC, g.client_id",
            &[Text(&user.to_string())],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredConsent {
                    client: Rows::<D>::parsed(r, "client_id")?,
                    // As registered: a name today's rules would refuse is still shown.
                    client_name: ClientName::parse(&Rows::<D>::text(r, "name")?)
                        .map_err(|_| StoreError::Backend("malformed client name in database".into()))?,
                    scopes: scopes_from_text(&Rows::<D>::text(r, "scope")?)?,
                    created_at: UnixTime(Rows::<D>::int(r, "created_at")?),
                    updated_at: UnixTime(Rows::<D>::int(r, "updated_at")?),
                })
            })
            .collect()
    }

    async fn revoke_grant(&self, user: UserId, client: ClientId, now: UnixTime) -> Result<GrantRevoked, StoreError> {
        let mut tx = self.begin().await?;
        let (user_id, client_id) = (user.to_string(), client.to_string());
        // Codes not yet exchanged go too: none opens a session after this.
        Self::exec(
            &mut tx,
            "DELETE FROM oauth_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL",
            &[Text(&user_id), Text(&client_id)],
        )
        .await?;
        let consent = Self::exec(
            &mut tx,
            "DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
            &[Text(&user_id), Text(&client_id)],
        )
        .await?
            > 0;
        let sessions = Self::revoke_where(
            &mut tx,
            "user_id = $2 AND client_id = $3",
            &[Text(&user_id), Text(&client_id)],
            now,
        )
        .await?;
        Self::commit(tx).await?;
        Ok(GrantRevoked { consent, sessions })
    }
}
