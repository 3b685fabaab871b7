//! Crash test: build state, `kill -9` the real binary in the middle of a burst of
//! refreshes, look at the database, restart on it, and check that every acknowledged
//! change is there and every rule still holds. SQLite always; PostgreSQL when
//! `TOKENGATE_TEST_PG_URL` names a server.

#[path = "common/mod.rs"]
mod common;
#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use process::{KillOnDrop, start_server_with, terminate, tokengate};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::config::Settings;
use tokengate::crypto::tokens::RefreshTokenHash;
use tokengate::server::{OpenMode, open_store};
use tokengate::store::DatabaseUrl;

const PASSWORD: &str = "crash-test-password";
const NEW_PASSWORD: &str = "crash-test-password-2";
const CHAINS: usize = 8;

/// Where the server keeps its state, as the binary is told it.
struct Db {
    env_url: String,
    url: DatabaseUrl,
}

fn server(dir: &Path, db: &Db) -> Command {
    let mut c = tokengate(dir);
    c.env("TOKENGATE_DATABASE_URL", &db.env_url)
        .env("TOKENGATE_ALGORITHM", "ES256")
        .env("TOKENGATE_LOGIN_RATE", "100000/1s")
        .env("TOKENGATE_REFRESH_RATE", "100000/1s")
        .env("TOKENGATE_REGISTER_RATE", "100000/1s");
    c
}

fn cli(dir: &Path, db: &Db, args: &[&str]) -> String {
    let out = server(dir, db).args(args).output().expect("run the CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn post(http: &reqwest::Client, url: String, body: Value, access: Option<&str>) -> reqwest::Response {
    let mut req = http.post(url).json(&body);
    if let Some(a) = access {
        req = req.bearer_auth(a);
    }
    req.send().await.expect("request")
}

async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> reqwest::Response {
    post(
        http,
        format!("{base}/auth/login"),
        json!({"username": user, "password": password}),
        None,
    )
    .await
}

fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .to_owned()
}

/// One refresh chain's acknowledged rotations: (presented, successor) per 200.
type Acked = Vec<(String, String)>;

async fn walk_chain(http: reqwest::Client, base: String, mut token: String) -> Acked {
    let mut acked = Vec::new();
    loop {
        let res = http
            .post(format!("{base}/auth/refresh"))
            .json(&json!({"refresh_token": token}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let Ok(res) = res else { return acked };
        if res.status() != StatusCode::OK {
            return acked;
        }
        let Ok(v) = res.json::<Value>().await else { return acked };
        let next = field(&v, "refresh_token");
        acked.push((token, next.clone()));
        token = next;
    }
}

async fn crash_and_restart(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, base) = start_server_with(server(dir.path(), &db));
    let http = reqwest::Client::new();
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        let res = post(
            &http,
            format!("{base}/auth/register"),
            json!({"username": user, "email": format!("{user}@example.com"), "password": PASSWORD}),
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{user}");
    }
    cli(
        dir.path(),
        &db,
        &["user", "set-roles", "--username", "dave", "--role", "admin"],
    );

    // State before the crash: a password change, a logout, a deactivation, a rotation.
    let bob: Value = login(&http, &base, "bob", PASSWORD).await.json().await.unwrap();
    let res = post(
        &http,
        format!("{base}/auth/password"),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        Some(&field(&bob, "access_token")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let carol: Value = login(&http, &base, "carol", PASSWORD).await.json().await.unwrap();
    let res = post(
        &http,
        format!("{base}/auth/logout"),
        json!(null),
        Some(&field(&carol, "access_token")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let dave: Value = login(&http, &base, "dave", PASSWORD).await.json().await.unwrap();
    let erin: Value = http
        .get(format!("{base}/admin/users?limit=200"))
        .bearer_auth(field(&dave, "access_token"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "erin")
        .cloned()
        .unwrap();
    let res = http
        .patch(format!("{base}/admin/users/{}", field(&erin, "id")))
        .bearer_auth(field(&dave, "access_token"))
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Scheduled rotation: the new key is published now and signs later.
    cli(dir.path(), &db, &["keys", "rotate"]);

    // The burst: CHAINS sessions refreshing as fast as they can, then kill -9.
    let mut chains = Vec::new();
    for _ in 0..CHAINS {
        let v: Value = login(&http, &base, "alice", PASSWORD).await.json().await.unwrap();
        chains.push(tokio::spawn(walk_chain(
            http.clone(),
            base.clone(),
            field(&v, "refresh_token"),
        )));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let mut acked: Vec<Acked> = Vec::new();
    for c in chains {
        acked.push(c.await.unwrap());
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(
        acked.iter().all(|a| !a.is_empty()),
        "every chain rotated before the kill"
    );
    eprintln!("crash test: {total} rotations acknowledged before kill -9");

    // The database, read directly: every acknowledged rotation is there.
    let mut settings = Settings::default();
    settings.store.database_url = db.url.clone();
    let store = open_store(&settings, OpenMode::MustExist).await.unwrap();
    for chain in &acked {
        for (presented, successor) in chain {
            let spent = store.refresh_token(&RefreshTokenHash::of(presented)).await.unwrap();
            assert!(spent.is_some_and(|t| t.spent), "an acknowledged rotation was lost");
            let next = store.refresh_token(&RefreshTokenHash::of(successor)).await.unwrap();
            assert!(next.is_some(), "an acknowledged successor was lost");
        }
    }
    store.close().await;

    // Restart on the same database: every rule still holds.
    let (mut child, _, base) = start_server_with(server(dir.path(), &db));
    for chain in &acked {
        let (before_last, last) = chain.last().unwrap();
        // The last successor the client holds: unspent unless a rotation committed just
        // before the kill whose answer never arrived (the client's lost response).
        let res = post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": last}),
            None,
        )
        .await;
        assert!(matches!(res.status(), StatusCode::OK | StatusCode::UNAUTHORIZED));
        // A token whose rotation was acknowledged is spent: presenting it is reuse.
        let res = post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": before_last}),
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login(&http, &base, "bob", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&http, &base, "bob", NEW_PASSWORD).await.status(), StatusCode::OK);
    let res = http
        .get(format!("{base}/me"))
        .bearer_auth(field(&carol, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a logged-out session came back");
    assert_eq!(
        login(&http, &base, "erin", PASSWORD).await.status(),
        StatusCode::FORBIDDEN
    );
    let kids_after: Vec<Value> = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids_after.len(),
        2,
        "the key rotation survived: old and new key published"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A SQLite file in `dir`.
fn sqlite_db(dir: &Path) -> Db {
    let path = dir.join("crash.db");
    Db {
        env_url: format!("sqlite://{}", path.display()),
        url: DatabaseUrl::Sqlite { path },
    }
}

/// A fresh PostgreSQL schema (kept while its handle lives), or a printed skip.
async fn postgres_db() -> Option<(Db, Arc<common::PgSchema>)> {
    let Some(admin) = common::pg_url() else {
        common::say_pg_skipped();
        return None;
    };
    let schema: Arc<common::PgSchema> = common::PgSchema::create(&admin).await;
    let db = Db {
        env_url: schema.url(),
        url: DatabaseUrl::Postgres(schema.url()),
    };
    Some((db, schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_refreshes_loses_nothing_acknowledged_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_restart(sqlite_db(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_refreshes_loses_nothing_acknowledged_on_postgres() {
    if let Some((db, _schema)) = postgres_db().await {
        crash_and_restart(db).await;
    }
}

/// The mail outbox across a `kill -9`: welcome mails committed with their registrations
/// while the SMTP server refuses (451, so none has left) are in the database when the
/// process dies; the restarted server delivers each exactly once.
async fn mail_survives_kill_9(db: Db) {
    use common::smtp::{Answer, SmtpSink};
    const USERS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start();
    sink.answer(Answer::TryLater);
    let with_smtp = |dir: &Path| {
        let mut c = server(dir, &db);
        c.env("TOKENGATE_SMTP_URL", sink.url())
            .env("TOKENGATE_MAIL_FROM", "tokengate <no-reply@example.com>");
        c
    };
    let (child, _, base) = start_server_with(with_smtp(dir.path()));
    let mut child = KillOnDrop(child);
    let http = reqwest::Client::new();
    for n in 0..USERS {
        let user = format!("mailer{n}");
        let res = post(
            &http,
            format!("{base}/auth/register"),
            json!({"username": user, "email": format!("{user}@example.com"), "password": PASSWORD}),
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{user}");
    }
    // Time for the sender to try each and be refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(sink.received().is_empty(), "the SMTP server accepted nothing");
    let queued = cli(dir.path(), &db, &["mail", "list"]);
    assert_eq!(queued.matches("verify_email").count(), USERS, "{queued}");
    assert!(!queued.contains(" sent "), "{queued}");

    // The SMTP server is back; so is tokengate, on the same database.
    sink.answer(Answer::Accept);
    let (child, _, _) = start_server_with(with_smtp(dir.path()));
    let mut child = KillOnDrop(child);
    sink.wait_for(USERS, Duration::from_secs(60)).await;
    // A second copy of any of them would arrive within the second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.received().len(), USERS);
    for n in 0..USERS {
        assert_eq!(sink.count_to(&format!("mailer{n}@example.com")), 1, "mailer{n}");
    }
    let sent = cli(dir.path(), &db, &["mail", "list"]);
    assert_eq!(sent.matches(" sent ").count(), USERS, "{sent}");
    terminate(&mut child.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_mail_queued_loses_none_and_sends_none_twice_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    mail_survives_kill_9(sqlite_db(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_mail_queued_loses_none_and_sends_none_twice_on_postgres() {
    if let Some((db, _schema)) = postgres_db().await {
        mail_survives_kill_9(db).await;
    }
}
