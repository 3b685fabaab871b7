//! Rows into records, the same for every SQL backend (the schemas share column types).

use std::marker::PhantomData;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::Database;

use super::db::Db;
use super::dialect::{Dialect, err};
use crate::crypto::algorithm::SigningAlgorithm;
use crate::crypto::passwords::PasswordHashString;
use crate::domain::{Authentication, Email, KeyPurpose, Scope, UnixTime, Username};
use crate::store::{
    LoggedRevocation, Rotation, SessionClient, SessionRecord, StoreError, StoredKey, UserRecord, roles_from_json,
};

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.password_hash, u.is_active, u.roles, u.created_at, u.security_stamp, u.email_verified, u.mfa_enabled";
pub(crate) const SESSION_COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.created_at AS s_created_at, \
     s.last_used_at, s.expires_at, s.revoked_at, s.user_agent, s.ip, s.device_name, s.auth_time, s.amr, s.client_id, s.scope";

/// Scopes as stored, read back; one that does not parse is a malformed row.
pub(crate) fn scopes_from_text(raw: &str) -> Result<Vec<Scope>, StoreError> {
    raw.split_whitespace()
        .map(|s| Scope::parse(s).map_err(|_| StoreError::Backend("malformed scope in database".into())))
        .collect()
}

/// Readers of one backend's rows.
pub(crate) struct Rows<D>(PhantomData<D>);

type Row<D> = <<D as Dialect>::DB as Database>::Row;

impl<D: Dialect> Rows<D> {
    pub(crate) fn int(row: &Row<D>, col: &str) -> Result<i64, StoreError> {
        D::DB::int(row, col).map_err(err::<D>)
    }

    pub(crate) fn opt_int(row: &Row<D>, col: &str) -> Result<Option<i64>, StoreError> {
        D::DB::opt_int(row, col).map_err(err::<D>)
    }

    pub(crate) fn text(row: &Row<D>, col: &str) -> Result<String, StoreError> {
        D::DB::text(row, col).map_err(err::<D>)
    }

    /// A text column parsed (an id); a value that does not parse is a malformed row.
    pub(crate) fn parsed<T: FromStr>(row: &Row<D>, col: &str) -> Result<T, StoreError> {
        Self::text(row, col)?
            .parse()
            .map_err(|_| StoreError::Backend(format!("malformed {col} in database")))
    }

    /// A base64 text column's bytes.
    pub(crate) fn base64(row: &Row<D>, col: &str) -> Result<Vec<u8>, StoreError> {
        B64.decode(Self::text(row, col)?)
            .map_err(|e| StoreError::Backend(format!("malformed {col} in database: {e}")))
    }

    /// A row holding [`USER_COLUMNS`].
    pub(crate) fn user(row: &Row<D>) -> Result<UserRecord, StoreError> {
        Ok(UserRecord {
            id: Self::parsed(row, "id")?,
            username: Username::from_store(Self::text(row, "username")?),
            email: Email::from_store(Self::text(row, "email")?),
            password_hash: PasswordHashString(Self::text(row, "password_hash")?),
            is_active: D::DB::flag(row, "is_active").map_err(err::<D>)?,
            roles: roles_from_json(&Self::text(row, "roles")?),
            created_at: UnixTime(Self::int(row, "created_at")?),
            security_stamp: Self::int(row, "security_stamp")?,
            email_verified: D::DB::flag(row, "email_verified").map_err(err::<D>)?,
            mfa_enabled: D::DB::flag(row, "mfa_enabled").map_err(err::<D>)?,
        })
    }

    /// A row holding [`SESSION_COLUMNS`].
    pub(crate) fn session(row: &Row<D>) -> Result<SessionRecord, StoreError> {
        let opt_text = |col| D::DB::opt_text(row, col).map_err(err::<D>);
        Ok(SessionRecord {
            id: Self::parsed(row, "s_id")?,
            user_id: Self::parsed(row, "s_user_id")?,
            created_at: UnixTime(Self::int(row, "s_created_at")?),
            last_used_at: UnixTime(Self::int(row, "last_used_at")?),
            expires_at: UnixTime(Self::int(row, "expires_at")?),
            revoked_at: D::DB::opt_int(row, "revoked_at").map_err(err::<D>)?.map(UnixTime),
            user_agent: opt_text("user_agent")?,
            device_name: opt_text("device_name")?,
            ip: opt_text("ip")?,
            auth: Authentication::from_store(UnixTime(Self::int(row, "auth_time")?), &Self::text(row, "amr")?),
            client: match opt_text("client_id")? {
                None => None,
                Some(id) => Some(SessionClient {
                    id: id
                        .parse()
                        .map_err(|_| StoreError::Backend("malformed client_id in database".into()))?,
                    scopes: scopes_from_text(&opt_text("scope")?.unwrap_or_default())?,
                }),
            },
        })
    }

    pub(crate) fn key(row: &Row<D>) -> Result<StoredKey, StoreError> {
        Ok(StoredKey {
            kid: Self::text(row, "kid")?,
            algorithm: {
                // Only asymmetric keys are ever stored (HS256 is configuration).
                let name = Self::text(row, "algorithm")?;
                SigningAlgorithm::from_jose(&name)
                    .filter(|a| *a != SigningAlgorithm::Hs256)
                    .ok_or_else(|| {
                        let kid = Self::text(row, "kid").unwrap_or_default();
                        StoreError::Backend(format!(
                            "signing key {kid:?} has an unknown algorithm {name:?} (the signing_keys table was changed \
                             by hand?)"
                        ))
                    })?
            },
            purpose: {
                let name = Self::text(row, "purpose")?;
                KeyPurpose::parse(&name)
                    .ok_or_else(|| StoreError::Backend(format!("signing key with an unknown purpose {name:?}")))?
            },
            private_der: Self::base64(row, "private_key")?,
            active: Self::text(row, "state")? == "active",
            created_at: UnixTime(Self::int(row, "created_at")?),
            signs_from: UnixTime(Self::int(row, "signs_from")?),
            retires_at: D::DB::opt_int(row, "retires_at").map_err(err::<D>)?.map(UnixTime),
        })
    }

    pub(crate) fn revocation(row: &Row<D>) -> Result<LoggedRevocation, StoreError> {
        LoggedRevocation::from_columns(
            Self::int(row, "seq")?,
            D::DB::opt_text(row, "session_id").map_err(err::<D>)?,
            D::DB::opt_text(row, "user_id").map_err(err::<D>)?,
            D::DB::opt_text(row, "client_id").map_err(err::<D>)?,
        )
    }

    /// A rotation that spent the token: the row holds the session and user columns.
    pub(crate) fn spent(row: &Row<D>) -> Result<Rotation, StoreError> {
        Ok(Rotation::Spent {
            session: Box::new(Self::session(row)?),
            user: Box::new(Self::user(row)?),
        })
    }

    /// A rotation that spent nothing, judged from the presented token's row (`used_at`,
    /// `s_id`, `s_user_id`), if it exists: spent before (reuse), or unknown.
    pub(crate) fn not_spent(row: Option<&Row<D>>) -> Result<Rotation, StoreError> {
        let Some(row) = row else {
            return Ok(Rotation::Unknown); // never issued
        };
        match D::DB::opt_int(row, "used_at").map_err(err::<D>)? {
            Some(spent_at) => Ok(Rotation::AlreadySpent {
                user_id: Self::parsed(row, "s_user_id")?,
                session_id: Self::parsed(row, "s_id")?,
                spent_at: UnixTime(spent_at),
            }),
            None => Ok(Rotation::Unknown), // merely expired
        }
    }
}
