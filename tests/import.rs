//! `tokengate user import`, as someone leaving a FastAPI tutorial app runs it: users
//! hashed by the real passlib-bcrypt and argon2-cffi (tests/fixtures/legacy, with the
//! script that made them) read from the old app's SQLite or PostgreSQL table, then
//! each logs in with their old password and their hash becomes argon2id.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sqlx::Connection as _;

mod common;
#[path = "common/process.rs"]
mod process;
use process::{run, start_server_with, terminate, tokengate};

/// argon2id as `tokengate()` configures it (m=1024 KiB, the default t=2, p=1).
const CURRENT: &str = "$argon2id$v=19$m=1024,t=2,p=1$";

fn legacy_users() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/legacy/users.jsonl"
    ))
    .expect("fixture");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Each fixture user's password, as tests/fixtures/legacy/make_users.py set it.
fn password_of(name: &str) -> String {
    if name == "grace" {
        format!("grace-{}-tail", "x".repeat(70))
    } else {
        format!("{name}-tutorial-pw")
    }
}

/// The old app's table as SQLAlchemy creates it, with the fixture's rows.
const LEGACY_TABLE: &str = "(id INTEGER PRIMARY KEY, username VARCHAR UNIQUE, email VARCHAR UNIQUE,
    full_name VARCHAR, hashed_password VARCHAR NOT NULL, is_active BOOLEAN, created_at {TIME},
    role VARCHAR, roles {JSON})";

fn insert_sql(table: &str, placeholders: &str) -> String {
    format!(
        "INSERT INTO {table} (id, username, email, full_name, hashed_password, is_active, created_at, role, roles)
         VALUES ({placeholders})"
    )
}

/// A created_at as the old app's database column holds it: text for SQLite.
fn created_text(u: &Value) -> Option<String> {
    match &u["created_at"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// roles as a JSON text (SQLAlchemy's JSON type), whether the fixture has a list or a string.
fn roles_json(u: &Value) -> Option<String> {
    match &u["roles"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn make_sqlite_source(path: &Path) -> String {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let ddl = LEGACY_TABLE.replace("{TIME}", "DATETIME").replace("{JSON}", "JSON");
    sqlx::query(&format!("CREATE TABLE users {ddl}"))
        .execute(&mut conn)
        .await
        .unwrap();
    for u in legacy_users() {
        sqlx::query(&insert_sql("users", "?, ?, ?, ?, ?, ?, ?, ?, ?"))
            .bind(u["id"].as_i64())
            .bind(u["username"].as_str())
            .bind(u["email"].as_str())
            .bind(format!("{} Tutorial", u["username"].as_str().unwrap()))
            .bind(u["hashed_password"].as_str())
            .bind(u["is_active"].as_bool())
            .bind(created_text(&u))
            .bind(u["role"].as_str())
            .bind(roles_json(&u))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    format!("sqlite://{}", path.display())
}

/// Where the stored hashes are read from: tokengate's own database.
enum Stored {
    Sqlite(String),
    Postgres(String),
}

impl Stored {
    async fn hash_of(&self, username: &str) -> String {
        const SQL: &str = "SELECT password_hash FROM users WHERE username = $1";
        match self {
            Stored::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(SQL).bind(username).fetch_one(&mut c).await.unwrap()
            }
            Stored::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(SQL).bind(username).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

async fn login(base: &str, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The binary in `dir`, on `database` if given (else `tokengate.db` there), with the
/// login limit out of the way of a test that logs in many times.
fn gate(dir: &Path, database: Option<&str>) -> Command {
    let mut cmd = tokengate(dir);
    cmd.env("TOKENGATE_LOGIN_RATE", "1000/1m");
    if let Some(url) = database {
        // A shared database needs the HS256 secret set (every instance the same).
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        cmd.env("TOKENGATE_DATABASE_URL", url)
            .env("TOKENGATE_SECRET_KEY", secret);
    }
    cmd
}

fn import(cmd: &mut Command, args: &[&str]) -> (i32, String) {
    let (code, out, err) = run(cmd.args(["user", "import"]).args(args), "");
    let text = format!("{out}{err}");
    // Never a hash, whatever happened.
    assert!(!text.contains("$2b$") && !text.contains("$argon2"), "{text}");
    (code, text)
}

/// Every fixture user logs in with their old password; each hash becomes argon2id at
/// the configured cost at that login, once; a wrong password neither logs in nor
/// rehashes; the disabled user stays out.
async fn every_user_logs_in_and_is_rehashed(base: &str, stored: &Stored) {
    for u in legacy_users() {
        let name = u["username"].as_str().unwrap();
        let imported = u["hashed_password"].as_str().unwrap();
        assert_eq!(stored.hash_of(name).await, imported, "{name}: stored as imported");
        assert_eq!(login(base, name, "not-their-password").await, 401, "{name}");
        assert_eq!(
            stored.hash_of(name).await,
            imported,
            "{name}: a failed login rehashes nothing"
        );
        if u["is_active"] == false {
            assert_eq!(login(base, name, &password_of(name)).await, 403, "{name} is disabled");
            continue;
        }
        assert_eq!(login(base, name, &password_of(name)).await, 200, "{name}");
        let upgraded = stored.hash_of(name).await;
        assert!(upgraded.starts_with(CURRENT), "{name}: {upgraded}");
        assert_eq!(login(base, name, &password_of(name)).await, 200, "{name}, again");
        assert_eq!(stored.hash_of(name).await, upgraded, "{name}: current hashes stay");
    }
    // Past 72 bytes bcrypt ignored the rest; the argon2id hash made at login counts it all.
    let other_tail = format!("grace-{}-else", "x".repeat(70));
    assert_eq!(login(base, "grace", &other_tail).await, 401);
}

#[tokio::test]
async fn import_from_a_tutorial_sqlite_database_then_every_hash_upgrades_at_login() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_sqlite_source(&dir.path().join("legacy.db")).await;

    // A dry run reports what a run would do and writes nothing.
    let map = dir.path().join("ids.csv");
    let map_arg = map.display().to_string();
    let (code, out) = import(
        &mut gate(dir.path(), None),
        &["--from-db", &source, "--dry-run", "--id-map", &map_arg],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("dry run: would import 8, skip 0 (exist already), refuse 0; nothing was written"),
        "{out}"
    );
    assert!(!map.exists(), "a dry run writes no id map");
    assert!(!dir.path().join("tokengate.db").exists(), "a dry run makes no database");
    assert!(
        !dir.path().join("tokengate.secret").exists(),
        "a dry run makes no secret"
    );

    let (code, out) = import(
        &mut gate(dir.path(), None),
        &["--from-db", &source, "--id-map", &map_arg],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 8, skipped 0 (exist already), refused 0"),
        "{out}"
    );
    assert!(out.contains("row 5: note: role \"Not A Role!\" left out"), "{out}");
    assert!(out.contains("columns not imported: full_name\n"), "{out}");
    assert!(out.contains("old id -> new id of 8 users written to"), "{out}");
    // Run again before anyone logs in: the same map (each account still holds its row's hash).
    let map2 = dir.path().join("ids2.csv");
    let (_, out) = import(
        &mut gate(dir.path(), None),
        &["--from-db", &source, "--id-map", &map2.display().to_string()],
    );
    assert!(out.contains("imported 0, skipped 8"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&map2).unwrap(),
        std::fs::read_to_string(&map).unwrap()
    );
    // The id map links each old `users.id` to the new id, as `user list` shows it.
    let ids = std::fs::read_to_string(&map).unwrap();
    let (_, listed, _) = run(gate(dir.path(), None).args(["user", "list"]), "");
    let mut lines = ids.lines();
    assert_eq!(lines.next(), Some("old_id,new_id"));
    let pairs: Vec<(String, String)> = lines
        .map(|l| {
            let (old, new) = l.split_once(',').unwrap();
            (old.to_owned(), new.to_owned())
        })
        .collect();
    assert_eq!(pairs.len(), 8, "{ids}");
    for u in legacy_users() {
        let old = u["id"].to_string();
        let new = &pairs
            .iter()
            .find(|(o, _)| *o == old)
            .unwrap_or_else(|| panic!("{old} in {ids}"))
            .1;
        let row = listed.lines().find(|l| l.starts_with(new.as_str())).unwrap_or_default();
        assert!(
            row.contains(u["username"].as_str().unwrap()),
            "{old} -> {new}: {listed}"
        );
    }

    let (mut server, log, base) = start_server_with(gate(dir.path(), None));
    let stored = Stored::Sqlite(format!("sqlite://{}", dir.path().join("tokengate.db").display()));
    every_user_logs_in_and_is_rehashed(&base, &stored).await;
    assert!(!log.contains("$2b$"));

    // Roles came along: alice is an admin; bob has both of his.
    let users = run(gate(dir.path(), None).args(["user", "list"]), "").1;
    let line = |name: &str| users.lines().find(|l| l.contains(name)).unwrap_or("").to_owned();
    assert!(line("alice").contains("admin"), "{users}");
    assert!(line("bob").contains("user,editor"), "{users}");
    assert!(line("frank").contains("false"), "{users}");

    // Running it again changes nothing: every username exists, no hash goes back.
    let before = stored.hash_of("alice").await;
    let (code, out) = import(&mut gate(dir.path(), None), &["--from-db", &source]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported 0, skipped 8"), "{out}");
    assert!(out.contains("row 1: skipped: user alice exists already"), "{out}");
    // Once its users have logged in (their hashes are tokengate's now), a re-run links
    // none of them: only the first run's map has them.
    let again = dir.path().join("ids-again.csv");
    let (_, out) = import(
        &mut gate(dir.path(), None),
        &["--from-db", &source, "--id-map", &again.display().to_string()],
    );
    assert!(
        out.contains("old id -> new id of 1 users"),
        "only frank never logged in: {out}"
    );
    assert!(out.contains("left out of the id map"), "{out}");
    assert_eq!(stored.hash_of("alice").await, before);
    assert_eq!(login(&base, "alice", &password_of("alice")).await, 200);
    terminate(&mut server);
}

#[tokio::test]
async fn malformed_rows_are_reported_by_line_and_nothing_is_imported_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bcrypt = legacy_users()[0]["hashed_password"].as_str().unwrap().to_owned();
    let row = |name: &str, email: &str, hash: &str| {
        serde_json::json!({"username": name, "email": email, "hashed_password": hash}).to_string()
    };
    let lines = [
        row("ivan", "ivan@example.com", &bcrypt),
        row("bad name", "bad@example.com", &bcrypt),
        row("judy", "not-an-email", &bcrypt),
        row("mallory", "mallory@example.com", "$1$md5crypt$0123456789abcdefghij"),
        row("IVAN", "ivan2@example.com", &bcrypt),
        row("oscar", "IVAN@example.com", &bcrypt),
        "{\"username\": \"peggy\",".to_owned(),
        row("trent", "trent@example.com", "plaintext-password"),
    ];
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let from = file.display().to_string();

    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from]);
    assert_ne!(code, 0, "{out}");
    for expected in [
        "line 2: refused: invalid username \"bad name\"",
        "line 3: refused: invalid email \"not-an-email\"",
        "line 4: refused: hashed_password: unknown hash format",
        "line 5: refused: username \"IVAN\" is also on line 1",
        "line 6: refused: email \"IVAN@example.com\" is also on line 1",
        "line 7: refused: not JSON",
        "line 8: refused: hashed_password: unknown hash format",
        "imported 0, skipped 0 (exist already), refused 7",
        "nothing was imported",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    assert!(!out.contains("plaintext-password"), "{out}");

    let (mut server, _, base) = start_server_with(gate(dir.path(), None));
    assert_eq!(
        login(&base, "ivan", &password_of("alice")).await,
        401,
        "nothing imported"
    );
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from, "--skip-invalid"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 1, skipped 0 (exist already), refused 7"),
        "{out}"
    );
    // ivan got alice's fixture hash, so alice's password.
    assert_eq!(login(&base, "ivan", &password_of("alice")).await, 200);
    terminate(&mut server);
}

#[tokio::test]
async fn users_named_by_their_email_keep_logging_in_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let hash = |i: usize| legacy_users()[i]["hashed_password"].as_str().unwrap().to_owned();
    let rows = [
        // fastapi-users: the email is the login, no username column.
        serde_json::json!({"id": "7f3c", "username": "jane@example.com", "hashed_password": hash(0)}),
        // The same local part elsewhere: a second, numbered username.
        serde_json::json!({"id": "8a1d", "username": "Jane@other.org", "hashed_password": hash(1)}),
        serde_json::json!({"id": "9b2e", "username": "kim+dev@example.com", "email": "kim@example.com", "hashed_password": hash(2)}),
    ];
    let file = dir.path().join("users.jsonl");
    let text: Vec<String> = rows.iter().map(ToString::to_string).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let from = file.display().to_string();
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "line 1: note: username \"jane\" made from the email \"jane@example.com\" (they log in with either)",
        "line 2: note: username \"Jane-2\" made from the email \"Jane@other.org\"",
        "line 3: note: username \"kim_dev\" made from the email \"kim@example.com\"",
        "imported 3, skipped 0 (exist already), refused 0",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    let (mut server, _, base) = start_server_with(gate(dir.path(), None));
    // They sign in exactly as before: with the address and their old password.
    assert_eq!(login(&base, "jane@example.com", &password_of("alice")).await, 200);
    assert_eq!(login(&base, "jane@other.org", &password_of("bob")).await, 200);
    assert_eq!(login(&base, "kim@example.com", &password_of("carol")).await, 200);
    assert_eq!(login(&base, "Jane-2", &password_of("bob")).await, 200);
    terminate(&mut server);
    // A re-run finds them by email.
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported 0, skipped 3"), "{out}");
    // A dry run in a folder with no database writes no file at all.
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = import(&mut gate(empty.path(), None), &["--from", &from, "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dry run: would import 3"), "{out}");
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "a dry run wrote files"
    );
}

#[tokio::test]
async fn the_id_map_never_links_an_account_someone_else_made_first() {
    let dir = tempfile::tempdir().unwrap();
    // Before the import, strangers register the names and addresses of the old users.
    let (mut server, _, base) = start_server_with(gate(dir.path(), None));
    let http = reqwest::Client::new();
    for (name, email) in [("jane", "mallory@evil.com"), ("mal2", "jdoe@corp.com")] {
        let body = serde_json::json!({"username": name, "email": email, "password": "a-long-password-42"});
        let res = http
            .post(format!("{base}/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
    }
    terminate(&mut server);
    let hash = legacy_users()[0]["hashed_password"].as_str().unwrap().to_owned();
    let rows = [
        serde_json::json!({"id": 42, "username": "Jane", "email": "jane@corp.com", "hashed_password": hash}),
        serde_json::json!({"id": 43, "username": "JDoe@Corp.com", "hashed_password": hash}),
        // A derived name never takes a name the input itself spells out.
        serde_json::json!({"id": 44, "username": "bob@evil.com", "hashed_password": hash}),
        serde_json::json!({"id": 45, "username": "bob", "email": "bob@corp.com", "hashed_password": hash}),
    ];
    let file = dir.path().join("users.jsonl");
    let text: Vec<String> = rows.iter().map(ToString::to_string).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let map = dir.path().join("ids.csv");
    let (code, out) = import(
        &mut gate(dir.path(), None),
        &[
            "--from",
            &file.display().to_string(),
            "--id-map",
            &map.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    for expected in [
        "line 1: skipped: user Jane exists already",
        "line 1: note: user \"jane\" exists here and its password is not this row's",
        "line 2: note: user \"mal2\" exists here and its password is not this row's",
        "line 3: note: username \"bob-2\" made from the email \"bob@evil.com\"",
        "imported 2, skipped 2 (exist already), refused 0",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    let ids = std::fs::read_to_string(&map).unwrap();
    let olds: Vec<&str> = ids.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert_eq!(olds, ["44", "45"], "{ids}");
}

#[tokio::test]
async fn an_unmapped_column_that_looks_like_a_missing_field_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    let hash = legacy_users()[0]["hashed_password"].as_str().unwrap().to_owned();
    std::fs::write(
        &file,
        format!("username,email,password_hash\nivan,ivan@example.com,\"{hash}\"\n"),
    )
    .unwrap();
    let from = file.display().to_string();
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("line 2: refused: hashed_password missing"), "{out}");
    assert!(
        out.contains("hint: a column looks like a missing field; try --map password_hash=hashed_password"),
        "{out}"
    );
    let (code, out) = import(
        &mut gate(dir.path(), None),
        &["--from", &from, "--map", "password_hash=hashed_password"],
    );
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn csv_with_a_header_row_and_mapped_columns() {
    let dir = tempfile::tempdir().unwrap();
    let dave = &legacy_users()[3];
    let file = dir.path().join("export.csv");
    std::fs::write(
        &file,
        format!(
            "login,email,pw_hash,disabled,roles\nwalter,walter@example.com,\"{}\",f,\"admin, ops\"\n",
            dave["hashed_password"].as_str().unwrap()
        ),
    )
    .unwrap();
    let from = file.display().to_string();
    let args = [
        "--from",
        &from,
        "--map",
        "login=username",
        "--map",
        "pw_hash=hashed_password",
    ];
    let (code, out) = import(&mut gate(dir.path(), None), &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported 1,"), "{out}");
    let (mut server, _, base) = start_server_with(gate(dir.path(), None));
    assert_eq!(login(&base, "walter", &password_of("dave")).await, 200);
    terminate(&mut server);
    // Without the header row there is nothing to go by.
    std::fs::write(&file, "walter,walter@example.com,h\n").unwrap();
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from]);
    assert_ne!(code, 0);
    assert!(out.contains("the first row must name the columns"), "{out}");
}

#[tokio::test]
async fn operator_commands_on_postgresql_need_no_signing_secret_and_print_no_server_warnings() {
    let Some(admin) = common::pg_url() else {
        common::say_pg_skipped();
        return;
    };
    let schema = common::PgSchema::create(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    // Only the database: no TOKENGATE_SECRET_KEY (these commands sign nothing), no Redis.
    let op = || {
        let mut c = tokengate(dir.path());
        c.env("TOKENGATE_DATABASE_URL", schema.url());
        c
    };
    let quiet = |what: &str, err: &str| {
        assert!(!err.contains("WARN") && !err.contains("rate limits"), "{what}: {err}");
    };
    let (code, _, err) = run(op().arg("migrate"), "");
    assert_eq!(code, 0, "{err}");
    quiet("migrate", &err);
    // Again, as every instance after the first does at its start: no notice about the
    // migrations table that exists already, even at the server's log level.
    let (code, _, err) = run(op().arg("migrate").env("TOKENGATE_LOG", "info"), "");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("already exists"), "{err}");
    let (code, out, err) = run(
        op().args([
            "user",
            "create",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--role",
            "admin",
        ]),
        "a-long-root-password-42\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created user root"), "{out}");
    quiet("user create", &err);
    let file = dir.path().join("users.jsonl");
    let hash = legacy_users()[0]["hashed_password"].as_str().unwrap().to_owned();
    let row = serde_json::json!({"username": "ivan", "email": "ivan@example.com", "hashed_password": hash});
    std::fs::write(&file, row.to_string()).unwrap();
    let (code, out, err) = run(op().args(["user", "import", "--from", &file.display().to_string()]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 1,"), "{out}");
    quiet("user import", &err);
    let (code, out, err) = run(op().args(["user", "list"]), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("root") && out.contains("ivan"), "{out}");
    quiet("user list", &err);
    // Run with another algorithm, an operator command makes no signing key (the fleet
    // would start signing with it).
    let (code, _, err) = run(op().args(["user", "list"]).env("TOKENGATE_ALGORITHM", "EdDSA"), "");
    assert_eq!(code, 0, "{err}");
    let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    // --database-url works as well as the variable, after the subcommand too.
    let (code, out, err) = run(
        tokengate(dir.path()).args(["user", "list", "--database-url", &schema.url()]),
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("root"), "{out}");
}

#[tokio::test]
async fn import_from_a_tutorial_postgresql_table_into_postgresql() {
    let Some(admin) = common::pg_url() else {
        common::say_pg_skipped();
        return;
    };
    let schema = common::PgSchema::create(&admin).await;
    let mut conn = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
    let ddl = LEGACY_TABLE.replace("{TIME}", "TIMESTAMP").replace("{JSON}", "JSONB");
    sqlx::query(&format!("CREATE TABLE legacy_users {ddl}"))
        .execute(&mut conn)
        .await
        .unwrap();
    for u in legacy_users() {
        // A TIMESTAMP column holds no Unix seconds: that row has none here.
        let created = created_text(&u).filter(|t| t.parse::<i64>().is_err());
        sqlx::query(&insert_sql(
            "legacy_users",
            "$1, $2, $3, $4, $5, $6, $7::timestamptz, $8, $9::jsonb",
        ))
        .bind(u["id"].as_i64())
        .bind(u["username"].as_str())
        .bind(u["email"].as_str())
        .bind("Full Name")
        .bind(u["hashed_password"].as_str())
        .bind(u["is_active"].as_bool())
        .bind(created)
        .bind(u["role"].as_str())
        .bind(roles_json(&u))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let table = format!("{}.legacy_users", schema.name);
    let dir = tempfile::tempdir().unwrap();
    let db = schema.url();
    let (code, out) = import(
        &mut gate(dir.path(), Some(&db)),
        &["--from-db", &admin, "--table", &table],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 8, skipped 0 (exist already), refused 0"),
        "{out}"
    );

    let (mut server, _, base) = start_server_with(gate(dir.path(), Some(&db)));
    every_user_logs_in_and_is_rehashed(&base, &Stored::Postgres(schema.url())).await;
    terminate(&mut server);
}

#[tokio::test]
async fn raising_the_argon2_cost_upgrades_each_hash_at_its_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let stored = Stored::Sqlite(format!("sqlite://{}", dir.path().join("tokengate.db").display()));
    let (mut server, _, base) = start_server_with(gate(dir.path(), None));
    let status = reqwest::Client::new()
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"username": "olivia", "email": "olivia@example.com", "password": "olivia-password"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    assert!(stored.hash_of("olivia").await.starts_with(CURRENT));
    terminate(&mut server);

    let mut raised = gate(dir.path(), None);
    raised
        .env("TOKENGATE_ARGON2_MEMORY_KIB", "2048")
        .env("TOKENGATE_ARGON2_ITERATIONS", "3");
    let (mut server, _, base) = start_server_with(raised);
    let old = stored.hash_of("olivia").await;
    assert_eq!(login(&base, "olivia", "wrong-password").await, 401);
    assert_eq!(stored.hash_of("olivia").await, old, "a failed login rehashes nothing");
    assert_eq!(login(&base, "olivia", "olivia-password").await, 200);
    let new = stored.hash_of("olivia").await;
    assert!(new.starts_with("$argon2id$v=19$m=2048,t=3,p=1$"), "{new}");
    assert_eq!(login(&base, "olivia", "olivia-password").await, 200);
    terminate(&mut server);
}

/// Hashes too costly to verify (one wrong-password login would pin a hashing thread for
/// hours, or take gigabytes) are refused like any other bad row, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_too_costly_to_verify_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bcrypt = legacy_users()[0]["hashed_password"].as_str().unwrap().to_owned();
    // A bcrypt hash's cost is its third field: the fixture's, raised.
    let bcrypt_at = |cost: &str| format!("$2b${cost}${}", &bcrypt[7..]);
    let salt_and_hash = "c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let row = |name: &str, hash: &str| {
        serde_json::json!({"username": name, "email": format!("{name}@example.com"), "hashed_password": hash})
            .to_string()
    };
    let lines = [
        row("ivan", &bcrypt),
        row("cost31", &bcrypt_at("31")),
        row("cost15", &bcrypt_at("15")),
        row("huge", &format!("$argon2id$v=19$m=4194304,t=100,p=64${salt_and_hash}")),
        row("gigabyte", &format!("$argon2id$v=19$m=1048576,t=2,p=1${salt_and_hash}")),
        row("slow", &format!("$argon2id$v=19$m=19456,t=11,p=1${salt_and_hash}")),
        row("argoncffi", &format!("$argon2id$v=19$m=65536,t=3,p=4${salt_and_hash}")),
    ];
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let from = file.display().to_string();
    let (code, out) = import(&mut gate(dir.path(), None), &["--from", &from, "--skip-invalid"]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "line 2: refused: hashed_password: bcrypt cost 31 is above the maximum 14",
        "line 3: refused: hashed_password: bcrypt cost 15 is above the maximum 14",
        "line 4: refused: hashed_password: argon2 memory 4194304 KiB is above the maximum",
        "line 5: refused: hashed_password: argon2 memory 1048576 KiB is above the maximum",
        "line 6: refused: hashed_password: argon2 iterations 11 are above the maximum 10",
        "the user must reset their password",
        "imported 2, skipped 0 (exist already), refused 5",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    // The bound is configurable: cost 15 is accepted when the operator allows it.
    let mut cmd = gate(dir.path(), None);
    cmd.env("TOKENGATE_BCRYPT_MAX_COST", "15");
    let (code, out) = import(&mut cmd, &["--from", &from, "--skip-invalid"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("imported 1, skipped 2 (exist already), refused 4"),
        "{out}"
    );
}
