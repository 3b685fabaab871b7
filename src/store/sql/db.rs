//! The seam between the shared statements and sqlx's two drivers: a statement's
//! parameters as one small enum, and the handful of calls the flows make (run, fetch,
//! read a column), implemented for each driver by one macro. Both schemas use the same
//! column types (UUID text, Unix seconds, JSON roles, base64 secrets), so a statement
//! written once binds and reads the same values on either.

use async_trait::async_trait;

use crate::store::StoreError;

/// A statement parameter (`$1`, `$2`, ... in the order given).
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Flag(bool),
    OptFlag(Option<bool>),
}

/// A sqlx driver as the shared flows use it.
#[async_trait]
pub trait Db: sqlx::Database {
    /// Run `sql`; the rows it changed.
    async fn exec(c: &mut Self::Connection, sql: &str, params: &[Param<'_>]) -> Result<u64, sqlx::Error>;
    async fn optional(
        c: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Self::Row>, sqlx::Error>;
    async fn all(c: &mut Self::Connection, sql: &str, params: &[Param<'_>]) -> Result<Vec<Self::Row>, sqlx::Error>;
    fn int(row: &Self::Row, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(row: &Self::Row, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(row: &Self::Row, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(row: &Self::Row, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// A boolean (SQLite keeps it as 0/1).
    fn flag(row: &Self::Row, col: &str) -> Result<bool, sqlx::Error>;
    /// Apply `migrator`'s migrations not yet applied.
    async fn migrate(
        pool: &sqlx::Pool<Self>,
        migrator: &'static sqlx::migrate::Migrator,
    ) -> Result<(), sqlx::migrate::MigrateError>;
}

/// Implements [`Db`] for one sqlx driver (the same text for each: what differs is
/// only the types it names).
macro_rules! portable_db {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::sql::db::Db for $db {
            async fn exec(
                c: &mut <$db as sqlx::Database>::Connection,
                sql: &str,
                params: &[$crate::store::sql::db::Param<'_>],
            ) -> Result<u64, sqlx::Error> {
                let done = sqlx::Executor::execute(c, bound(sql, params)).await?;
                Ok(done.rows_affected())
            }
            async fn optional(
                c: &mut <$db as sqlx::Database>::Connection,
                sql: &str,
                params: &[$crate::store::sql::db::Param<'_>],
            ) -> Result<Option<<$db as sqlx::Database>::Row>, sqlx::Error> {
                sqlx::Executor::fetch_optional(c, bound(sql, params)).await
            }
            async fn all(
                c: &mut <$db as sqlx::Database>::Connection,
                sql: &str,
                params: &[$crate::store::sql::db::Param<'_>],
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, sqlx::Error> {
                sqlx::Executor::fetch_all(c, bound(sql, params)).await
            }
            fn int(row: &<$db as sqlx::Database>::Row, col: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(row, col)
            }
            fn opt_int(row: &<$db as sqlx::Database>::Row, col: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(row, col)
            }
            fn text(row: &<$db as sqlx::Database>::Row, col: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(row, col)
            }
            fn opt_text(row: &<$db as sqlx::Database>::Row, col: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(row, col)
            }
            fn flag(row: &<$db as sqlx::Database>::Row, col: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(row, col)
            }
            async fn migrate(
                pool: &sqlx::Pool<$db>,
                migrator: &'static sqlx::migrate::Migrator,
            ) -> Result<(), sqlx::migrate::MigrateError> {
                migrator.run(pool).await
            }
        }

        /// `sql` with `params` bound in order.
        fn bound<'q>(
            sql: &'q str,
            params: &'q [$crate::store::sql::db::Param<'q>],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            use $crate::store::sql::db::Param;
            params.iter().fold(sqlx::query(sql), |q, p| match *p {
                Param::Int(v) => q.bind(v),
                Param::OptInt(v) => q.bind(v),
                Param::Text(v) => q.bind(v),
                Param::OptText(v) => q.bind(v),
                Param::Flag(v) => q.bind(v),
                Param::OptFlag(v) => q.bind(v),
            })
        }
    };
}
pub(crate) use portable_db;

/// A database error as the store reports it, given whether the driver calls it
/// retryable: a unique violation is `Conflict`, a retryable one `Unavailable`.
pub(crate) fn classified(e: sqlx::Error, retryable: bool) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ if retryable => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}
