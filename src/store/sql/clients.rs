//! The provider's registered applications, for both SQL backends: one row each, its
//! URIs as JSON arrays, its scopes space-separated, its secret only as a hash.

use async_trait::async_trait;

use super::SqlStore;
use super::db::Db as _;
use super::db::Param::{Flag, Int, OptFlag, OptText, Text};
use super::dialect::Dialect;
use super::rows::{Rows, scopes_from_text};
use crate::crypto::tokens::ClientSecretHash;
use crate::domain::{ClientId, ClientName, RedirectUri, Scope, SessionId, UnixTime};
use crate::store::{ClientUpdate, Clients, Revoked, StoreError, StoredClient};

const CLIENT_COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, trusted, \
                              audience, created_at, updated_at";

type Row<D> = <<D as Dialect>::DB as sqlx::Database>::Row;

impl<D: Dialect> SqlStore<D> {
    /// Finish a write to one client's row: logged for every instance's cache when it
    /// changed the row (`done`), rolled back when there was none.
    async fn client_changed(
        mut tx: sqlx::Transaction<'static, D::DB>,
        id: ClientId,
        done: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        if done != 1 {
            Self::rollback(tx).await?;
            return Ok(false);
        }
        Self::log_revocation(&mut tx, Revoked::Client(id), now).await?;
        Self::commit(tx).await?;
        Ok(true)
    }
}

fn malformed(col: &str) -> StoreError {
    StoreError::Backend(format!("malformed {col} in database"))
}

fn uris_to_json(uris: &[RedirectUri]) -> String {
    serde_json::to_string(&uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

fn uris_from_json(raw: &str, col: &str) -> Result<Vec<RedirectUri>, StoreError> {
    let list: Vec<String> = serde_json::from_str(raw).map_err(|_| malformed(col))?;
    // As registered: a URI the rules of today would refuse is shown, not a 500.
    Ok(list.into_iter().map(RedirectUri::from_store).collect())
}

fn client<D: Dialect>(row: &Row<D>) -> Result<StoredClient, StoreError> {
    let text = |col: &str| Rows::<D>::text(row, col);
    let opt_text = |col: &str| D::DB::opt_text(row, col).map_err(super::err::<D>);
    Ok(StoredClient {
        id: Rows::<D>::parsed(row, "id")?,
        name: ClientName::parse(&text("name")?).map_err(|_| malformed("name"))?,
        secret_hash: opt_text("secret_hash")?.map(ClientSecretHash::from_store),
        redirect_uris: uris_from_json(&text("redirect_uris")?, "redirect_uris")?,
        post_logout_redirect_uris: uris_from_json(&text("post_logout_redirect_uris")?, "post_logout_redirect_uris")?,
        scopes: scopes_from_text(&text("scopes")?)?,
        trusted: D::DB::flag(row, "trusted").map_err(super::err::<D>)?,
        audience: opt_text("audience")?,
        created_at: UnixTime(Rows::<D>::int(row, "created_at")?),
        updated_at: UnixTime(Rows::<D>::int(row, "updated_at")?),
    })
}

#[async_trait]
impl<D: Dialect> Clients for SqlStore<D> {
    async fn create_client(&self, c: StoredClient) -> Result<(), StoreError> {
        Self::exec(
            &mut *self.writing().await?,
            &format!("INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            &[
                Text(&c.id.to_string()),
                Text(c.name.as_str()),
                OptText(c.secret_hash.as_ref().map(ClientSecretHash::as_str)),
                Text(&uris_to_json(&c.redirect_uris)),
                Text(&uris_to_json(&c.post_logout_redirect_uris)),
                Text(&Scope::join(&c.scopes)),
                Flag(c.trusted),
                OptText(c.audience.as_deref()),
                Int(c.created_at.0),
                Int(c.updated_at.0),
            ],
        )
        .await?;
        Ok(())
    }

    async fn client(&self, id: ClientId) -> Result<Option<StoredClient>, StoreError> {
        Self::optional(
            &mut *self.reading().await?,
            &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1"),
            &[Text(&id.to_string())],
        )
        .await?
        .as_ref()
        .map(client::<D>)
        .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<StoredClient>, StoreError> {
        let rows = Self::all(
            &mut *self.reading().await?,
            &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, id"),
            &[],
        )
        .await?;
        rows.iter().map(client::<D>).collect()
    }

    async fn update_client(&self, id: ClientId, u: ClientUpdate, now: UnixTime) -> Result<bool, StoreError> {
        let redirect_uris = u.redirect_uris.as_deref().map(uris_to_json);
        let post_logout = u.post_logout_redirect_uris.as_deref().map(uris_to_json);
        let scopes = u.scopes.as_deref().map(Scope::join);
        let mut tx = self.begin().await?;
        let done = Self::exec(
            &mut tx,
            "UPDATE oauth_clients SET name = COALESCE($2, name), redirect_uris = COALESCE($3, redirect_uris),
                 post_logout_redirect_uris = COALESCE($4, post_logout_redirect_uris),
                 scopes = COALESCE($5, scopes), trusted = COALESCE($6, trusted),
                 audience = CASE WHEN $7 THEN $8 ELSE audience END, updated_at = $9
             WHERE id = $1",
            &[
                Text(&id.to_string()),
                OptText(u.name.as_ref().map(ClientName::as_str)),
                OptText(redirect_uris.as_deref()),
                OptText(post_logout.as_deref()),
                OptText(scopes.as_deref()),
                OptFlag(u.trusted),
                Flag(u.audience.is_some()),
                OptText(u.audience.flatten().as_deref()),
                Int(now.0),
            ],
        )
        .await?;
        Self::client_changed(tx, id, done, now).await
    }

    async fn set_client_secret(
        &self,
        id: ClientId,
        secret: ClientSecretHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = Self::exec(
            &mut tx,
            "UPDATE oauth_clients SET secret_hash = $2, updated_at = $3 WHERE id = $1 AND secret_hash IS NOT NULL",
            &[Text(&id.to_string()), Text(secret.as_str()), Int(now.0)],
        )
        .await?;
        Self::client_changed(tx, id, done, now).await
    }

    async fn delete_client(&self, id: ClientId, now: UnixTime) -> Result<Option<Vec<SessionId>>, StoreError> {
        let mut tx = self.begin().await?;
        let client_id = id.to_string();
        let done = Self::exec(&mut tx, "DELETE FROM oauth_clients WHERE id = $1", &[Text(&client_id)]).await?;
        if done == 0 {
            Self::rollback(tx).await?;
            return Ok(None);
        }
        let sessions = Self::revoke_where(&mut tx, "client_id = $2", &[Text(&client_id)], now).await?;
        Self::log_revocation(&mut tx, Revoked::Client(id), now).await?;
        Self::commit(tx).await?;
        Ok(Some(sessions))
    }
}
