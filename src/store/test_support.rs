//! Fixtures for the store's unit tests.

use std::sync::Arc;

use super::{NewSession, NewUser, SessionOpen, Store};
use crate::clock::{Clock, SystemClock};
use crate::crypto::passwords::PasswordHashString;
use crate::crypto::tokens::{RefreshToken, RefreshTokenHash};
use crate::domain::{Email, SessionId, UserId, Username};
use crate::store::sqlite::SqliteStore;

/// A migrated SQLite store in `dir` holding one user with one live session; the hash of
/// that session's refresh token.
pub async fn store_with_a_session(dir: &std::path::Path) -> (Arc<dyn Store>, SessionId, UserId, RefreshTokenHash) {
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("t.db")).await.unwrap());
    inner.migrate().await.unwrap();
    let now = SystemClock.now();
    let user = inner
        .create_user(NewUser {
            id: UserId::new(),
            username: Username::parse("alzy").unwrap(),
            email: Email::parse("alzy@example.com").unwrap(),
            password_hash: PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            roles: Vec::new(),
            created_at: now,
        })
        .await
        .unwrap();
    let session = SessionId::new();
    let refresh = RefreshToken::generate().unwrap().1;
    let opened = inner
        .create_session(NewSession {
            id: session,
            user_id: user.id,
            expected_stamp: 0,
            now,
            expires_at: now.plus(3600),
            max_expires_at: now.plus(3600),
            user_agent: None,
            ip: None,
            device_name: None,
            refresh_hash: refresh.clone(),
            auth: crate::domain::Authentication::new(now, &[crate::domain::AuthMethod::Pwd]),
            client: None,
            from_code: None,
        })
        .await
        .unwrap();
    assert_eq!(opened, SessionOpen::Opened);
    (inner, session, user.id, refresh)
}
