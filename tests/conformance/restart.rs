use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, assert_invalid_token};

/// State built, server stopped, started again on the same database (and the secret
/// it generated beside it): tokens, rotations, revocations and passwords all hold.
#[per_backend]
pub async fn state_survives_a_restart(b: Backend) {
    // On SQLite, the secret is the one generated beside the database file; a shared
    // database needs a configured one.
    let generated = b == Backend::Sqlite;
    let first = TestServer::start_with(b, |s| {
        if generated {
            s.tokens.secret_key = None;
        }
    })
    .await;
    let secret_file = tokengate::server::secret_path(&first.db_path);
    assert_eq!(
        secret_file.exists(),
        generated,
        "the generated secret is kept beside the database"
    );

    let s1 = first.user("alzy").await;
    let res = first
        .post_auth(
            "/auth/password",
            &s1.access,
            Some(json!({"current_password": PASSWORD, "new_password": "changed-pass-42"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let s2 = first.login("alzy", "changed-pass-42").await;
    let s2b = Tokens::from(first.refresh(&s2.refresh).await.json::<Value>().await.unwrap());
    let s3 = first.login("alzy", "changed-pass-42").await;
    assert_eq!(
        first.post_auth("/auth/logout", &s3.access, None).await.status(),
        StatusCode::NO_CONTENT
    );

    let settings = first.settings.clone();
    let clock = first.clock.clone();
    let _dir = first.stop().await;
    let again = TestServer::start_settings(settings, clock).await;

    // Issued before the restart, still valid: the same secret was loaded.
    assert_eq!(again.me_status(&s2b.access).await, StatusCode::OK);
    assert_eq!(again.me_status(&s1.access).await, StatusCode::OK);
    // Revocations held.
    assert_invalid_token(again.get_auth("/me", &s3.access).await).await;
    // The password change held.
    let res = again
        .post_json("/auth/login", json!({"username": "alzy", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    again.login("alzy", "changed-pass-42").await;
    // The refresh chain continues; the spent token is still recognised as a reuse.
    let s2c = Tokens::from(again.refresh(&s2b.refresh).await.json::<Value>().await.unwrap());
    assert_eq!(again.me_status(&s2c.access).await, StatusCode::OK);
    assert_invalid_token(again.refresh(&s2.refresh).await).await;
    assert_invalid_token(again.get_auth("/me", &s2c.access).await).await;
}
