//! The test harness: start the real router on 127.0.0.1:0 over a chosen backend,
//! with an injected clock and a known secret so tests can forge tokens.
#![allow(dead_code)]

pub mod smtp;
pub mod stores;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokengate::auth::keys::RotateMode;
use tokengate::clock::ManualClock;
use tokengate::config::Settings;
use tokengate::config::check_secret;
use tokengate::crypto::passwords::Argon2Params;
use tokengate::limits::Rate;
use tokengate::mail::MailTransportSettings;
use tokengate::server::{build_state, serve_on};
use tokengate::store::DatabaseUrl;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HS256 secret of every test server.
/// The token endpoint's answer to a wrong username or password: FastAPI's `detail`
/// and RFC 6749's `error`, the same for every failure.
pub const BAD_CREDENTIALS: &str = r#"{"detail":"Incorrect username or password","error":"invalid_grant","error_description":"Incorrect username or password"}
"#;
pub const TEST_SECRET: &str = "test-secret-for-tokengate-tests-0123456789abcdef";
pub const ISSUER: &str = "tokengate-test";
pub const AUDIENCE: &str = "tokengate-test-clients";
pub const PASSWORD: &str = "strongpass123";

/// Which storage the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The server of `TOKENGATE_TEST_PG_URL`, a fresh schema per test server.
    Postgres,
}

/// The PostgreSQL server for the tests, if `TOKENGATE_TEST_PG_URL` names one.
pub fn pg_url() -> Option<String> {
    std::env::var("TOKENGATE_TEST_PG_URL").ok().filter(|u| !u.is_empty())
}

/// The Redis server for the tests, if `TOKENGATE_TEST_REDIS_URL` names one.
pub fn redis_url() -> Option<String> {
    std::env::var("TOKENGATE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// Say once per test binary why the PostgreSQL tests do nothing here; under CI (`CI`
/// set) a missing database is a failure, never a silent pass.
pub fn say_pg_skipped() {
    assert!(
        std::env::var_os("CI").is_none(),
        "TOKENGATE_TEST_PG_URL is not set under CI: the PostgreSQL tests cannot be skipped here"
    );
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Written to stderr directly: the test harness captures `eprintln!`.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL conformance tests skipped: TOKENGATE_TEST_PG_URL is not set (.ci/run sets it)"
        );
    });
}

/// A schema of its own on the test PostgreSQL server, dropped when the last holder
/// lets go of it (the test is over), so runs never collide and leave nothing behind.
pub struct PgSchema {
    admin_url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create(admin_url: &str) -> Arc<Self> {
        let name = format!("tg_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .expect("connect to TOKENGATE_TEST_PG_URL");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        Arc::new(Self {
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// The database URL that puts a server in this schema.
    pub fn url(&self) -> String {
        let sep = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.admin_url, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// What a stopped server leaves for the next one on the same database.
pub struct Leftovers {
    _dir: Option<tempfile::TempDir>,
    _schema: Option<Arc<PgSchema>>,
}

/// Settings every test server starts from: cheap argon2 so tests stay quick.
pub fn test_settings(db: &Path) -> Settings {
    let mut s = Settings::default();
    s.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    s.store.database_url = DatabaseUrl::Sqlite { path: db.to_path_buf() };
    s.tokens.secret_key = Some(check_secret(TEST_SECRET).expect("test secret is valid"));
    s.tokens.issuer = ISSUER.into();
    s.tokens.audience = AUDIENCE.into();
    s.argon2 = Argon2Params {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    // Out of the way, except in the tests of the limits themselves.
    let plenty = Rate {
        count: 1000,
        window_secs: 60,
    };
    s.limits.login = plenty;
    s.limits.refresh = plenty;
    s.limits.register = plenty;
    s.recovery.mail_rate = plenty;
    s.recovery.mail_network_rate = plenty;
    s.mfa.rate = plenty;
    // Mail (a verification at every registration) as files beside the database, in the
    // test's own folder; a test that reads mail points it at an SMTP server of its own.
    s.mail.transport = MailTransportSettings::Files(db.parent().unwrap_or(Path::new(".")).join("mail"));
    s
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub settings: Settings,
    pub db_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    state: tokengate::AppState,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<Arc<PgSchema>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Start on a fresh database, after `tweak` adjusts the settings.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = dir.path().join("tokengate.db");
                let mut s = test_settings(&db);
                tweak(&mut s);
                let mut srv = Self::start_settings(s, ManualClock::new()).await;
                srv._dir = Some(dir);
                srv
            }
            Backend::Postgres => {
                let admin = pg_url().expect("TOKENGATE_TEST_PG_URL");
                let schema = PgSchema::create(&admin).await;
                // No database file, but a folder for the mail files all the same.
                let dir = tempfile::tempdir().expect("tempdir");
                let mut s = test_settings(&dir.path().join("unused"));
                s.store.database_url = DatabaseUrl::Postgres(schema.url());
                s.store.pool_size = 4;
                // The scaled-out deployment: PostgreSQL with Redis when there is one,
                // under a prefix of this test's own.
                if let Some(redis) = redis_url() {
                    s.redis.url = Some(redis);
                    s.redis.prefix = format!("tokengate-test:{}:", schema.name);
                }
                tweak(&mut s);
                let mut srv = Self::start_settings(s, ManualClock::new()).await;
                srv._schema = Some(schema);
                srv._dir = Some(dir);
                srv
            }
        }
    }

    /// Start with exactly these settings and this clock.
    pub async fn start_settings(mut settings: Settings, clock: ManualClock) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // As `serve` does: the address actually bound is the one URLs are made from.
        settings.http.bind = addr;
        let limits = settings.http.connections;
        let state = build_state(&settings, Arc::new(clock.clone()))
            .await
            .expect("server state builds");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                // As `serve` does: mail is delivered while the server runs.
                let mail = tokio::spawn(state.auth.mail_service().run());
                let _ = serve_on(listener, state, limits, async {
                    let _ = rx.await;
                })
                .await;
                mail.abort();
            }
        });
        let db_path = match &settings.store.database_url {
            DatabaseUrl::Sqlite { path } => path.clone(),
            DatabaseUrl::Postgres(_) => PathBuf::new(),
        };
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .user_agent("tokengate-tests")
                .build()
                .expect("client"),
            clock,
            settings,
            db_path,
            stop: Some(tx),
            task: Some(task),
            state,
            _dir: None,
            _schema: None,
        }
    }

    /// Stop serving and close the database, keeping its files or schema (restart tests).
    pub async fn stop(mut self) -> Leftovers {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.state.auth.close().await;
        Leftovers {
            _dir: self._dir.take(),
            _schema: self._schema.take(),
        }
    }

    /// `path` on this server, under its path prefix (if it has one).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, self.settings.http.path_prefix)
    }

    /// Send `request` as raw bytes (whatever an HTTP client library would refuse to
    /// send) on a new connection, and read the answer until the server closes it.
    pub async fn raw(&self, request: &[u8]) -> RawResponse {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = self.base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("send");
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the server answers and closes within 10 s")
            .expect("read");
        RawResponse::parse(&out)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_auth(&self, path: &str, access: &str, body: Option<Value>) -> Response {
        let mut req = self.http.post(self.url(path)).bearer_auth(access);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    pub async fn get_auth(&self, path: &str, access: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }

    /// Register `username` with [`PASSWORD`]; the `UserRead` body.
    pub async fn register(&self, username: &str) -> Value {
        let res = self
            .post_json(
                "/auth/register",
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "register {username}");
        res.json().await.expect("json")
    }

    /// Log in with JSON; the token pair.
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let res = self
            .post_json("/auth/login", json!({"username": username, "password": password}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login {username}");
        Tokens::from(res.json::<Value>().await.expect("json"))
    }

    /// Register then log in.
    pub async fn user(&self, username: &str) -> Tokens {
        self.register(username).await;
        self.login(username, PASSWORD).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", json!({"refresh_token": refresh_token}))
            .await
    }

    /// Replace a user's roles, as the operator's `tokengate user set-roles` does.
    pub async fn set_roles(&self, username: &str, roles: &[&str]) {
        let user = self.state.auth.user_named(username).await.expect("user exists");
        let roles = roles
            .iter()
            .map(|r| tokengate::domain::Role::parse(r).expect("role"))
            .collect();
        self.state
            .auth
            .set_roles(user.id, roles, &Default::default())
            .await
            .expect("set roles");
    }

    /// Deactivate or reactivate a user, as `tokengate user deactivate|activate` does.
    pub async fn set_active(&self, username: &str, active: bool) {
        let user = self.state.auth.user_named(username).await.expect("user exists");
        let update = tokengate::auth::UserChange {
            is_active: Some(active),
            ..Default::default()
        };
        self.state
            .auth
            .update_user(None, user.id, update, &Default::default())
            .await
            .expect("set active");
    }

    /// The service behind the server (operator actions, store inspection).
    /// The server's database, opened again beside it (for tests that look at or write
    /// what only the store sees).
    pub async fn store(&self) -> Arc<dyn tokengate::store::Store> {
        tokengate::store::open(&self.settings.store)
            .await
            .expect("the store opens")
    }

    pub fn auth(&self) -> &tokengate::auth::AuthService {
        &self.state.auth
    }

    /// `tokengate keys rotate` (the new key signs after the publish-ahead time), then
    /// the reload a running server does on its own; the new kid.
    pub async fn rotate_keys(&self) -> String {
        self.state
            .auth
            .rotate_keys(RotateMode::Scheduled)
            .await
            .expect("rotate keys")
    }

    /// `tokengate keys rotate --now`: the new key signs at once, the old one is revoked.
    pub async fn rotate_keys_now(&self) -> String {
        self.state
            .auth
            .rotate_keys(RotateMode::Revoke)
            .await
            .expect("rotate keys")
    }

    /// `GET` a JSON document.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.http.get(self.url(path)).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.json().await.expect("json")
    }

    /// A user with the `admin` role, logged in after the grant.
    pub async fn admin(&self, username: &str) -> Tokens {
        self.register(username).await;
        self.set_roles(username, &["admin"]).await;
        self.login(username, PASSWORD).await
    }

    pub async fn patch_auth(&self, path: &str, access: &str, body: Value) -> Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete_auth(&self, path: &str, access: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }

    /// `GET /me` status with this access token.
    pub async fn me_status(&self, access: &str) -> StatusCode {
        self.get_auth("/me", access).await.status()
    }
}

/// An access + refresh token pair from a response body.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl From<Value> for Tokens {
    fn from(v: Value) -> Self {
        Self {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"].as_str().expect("refresh_token").to_owned(),
        }
    }
}

/// The `WWW-Authenticate` header of a response ("" when there is none).
fn challenge(res: &Response) -> String {
    res.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Assert a 401 that refuses a presented token, with the contract's challenge (which
/// may say why: RFC 6750's `error_description`).
pub async fn assert_invalid_token(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge(&res);
    let described = ["token expired", "token revoked", "invalid signature"]
        .iter()
        .any(|d| challenge == format!("Bearer error=\"invalid_token\", error_description=\"{d}\""));
    assert!(
        challenge == "Bearer error=\"invalid_token\"" || described,
        "{challenge}"
    );
    let body: Value = res.json().await.expect("json");
    assert!(body["detail"].is_string(), "{body}");
}

/// Assert a refused token whose challenge names exactly this reason.
pub async fn assert_refused_because(res: Response, description: &str) {
    assert_eq!(
        challenge(&res),
        format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
    );
    assert_invalid_token(res).await;
}

/// The `Cookie` header a browser sends after `res`: each `Set-Cookie`'s name=value.
pub fn cookie_header(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decode a JWT's header and claims without verifying (for inspecting shapes).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let mut it = token.split('.');
    let mut part = || {
        let raw = it.next().expect("jwt part");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .expect("b64");
        serde_json::from_slice::<Value>(&bytes).expect("json")
    };
    (part(), part())
}

/// An HTTP/1.1 response read off a socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> Self {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        Self {
            status,
            head,
            body: bytes[split + 4..].to_vec(),
        }
    }

    /// The body as JSON (the test fails if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }
}
