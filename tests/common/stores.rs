//! Stores as the server opens them (`Arc<dyn Store>`), for the storage contract tests.

use std::sync::Arc;

use tokengate::crypto::passwords::PasswordHashString;
use tokengate::crypto::tokens::{RefreshToken, RefreshTokenHash};
use tokengate::domain::{Email, SessionId, UnixTime, UserId, Username};
use tokengate::store::{DatabaseUrl, NewSession, NewUser, SessionOpen, Store, StoreSettings};

/// A migrated store of `backend`, and what keeps it alive (a folder, a schema).
pub async fn open(backend: super::Backend) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any>)> {
    open_at(backend).await.map(|(store, keep, _)| (store, keep))
}

/// [`open`], and the database's URL (to look at a row the store does not show).
pub async fn open_at(backend: super::Backend) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any>, DatabaseUrl)> {
    let (url, keep): (DatabaseUrl, Box<dyn std::any::Any>) = match backend {
        super::Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = DatabaseUrl::Sqlite {
                path: dir.path().join("contract.db"),
            };
            (url, Box::new(dir))
        }
        super::Backend::Postgres => {
            let Some(admin) = super::pg_url() else {
                super::say_pg_skipped();
                return None;
            };
            let schema = super::PgSchema::create(&admin).await;
            (DatabaseUrl::Postgres(schema.url()), Box::new(schema))
        }
    };
    let settings = StoreSettings {
        database_url: url.clone(),
        pool_size: 4,
        connect_timeout_secs: 5,
    };
    let store = tokengate::store::open(&settings).await.expect("the store opens");
    Some((store, keep, url))
}

/// The one text value `sql` selects, read straight from the database.
pub async fn text_of(url: &DatabaseUrl, sql: &str) -> Option<String> {
    use sqlx::Connection as _;
    match url {
        DatabaseUrl::Sqlite { path } => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_scalar::<_, String>(sql)
                .fetch_optional(&mut c)
                .await
                .unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar::<_, String>(sql)
                .fetch_optional(&mut c)
                .await
                .unwrap()
        }
    }
}

pub async fn user(store: &dyn Store, name: &str, now: UnixTime) -> UserId {
    store
        .create_user(NewUser {
            id: UserId::new(),
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            password_hash: PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            roles: Vec::new(),
            created_at: now,
        })
        .await
        .unwrap()
        .id
}

/// A session of `user` that expires at `expires_at`; its id and refresh token's hash.
pub async fn session(
    store: &dyn Store,
    user: UserId,
    now: UnixTime,
    expires_at: UnixTime,
) -> (SessionId, RefreshTokenHash) {
    session_at_stamp(store, user, 0, now, expires_at).await
}

/// [`session`] of a user whose security stamp is `stamp`.
pub async fn session_at_stamp(
    store: &dyn Store,
    user: UserId,
    stamp: i64,
    now: UnixTime,
    expires_at: UnixTime,
) -> (SessionId, RefreshTokenHash) {
    let id = SessionId::new();
    let refresh = RefreshToken::generate().unwrap().1;
    let opened = store
        .create_session(NewSession {
            id,
            user_id: user,
            expected_stamp: stamp,
            now,
            expires_at,
            max_expires_at: expires_at,
            user_agent: None,
            ip: None,
            device_name: None,
            refresh_hash: refresh.clone(),
            auth: tokengate::domain::Authentication::new(now, &[tokengate::domain::AuthMethod::Pwd]),
            client: None,
            from_code: None,
        })
        .await
        .unwrap();
    assert_eq!(opened, SessionOpen::Opened);
    (id, refresh)
}
