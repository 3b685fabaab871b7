use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer, Tokens, assert_invalid_token};

#[per_backend]
pub async fn logout_kills_the_session_not_only_the_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let first = srv.user("alzy").await;
    // A second access token of the same session, from a refresh.
    let second = Tokens::from(srv.refresh(&first.refresh).await.json::<Value>().await.unwrap());
    let res = srv.post_auth("/auth/logout", &second.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.text().await.unwrap().is_empty());
    assert_invalid_token(srv.get_auth("/me", &second.access).await).await;
    assert_invalid_token(srv.get_auth("/me", &first.access).await).await;
    assert_invalid_token(srv.refresh(&second.refresh).await).await;
    // Logging out twice: the token is already dead.
    assert_invalid_token(srv.post_auth("/auth/logout", &second.access, None).await).await;
}

#[per_backend]
pub async fn logout_leaves_other_sessions_alive(b: Backend) {
    let srv = TestServer::start(b).await;
    let phone = srv.user("alzy").await;
    let laptop = srv.login("alzy", PASSWORD).await;
    let res = srv
        .post_auth(
            "/auth/logout",
            &phone.access,
            Some(json!({"refresh_token": phone.refresh})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.me_status(&laptop.access).await, StatusCode::OK);
    assert_eq!(srv.refresh(&laptop.refresh).await.status(), StatusCode::OK);
}

#[per_backend]
pub async fn logout_with_refresh_token_of_another_session(b: Backend) {
    let srv = TestServer::start(b).await;
    let a = srv.user("alzy").await;
    let b2 = srv.login("alzy", PASSWORD).await;
    let mallory = srv.user("mallory").await;
    // Mallory cannot end alzy's session by presenting its refresh token.
    let res = srv
        .post_auth(
            "/auth/logout",
            &mallory.access,
            Some(json!({"refresh_token": b2.refresh})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.me_status(&b2.access).await, StatusCode::OK);
    // Alzy can end both of their sessions at once.
    let res = srv
        .post_auth("/auth/logout", &a.access, Some(json!({"refresh_token": b2.refresh})))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(srv.get_auth("/me", &b2.access).await).await;
    assert_invalid_token(srv.get_auth("/me", &a.access).await).await;
    // A malformed body is still a client error, never a 5xx.
    let m2 = srv.login("mallory", PASSWORD).await;
    let res = srv
        .post_auth("/auth/logout", &m2.access, Some(json!({"refresh_token": 7})))
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[per_backend]
pub async fn logout_all_kills_every_session(b: Backend) {
    let srv = TestServer::start(b).await;
    let sessions = [
        srv.user("alzy").await,
        srv.login("alzy", PASSWORD).await,
        srv.login("alzy", PASSWORD).await,
    ];
    let bystander = srv.user("bystander").await;
    let res = srv.post_auth("/auth/logout-all", &sessions[1].access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for s in &sessions {
        assert_invalid_token(srv.get_auth("/me", &s.access).await).await;
        assert_invalid_token(srv.refresh(&s.refresh).await).await;
    }
    assert_eq!(srv.me_status(&bystander.access).await, StatusCode::OK);
    // Logging in again works and is a fresh session.
    let again = srv.login("alzy", PASSWORD).await;
    assert_eq!(srv.me_status(&again.access).await, StatusCode::OK);
}

#[per_backend]
pub async fn logout_requires_a_valid_token(b: Backend) {
    let srv = TestServer::start(b).await;
    for path in ["/auth/logout", "/auth/logout-all", "/auth/password"] {
        let res = srv.http.post(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_invalid_token(srv.post_auth(path, "not.a.token", None).await).await;
    }
}

#[per_backend]
pub async fn a_revocation_on_another_instance_holds_within_a_second(b: Backend) {
    // Two instances on one database (on SQLite: another process, such as the operator's
    // `tokengate user deactivate`, writes the same file).
    let a = TestServer::start(b).await;
    let other = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("alzy").await;
    // Both have the session in their cache now.
    assert_eq!(a.me_status(&t.access).await, StatusCode::OK);
    assert_eq!(other.me_status(&t.access).await, StatusCode::OK);
    let res = other.post_auth("/auth/logout", &t.access, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while a.me_status(&t.access).await != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "a logout elsewhere still accepted after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A role removal elsewhere applies just as fast.
    let admin = a.admin("root").await;
    assert_eq!(a.get_auth("/admin/users", &admin.access).await.status(), StatusCode::OK);
    other.set_roles("alzy", &["admin"]).await;
    other.set_roles("root", &[]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while a.get_auth("/admin/users", &admin.access).await.status() != StatusCode::FORBIDDEN {
        assert!(
            std::time::Instant::now() < deadline,
            "a removed role still counted after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[per_backend]
pub async fn logout_takes_no_body_or_a_json_null(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    // A fresh session logs out with `body` as JSON; its access token and the answer.
    let log_out = async |body: &'static str| {
        let t = srv.login("alzy", PASSWORD).await;
        let res = srv
            .http
            .post(srv.url("/auth/logout"))
            .bearer_auth(&t.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (t.access, res.status())
    };
    for body in ["", "null", " null\n"] {
        let (access, status) = log_out(body).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
        assert_eq!(srv.me_status(&access).await, StatusCode::UNAUTHORIZED, "{body:?}");
    }
    // Any other JSON that is not an object is still refused.
    assert_eq!(log_out("[]").await.1, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Make every write to the revocation log fail, as a database that refuses them would.
async fn break_the_revocation_log(srv: &TestServer) {
    use sqlx::Connection as _;
    match &srv.settings.store.database_url {
        tokengate::store::DatabaseUrl::Sqlite { path } => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(
                "CREATE TRIGGER no_log BEFORE INSERT ON revocations BEGIN SELECT RAISE(ABORT, 'log unavailable'); END",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        tokengate::store::DatabaseUrl::Postgres(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(
                "CREATE FUNCTION no_log() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'log unavailable'; END $$ LANGUAGE plpgsql",
            )
            .execute(&mut c)
            .await
            .unwrap();
            sqlx::query("CREATE TRIGGER no_log BEFORE INSERT ON revocations FOR EACH ROW EXECUTE FUNCTION no_log()")
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

#[per_backend]
pub async fn a_logout_that_cannot_be_logged_is_a_503_and_changes_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    break_the_revocation_log(&srv).await;
    for path in ["/auth/logout", "/auth/logout-all"] {
        let res = srv.post_auth(path, &t.access, None).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(res.headers().contains_key("retry-after"), "{path}");
        // Nothing half-done: the session is still there, to be logged out on a retry.
        assert_eq!(srv.me_status(&t.access).await, StatusCode::OK, "{path}");
    }
}
