//! Upgrades lose nothing. Each backend starts from a database the previous release
//! left (`tests/fixtures/upgrade/`, made by its `make.sh` with that release's binary:
//! users, a rotated refresh chain, a logged-out session, an EdDSA key and the server
//! secrets), migrates it with this code, and must still honour what it issued.

mod common;

use std::path::Path;

use common::{PgSchema, TestServer, pg_url, say_pg_skipped, test_settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::clock::ManualClock;
use tokengate::crypto::keys::SigningAlgorithm;
use tokengate::store::DatabaseUrl;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// A server on the migrated database, its clock a minute after the fixture's tokens
/// were issued, configured as the release was (EdDSA, default issuer and audience).
async fn serve(url: DatabaseUrl, tokens: &Value) -> TestServer {
    let mut s = test_settings(Path::new("unused"));
    let defaults = tokengate::config::Settings::default();
    s.store.database_url = url;
    s.tokens.secret_key = None;
    s.tokens.algorithm = Some(SigningAlgorithm::EdDsa);
    s.tokens.issuer = defaults.tokens.issuer;
    s.tokens.audience = defaults.tokens.audience;
    let clock = ManualClock::new();
    clock.advance(tokens["issued_at"].as_i64().expect("issued_at") + 60 - clock.now_secs());
    TestServer::start_settings(s, clock).await
}

async fn what_was_issued_still_holds(srv: &TestServer, tokens: &Value) {
    let t = |path: &str| tokens.pointer(path).and_then(Value::as_str).expect(path).to_owned();

    // Access tokens signed before the upgrade verify (the key material survived), and
    // the revoked session stays dead.
    assert_eq!(srv.me_status(&t("/live/access")).await, StatusCode::OK);
    assert_eq!(srv.me_status(&t("/other_user/access")).await, StatusCode::OK);
    assert_eq!(srv.me_status(&t("/revoked/access")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        srv.refresh(&t("/revoked/refresh")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The live chain rotates on; its first token, spent before the upgrade, is still
    // known as spent: presenting it is reuse, and reuse kills the session.
    let next = srv.refresh(&t("/live/refresh")).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next: Value = next.json().await.expect("json");
    let newest = next["refresh_token"].as_str().expect("refresh_token").to_owned();
    assert_eq!(
        srv.refresh(&t("/live/spent_refresh")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        srv.refresh(&newest).await.status(),
        StatusCode::UNAUTHORIZED,
        "the reuse of a token spent before the upgrade revoked its session"
    );
    assert_eq!(srv.me_status(&t("/other_user/access")).await, StatusCode::OK);

    // Passwords, roles and sessions carried over.
    let login = srv
        .post_json(
            "/auth/login",
            json!({"username": "alice", "password": tokens["password"]}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let access = login.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let me: Value = srv.get_auth("/me", &access).await.json().await.expect("json");
    assert_eq!(
        (me["username"].as_str(), me["email"].as_str()),
        (Some("alice"), Some("alice@example.com"))
    );
    let sessions: Value = srv
        .get_auth("/auth/sessions", &t("/other_user/access"))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = sessions
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["device_name"].as_str())
        .collect();
    assert_eq!(names, ["desktop"]);
}

#[tokio::test]
async fn sqlite_upgrades_with_its_sessions_tokens_and_keys() {
    let tokens: Value = serde_json::from_str(&fixture("tokens-sqlite.json")).expect("tokens");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tokengate.db");
    {
        use sqlx::Connection as _;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.expect("open");
        sqlx::raw_sql(&fixture("sqlite.sql"))
            .execute(&mut conn)
            .await
            .expect("load the release's database");
        conn.close().await.expect("close");
    }
    let srv = serve(DatabaseUrl::Sqlite { path: db }, &tokens).await;
    what_was_issued_still_holds(&srv, &tokens).await;
}

#[tokio::test]
async fn postgres_upgrades_with_its_sessions_tokens_and_keys() {
    let Some(admin) = pg_url() else {
        return say_pg_skipped();
    };
    let tokens: Value = serde_json::from_str(&fixture("tokens-postgres.json")).expect("tokens");
    let schema = PgSchema::create(&admin).await;
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let dump = fixture("postgres.sql").replace("tokengate_upgrade_fixture.", &format!("{}.", schema.name));
        sqlx::raw_sql(&dump)
            .execute(&mut conn)
            .await
            .expect("load the release's database");
        conn.close().await.expect("close");
    }
    let srv = serve(DatabaseUrl::Postgres(schema.url()), &tokens).await;
    what_was_issued_still_holds(&srv, &tokens).await;
}
