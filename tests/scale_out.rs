//! Several instances on one PostgreSQL and one Redis, and Redis failing: the rules hold
//! across instances, and an instance without Redis still serves every request. Needs
//! `TOKENGATE_TEST_PG_URL` and `TOKENGATE_TEST_REDIS_URL` (`.ci/run` sets both); without
//! them each test says why it skips.

#[path = "common/mod.rs"]
mod common;
#[path = "common/soft_passkey.rs"]
mod soft_passkey;

use std::io::Write as _;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::limits::Rate;

use common::{Backend, PASSWORD, TestServer, assert_invalid_token, pg_url, redis_url};

/// `GET /me` with `token` on `srv` is refused within one second (each instance honours
/// a revocation made elsewhere once it has read the revocation log).
async fn refused_within_a_second(srv: &TestServer, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let res = srv.get_auth("/me", token).await;
        if res.status() == StatusCode::UNAUTHORIZED {
            assert_invalid_token(res).await;
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted a second after its revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Wait until `done` answers true, for at most a second (what every instance promises
/// of a change made on another); `what` says what did not happen.
async fn within_a_second<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An application registered through `srv`'s auth service (its id, and its secret).
async fn register_app(srv: &TestServer, name: &str, public: bool) -> (tokengate::domain::ClientId, Option<String>) {
    use tokengate::auth::oauth::ClientRegistration;
    use tokengate::domain::{ClientName, RedirectUri, Scope};
    let done = srv
        .auth()
        .register_client(ClientRegistration {
            name: ClientName::parse(name).unwrap(),
            redirect_uris: vec![RedirectUri::parse("https://app.example.com/cb").unwrap()],
            post_logout_redirect_uris: vec![],
            scopes: Some(vec![Scope::parse("openid").unwrap()]),
            public,
            trusted: true,
            audience: None,
        })
        .await
        .unwrap();
    (done.client.id, done.secret)
}

/// Both services configured, or a printed reason and `false`.
fn services() -> bool {
    let ok = pg_url().is_some() && redis_url().is_some();
    if !ok {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out test skipped: TOKENGATE_TEST_PG_URL and TOKENGATE_TEST_REDIS_URL must both be set (.ci/run sets them)"
        );
    }
    ok
}

/// PostgreSQL configured, or a printed reason and `false`.
fn postgres() -> bool {
    let ok = pg_url().is_some();
    if !ok {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out test skipped: TOKENGATE_TEST_PG_URL is not set"
        );
    }
    ok
}

fn login_limited(s: &mut tokengate::config::Settings) {
    s.limits.login = Rate {
        count: 3,
        window_secs: 60,
    };
    s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn login_from(srv: &TestServer, ip: &str, username: &str, password: &str) -> reqwest::Response {
    srv.http
        .post(srv.url("/auth/login"))
        .header("x-forwarded-for", ip)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_tokens_revocations_and_limits() {
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, login_limited).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let c = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("alzy").await;
    // A token from A works on B and C; sessions are listed from any node.
    for srv in [&b, &c] {
        assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
        let sessions: Vec<Value> = srv.get_auth("/auth/sessions", &t.access).await.json().await.unwrap();
        assert_eq!(sessions.len(), 1);
    }
    // Rotation on A, reuse on B: the session dies everywhere.
    let rotated: Value = a.refresh(&t.refresh).await.json().await.unwrap();
    let fresh = rotated["access_token"].as_str().unwrap().to_owned();
    for srv in [&a, &b, &c] {
        assert_eq!(srv.me_status(&fresh).await, StatusCode::OK, "cached everywhere");
    }
    assert_invalid_token(b.refresh(&t.refresh).await).await;
    for srv in [&a, &b, &c] {
        refused_within_a_second(srv, &fresh).await;
    }
    // Logout on A is refused on B and C, which had the session cached.
    let t2 = b.login("alzy", PASSWORD).await;
    for srv in [&b, &c] {
        assert_eq!(srv.me_status(&t2.access).await, StatusCode::OK);
    }
    assert_eq!(
        a.post_auth("/auth/logout", &t2.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_invalid_token(a.get_auth("/me", &t2.access).await).await;
    for srv in [&b, &c] {
        refused_within_a_second(srv, &t2.access).await;
    }
    // Deactivation on A blocks C.
    let t3 = c.login("alzy", PASSWORD).await;
    assert_eq!(c.me_status(&t3.access).await, StatusCode::OK);
    a.set_active("alzy", false).await;
    refused_within_a_second(&c, &t3.access).await;
    // Login limits are counted across instances: failures for bob from five networks,
    // spread over A, B and C (none of which saw five itself), are a distributed attack
    // on every node, and the username's shared budget (3) is gone everywhere.
    a.register("bob").await;
    for (srv, ip) in [
        (&a, "203.0.113.1"),
        (&a, "203.0.113.2"),
        (&b, "203.0.113.3"),
        (&b, "203.0.113.4"),
        (&c, "203.0.113.5"),
    ] {
        assert_eq!(
            login_from(srv, ip, "bob", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for (srv, ip) in [(&c, "203.0.113.6"), (&a, "203.0.113.7"), (&b, "203.0.113.8")] {
        assert_eq!(
            login_from(srv, ip, "bob", PASSWORD).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let ready: Value = a.get_json("/readyz").await;
    assert_eq!(ready, json!({"status": "ok", "database": "ok", "redis": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_requests_work_and_limits_count_locally() {
    if !postgres() {
        return;
    }
    // A Redis that is not there (nothing listens on port 1).
    let srv = TestServer::start_with(Backend::Postgres, |s| {
        login_limited(s);
        s.redis.url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let t = srv.user("alzy").await;
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    assert_eq!(
        srv.post_auth("/auth/logout", &t.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
    // Limits still hold, counted in this instance: three failures from one network.
    for _ in 0..3 {
        assert_eq!(
            login_from(&srv, "203.0.113.1", "alzy", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&srv, "203.0.113.1", "alzy", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let ready: Value = srv.get_json("/readyz").await;
    assert_eq!(
        ready,
        json!({"status": "degraded", "database": "ok", "redis": "degraded"})
    );
}

/// A redis-server of this test's own on a free port: the fault tests stop and restart
/// it, never the machine's shared one.
struct PrivateRedis {
    child: Option<std::process::Child>,
    port: u16,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut r = Self { child: None, port };
        r.restart().then_some(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)start it; `true` once it accepts connections.
    fn restart(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn flushall(&self) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("redis");
        s.write_all(b"*1\r\n$8\r\nFLUSHALL\r\n").expect("flushall");
        let mut reply = [0u8; 5];
        std::io::Read::read_exact(&mut s, &mut reply).expect("reply");
        assert_eq!(&reply, b"+OK\r\n");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client of real `tokengate serve` processes.
struct Client(reqwest::Client);

impl Client {
    /// Register `user` (with [`PASSWORD`]) on `node`.
    async fn register(&self, node: &Instance, user: &str) {
        let res = self
            .0
            .post(node.url("/auth/register"))
            .json(&json!({"username": user, "email": format!("{user}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    /// Log `user` in on `node`; the access token.
    async fn login(&self, node: &Instance, user: &str) -> String {
        let res = self
            .0
            .post(node.url("/auth/login"))
            .form(&[("username", user), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    async fn me(&self, node: &Instance, token: &str) -> StatusCode {
        self.0
            .get(node.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn logout(&self, node: &Instance, token: &str) {
        let res = self
            .0
            .post(node.url("/auth/logout"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }

    /// `/me` with `token` on `node` is refused within one second.
    async fn refused_soon(&self, node: &Instance, token: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.me(node, token).await != StatusCode::UNAUTHORIZED {
            assert!(
                std::time::Instant::now() < deadline,
                "still accepted 1 s after its revocation"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `/readyz`'s `redis` field on `node` becomes `want` within 10 s (a login makes the
    /// limiter touch Redis, which is how an instance notices).
    async fn redis_becomes(&self, node: &Instance, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let _ = self
                .0
                .post(node.url("/auth/login"))
                .form(&[("username", "nobody"), ("password", "wrong-password")])
                .send()
                .await;
            let ready: Value = self
                .0
                .get(node.url("/readyz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ready["redis"] == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis never became {want}: {ready}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_restarted_or_flushed_never_lets_a_revoked_token_through() {
    if !postgres() {
        return;
    }
    let Some(mut redis) = PrivateRedis::start() else {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out fault test skipped: no redis-server to start"
        );
        return;
    };
    let schema = common::PgSchema::create(&pg_url().unwrap()).await;
    let env = vec![
        ("TOKENGATE_DATABASE_URL", schema.url()),
        ("TOKENGATE_REDIS_URL", redis.url()),
        ("TOKENGATE_SECRET_KEY", "k7Qz0pL3vX9bN2mC5rT8wY1aS4dF6gH0".to_owned()),
        // Out of the way: this test probes Redis with many logins from one address.
        ("TOKENGATE_LOGIN_RATE", "1000/1m".to_owned()),
    ];
    let (a, b) = (Instance::start(&env), Instance::start(&env));
    let http = Client(reqwest::Client::new());
    http.register(&a, "alzy").await;
    let t = http.login(&a, "alzy").await;
    let t2 = http.login(&b, "alzy").await;
    for node in [&a, &b] {
        for tok in [&t, &t2] {
            assert_eq!(http.me(node, tok).await, StatusCode::OK);
        }
    }
    http.redis_becomes(&a, "ok").await;

    // Redis stops: logins and /me go on; a logout on A is refused on B within 1 s
    // (the push channel is down too: B finds it in the revocation log).
    redis.stop();
    http.redis_becomes(&a, "degraded").await;
    let t3 = http.login(&a, "alzy").await;
    assert_eq!(http.me(&b, &t3).await, StatusCode::OK);
    http.logout(&a, &t).await;
    http.refused_soon(&b, &t).await;

    // Redis comes back (empty): the instances use it again; nothing revoked revives.
    assert!(redis.restart(), "redis-server restarts");
    http.redis_becomes(&a, "ok").await;
    for node in [&a, &b] {
        assert_eq!(http.me(node, &t).await, StatusCode::UNAUTHORIZED);
    }
    // FLUSHALL wipes every counter: revocation does not live there.
    http.logout(&b, &t2).await;
    redis.flushall();
    for node in [&a, &b] {
        http.refused_soon(node, &t2).await;
        assert_eq!(http.me(node, &t3).await, StatusCode::OK);
    }
}

/// The binary with exactly these settings (and a cheap argon2 cost).
fn tokengate_with(env: &[(&str, String)]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"));
    // A folder of its own: an instance without TOKENGATE_DATABASE_URL makes its SQLite
    // file (and its secret) in the working folder, never the repository's.
    let dir = tempfile::tempdir().expect("a temporary folder").keep();
    c.current_dir(dir)
        .env_clear()
        .env("TOKENGATE_ARGON2_MEMORY_KIB", "1024");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A real `tokengate serve` process on a free port; killed when dropped.
struct Instance {
    child: std::process::Child,
    base: String,
}

impl Instance {
    fn start(env: &[(&str, String)]) -> Self {
        use std::io::BufRead as _;
        let mut child = tokengate_with(env)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tokengate");
        let mut reader = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut log = String::new();
        while !log.contains("listening on") {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("log") > 0, "tokengate exited: {log}");
            log.push_str(&line);
        }
        let addr = log
            .split("listening on http://")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .expect("address")
            .to_owned();
        // Keep draining the log so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_real_processes_on_one_postgres_and_redis() {
    if !services() {
        return;
    }
    let schema = common::PgSchema::create(&pg_url().unwrap()).await;
    let env = vec![
        ("TOKENGATE_DATABASE_URL", schema.url()),
        ("TOKENGATE_REDIS_URL", redis_url().unwrap()),
        // A Redis prefix of this test's own: runs never share counters.
        ("TOKENGATE_REDIS_PREFIX", format!("tokengate-test:{}:", schema.name)),
        ("TOKENGATE_SECRET_KEY", "k7Qz0pL3vX9bN2mC5rT8wY1aS4dF6gH0".to_owned()),
        ("TOKENGATE_LOGIN_RATE", "4/1m".to_owned()),
        ("TOKENGATE_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ];
    let nodes: Vec<Instance> = (0..3).map(|_| Instance::start(&env)).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // An admin, made by the operator's command against the same database.
    let mut create = tokengate_with(&env);
    create
        .args([
            "user",
            "create",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--role",
            "admin",
        ])
        .args(["--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = create.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"root-password-1\n").unwrap();
    assert!(child.wait().unwrap().success());

    let http = reqwest::Client::new();
    let login = |node: &Instance, user: &'static str, password: &'static str, ip: &'static str| {
        http.post(node.url("/auth/login"))
            .header("x-forwarded-for", ip)
            .form(&[("username", user), ("password", password)])
            .send()
    };
    let pair = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_owned(),
            v["refresh_token"].as_str().unwrap().to_owned(),
        )
    };
    let status = |res: Result<reqwest::Response, reqwest::Error>| res.unwrap().status();
    let me = |node: &Instance, token: &str| http.get(node.url("/me")).bearer_auth(token).send();
    Client(http.clone()).register(a, "alzy").await;
    // A token from A works on B and C; the session is listed from any node.
    let (access, refresh) = pair(login(a, "alzy", PASSWORD, "203.0.113.1").await.unwrap()).await;
    for node in [b, c] {
        assert_eq!(status(me(node, &access).await), StatusCode::OK);
        let sessions: Vec<Value> = http
            .get(node.url("/auth/sessions"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(sessions.len(), 1);
    }
    // Rotated on A, reused on B: the session dies on every node.
    let rotated: Value = http
        .post(a.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = rotated["access_token"].as_str().unwrap().to_owned();
    for node in [a, b, c] {
        assert_eq!(status(me(node, &fresh).await), StatusCode::OK);
    }
    let reuse = http
        .post(b.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    for node in [a, b, c] {
        Client(http.clone()).refused_soon(node, &fresh).await;
    }
    // Logout on A: refused on B and C within a second.
    let (access2, _) = pair(login(b, "alzy", PASSWORD, "203.0.113.2").await.unwrap()).await;
    for node in [b, c] {
        assert_eq!(status(me(node, &access2).await), StatusCode::OK);
    }
    let out = http
        .post(a.url("/auth/logout"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    for node in [b, c] {
        Client(http.clone()).refused_soon(node, &access2).await;
    }
    // Deactivation on A (by the admin) blocks C.
    let (access3, _) = pair(login(c, "alzy", PASSWORD, "203.0.113.3").await.unwrap()).await;
    assert_eq!(status(me(c, &access3).await), StatusCode::OK);
    let (root, _) = pair(login(a, "root", "root-password-1", "203.0.113.4").await.unwrap()).await;
    let me_body: Value = me(c, &access3).await.unwrap().json().await.unwrap();
    let id = me_body["id"].as_str().unwrap().to_owned();
    let res = http
        .patch(a.url(&format!("/admin/users/{id}")))
        .bearer_auth(&root)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    Client(http.clone()).refused_soon(c, &access3).await;
    // The login limits are counted across the processes: failures for bob from five
    // networks, spread over A, B and C, are a distributed attack on every node, and his
    // shared budget is gone everywhere, C included.
    Client(http.clone()).register(b, "bob").await;
    for (node, ip) in [
        (a, "198.51.100.1"),
        (b, "198.51.100.2"),
        (c, "198.51.100.3"),
        (a, "198.51.100.4"),
        (b, "198.51.100.5"),
    ] {
        assert_eq!(
            status(login(node, "bob", "wrong-password", ip).await),
            StatusCode::UNAUTHORIZED
        );
    }
    for (node, ip) in [(c, "198.51.100.6"), (a, "198.51.100.7"), (b, "198.51.100.8")] {
        assert_eq!(
            status(login(node, "bob", PASSWORD, ip).await),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_pushed_to_the_other_instances() {
    use futures_util::StreamExt as _;
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, |_| {}).await;
    let channel = tokengate::fanout::channel(&a.settings.redis.prefix);
    let client = redis::Client::open(redis_url().unwrap()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut messages = pubsub.on_message();
    let t = a.user("alzy").await;
    assert_eq!(
        a.post_auth("/auth/logout", &t.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await;
    assert!(matches!(heard, Ok(Some(_))), "no push on {channel} after a logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_refreshing_one_token_at_once_issue_one_pair() {
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, |_| {}).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("alzy").await;
    let sends = (0..20).map(|i| {
        let srv = if i % 2 == 0 { &a } else { &b };
        srv.refresh(&t.refresh)
    });
    let answers = futures_util::future::join_all(sends).await;
    let won = answers.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(won, 1, "exactly one of 20 concurrent refreshes on two instances wins");
    assert!(
        answers
            .iter()
            .all(|r| r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED)
    );
}

/// One TOTP code sent to two instances at once: one sign-in, once (the step is
/// accepted once per account, whichever instance sees it first), and the same code on
/// a fresh sign-in is a replay; an enrolment on one instance ends the sessions the
/// other serves.
/// Behind a balancer: a passkey registered on one instance and finished on the other,
/// a sign-in begun on one and finished on the other, and one answer sent to both at
/// once signs in once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_ceremony_begun_on_one_instance_finishes_on_another() {
    if !services() {
        return;
    }
    // The origin users see (the balancer's), the same for both.
    let front = "http://localhost:4242";
    let a = TestServer::start_with(Backend::Postgres, |s| s.webauthn.origins = vec![front.into()]).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("pat").await;
    let id = a.auth().user_named("pat").await.unwrap().id;
    a.auth().vouch_for_email(id, &Default::default()).await.unwrap();
    let mut key = soft_passkey::SoftPasskey::new(front);
    let start: Value = a
        .post_auth(
            "/auth/passkeys/register/start",
            &t.access,
            Some(json!({"password": PASSWORD})),
        )
        .await
        .json()
        .await
        .unwrap();
    let credential = key.create(&start["publicKey"]).await;
    let res = b
        .post_auth(
            "/auth/passkeys/register/finish",
            &t.access,
            Some(json!({"ceremony_id": start["ceremony_id"], "credential": credential, "name": "key"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let start: Value = b
        .post_json("/auth/passkeys/login/start", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let credential = key.get(&start["publicKey"]).await;
    let finish = json!({"ceremony_id": start["ceremony_id"], "credential": credential});
    let (on_a, on_b) = tokio::join!(
        a.post_json("/auth/passkeys/login/finish", finish.clone()),
        b.post_json("/auth/passkeys/login/finish", finish)
    );
    let mut statuses = [on_a.status(), on_b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_given_one_totp_code_accept_it_once() {
    use tokengate::crypto::totp::{TotpSecret, step_at};
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, |_| {}).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("otto").await;
    let id = a.auth().user_named("otto").await.unwrap().id;
    a.auth().vouch_for_email(id, &Default::default()).await.unwrap();
    let on_b = b.login("otto", common::PASSWORD).await;
    let v: serde_json::Value = a
        .post_auth(
            "/auth/mfa/totp",
            &t.access,
            Some(serde_json::json!({"password": common::PASSWORD})),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = TotpSecret::from_bytes(
        data_encoding::BASE32_NOPAD
            .decode(v["secret"].as_str().unwrap().as_bytes())
            .unwrap(),
    );
    let code = |steps: u64| secret.code_at(step_at(tokengate::domain::UnixTime(a.clock.now_secs())) + steps);
    let res = a
        .post_auth(
            "/auth/mfa/totp/confirm",
            &t.access,
            Some(serde_json::json!({"code": code(0)})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    refused_within_a_second(&b, &on_b.access).await;
    // One sign-in's token, with the next step's code, ten times over both instances.
    let token = {
        let res = b
            .post_json(
                "/auth/login",
                serde_json::json!({"username": "otto", "password": common::PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        res.json::<serde_json::Value>().await.unwrap()["mfa_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let next = code(1);
    let sends = (0..10).map(|i| {
        let srv = if i % 2 == 0 { &a } else { &b };
        srv.post_json("/auth/login/mfa", serde_json::json!({"mfa_token": token, "code": next}))
    });
    let answers = futures_util::future::join_all(sends).await;
    let won = answers.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(
        won, 1,
        "exactly one of 10 concurrent second steps on two instances wins"
    );
    assert!(
        answers
            .iter()
            .all(|r| r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED)
    );
    // A fresh sign-in with the same code, on the other instance: a replay.
    let token = {
        let res = a
            .post_json(
                "/auth/login",
                serde_json::json!({"username": "otto", "password": common::PASSWORD}),
            )
            .await;
        res.json::<serde_json::Value>().await.unwrap()["mfa_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let res = a
        .post_json("/auth/login/mfa", serde_json::json!({"mfa_token": token, "code": next}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A TCP relay to the test Redis that can be frozen: it then forwards nothing and
/// counts what clients still send (a hung Redis, as seen from tokengate).
struct FreezableRelay {
    port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    sent_while_frozen: Arc<std::sync::atomic::AtomicUsize>,
}

impl FreezableRelay {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent_while_frozen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, n) = (frozen.clone(), sent_while_frozen.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (f, n) = (f.clone(), n.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let Ok(len) = cr.read(&mut buf).await else { return };
                        if len == 0 {
                            return;
                        }
                        if f.load(Ordering::SeqCst) {
                            n.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        if sw.write_all(&buf[..len]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
            }
        });
        Self {
            port,
            frozen,
            sent_while_frozen,
        }
    }
}

fn limiter_rates(count: u32, window_secs: u64) -> tokengate::limits::memory::Rates {
    let r = Rate { count, window_secs };
    tokengate::limits::memory::Rates {
        login: r,
        refresh: r,
        register: r,
        mail: r,
        mail_network: r,
        mfa: r,
    }
}

fn unique_prefix(what: &str) -> String {
    format!("tokengate-test:{what}:{}:", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_one_timeout_not_one_per_attempt() {
    use std::sync::atomic::Ordering;
    use tokengate::limits::redis::RedisLimiter;
    use tokengate::limits::{ClientNet, Decision, LimitKey, Limiter as _};
    let Some(url) = redis_url() else {
        let _ = writeln!(std::io::stderr(), "skipped: TOKENGATE_TEST_REDIS_URL is not set");
        return;
    };
    let upstream = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = FreezableRelay::start(upstream).await;
    let clock: Arc<dyn tokengate::clock::Clock> = Arc::new(tokengate::clock::SystemClock);
    let limiter = RedisLimiter::connect(
        &format!("redis://127.0.0.1:{}", relay.port),
        unique_prefix("hung"),
        limiter_rates(100, 60),
        1000,
        clock,
    )
    .await
    .unwrap();
    let key = LimitKey::LoginIp(ClientNet::of([203, 0, 113, 1].into()));
    assert_eq!(limiter.hit(&key).await.unwrap(), Decision::Allowed);
    assert_eq!(limiter.health(), Some("ok"));
    relay.frozen.store(true, Ordering::SeqCst);
    for _ in 0..8 {
        assert_eq!(limiter.hit(&key).await.unwrap(), Decision::Allowed);
        limiter.refund(&key).await.unwrap();
        limiter.failing_networks("hung", None).await.unwrap();
    }
    assert_eq!(limiter.health(), Some("degraded"));
    // The first call waited out its timeout; the breaker kept the rest from Redis.
    let sent = relay.sent_while_frozen.load(Ordering::SeqCst);
    assert!(sent <= 2, "{sent} calls were sent to the hung Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_skewed_clocks_agree_on_a_budget() {
    use tokengate::clock::{Clock, ManualClock};
    use tokengate::limits::redis::RedisLimiter;
    use tokengate::limits::{Decision, LimitKey, Limiter as _};
    let Some(url) = redis_url() else {
        let _ = writeln!(std::io::stderr(), "skipped: TOKENGATE_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = unique_prefix("skew");
    let on_time: Arc<dyn Clock> = Arc::new(ManualClock::new());
    let ahead = ManualClock::new();
    ahead.advance(120);
    let ahead: Arc<dyn Clock> = Arc::new(ahead);
    let rates = limiter_rates(2, 60);
    let a = RedisLimiter::connect(&url, prefix.clone(), rates, 1000, on_time)
        .await
        .unwrap();
    let b = RedisLimiter::connect(&url, prefix, rates, 1000, ahead).await.unwrap();
    let key = LimitKey::LoginUser("skewed".into());
    assert_eq!(a.hit(&key).await.unwrap(), Decision::Allowed);
    assert_eq!(a.hit(&key).await.unwrap(), Decision::Allowed);
    // An instance whose clock runs two minutes ahead sees the same spent budget.
    assert!(matches!(b.hit(&key).await.unwrap(), Decision::Limited(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_budget_comes_back_as_redis_time_passes() {
    use tokengate::limits::redis::RedisLimiter;
    use tokengate::limits::{Decision, LimitKey, Limiter as _};
    let Some(url) = redis_url() else {
        let _ = writeln!(std::io::stderr(), "skipped: TOKENGATE_TEST_REDIS_URL is not set");
        return;
    };
    let clock: Arc<dyn tokengate::clock::Clock> = Arc::new(tokengate::clock::SystemClock);
    let l = RedisLimiter::connect(&url, unique_prefix("window"), limiter_rates(2, 2), 1000, clock)
        .await
        .unwrap();
    let key = LimitKey::LoginUser("window".into());
    assert_eq!(l.hit(&key).await.unwrap(), Decision::Allowed);
    assert_eq!(l.hit(&key).await.unwrap(), Decision::Allowed);
    let Decision::Limited(retry) = l.hit(&key).await.unwrap() else {
        panic!("the third attempt in the window is allowed")
    };
    assert!(retry.0 <= std::time::Duration::from_secs(1), "{retry:?}");
    // A refund gives one attempt back at once.
    l.refund(&key).await.unwrap();
    assert_eq!(l.hit(&key).await.unwrap(), Decision::Allowed);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(l.hit(&key).await.unwrap(), Decision::Allowed);
}

/// A revocation whose log row took its sequence number before, but committed after, a
/// higher one this instance already applied (from a writer whose clock lags, say) is
/// still applied: the cache asks again from the gap, whatever the rows' times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_committed_out_of_sequence_order_is_applied() {
    use sqlx::Connection as _;
    use tokengate::clock::{Clock, SystemClock};
    use tokengate::crypto::passwords::PasswordHashString;
    use tokengate::crypto::tokens::RefreshToken;
    use tokengate::domain::{Email, SessionId, UserId, Username};
    use tokengate::store::Sessions as _;
    use tokengate::store::cache::CachedStore;
    use tokengate::store::postgres::PgStore;
    use tokengate::store::{NewSession, NewUser, Store};
    if !postgres() {
        return;
    }
    let schema = common::PgSchema::create(&pg_url().unwrap()).await;
    let pg: Arc<dyn Store> = Arc::new(
        PgStore::connect(&schema.url(), 4, std::time::Duration::from_secs(5))
            .await
            .unwrap(),
    );
    pg.migrate().await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let user = pg
        .create_user(NewUser {
            id: UserId::new(),
            username: Username::parse("late").unwrap(),
            email: Email::parse("late@example.com").unwrap(),
            password_hash: PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            roles: Vec::new(),
            created_at: now,
        })
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let id = SessionId::new();
        pg.create_session(NewSession {
            id,
            user_id: user.id,
            expected_stamp: user.security_stamp,
            now,
            expires_at: now.plus(3600),
            max_expires_at: now.plus(3600),
            user_agent: None,
            ip: None,
            device_name: None,
            refresh_hash: RefreshToken::generate().unwrap().1,
            auth: tokengate::domain::Authentication::new(now, &[tokengate::domain::AuthMethod::Pwd]),
            client: None,
            from_code: None,
        })
        .await
        .unwrap();
        sessions.push(id);
    }
    let cache = CachedStore::start(pg.clone(), clock).await;
    cache.catch_up().await.unwrap();
    let (late, early) = (sessions[0], sessions[1]);
    for id in [late, early] {
        assert!(
            cache
                .session_with_user(id)
                .await
                .unwrap()
                .unwrap()
                .0
                .revoked_at
                .is_none()
        );
    }
    let mut slow = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
    let mut fast = sqlx::PgConnection::connect(&schema.url()).await.unwrap();
    // The slow writer takes the next sequence number first, dated 20 s back...
    let mut slow_tx = slow.begin().await.unwrap();
    sqlx::query("UPDATE sessions SET revoked_at = floor(extract(epoch FROM now()))::bigint WHERE id = $1")
        .bind(late.to_string())
        .execute(&mut *slow_tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO revocations (session_id, created_at) VALUES ($1, floor(extract(epoch FROM now()))::bigint - 20)",
    )
    .bind(late.to_string())
    .execute(&mut *slow_tx)
    .await
    .unwrap();
    // ...a fast one takes the following number and commits at once; the cache applies it.
    sqlx::query("UPDATE sessions SET revoked_at = floor(extract(epoch FROM now()))::bigint WHERE id = $1")
        .bind(early.to_string())
        .execute(&mut fast)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO revocations (session_id, created_at) VALUES ($1, floor(extract(epoch FROM now()))::bigint)",
    )
    .bind(early.to_string())
    .execute(&mut fast)
    .await
    .unwrap();
    cache.catch_up().await.unwrap();
    assert!(
        cache
            .session_with_user(early)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at
            .is_some()
    );
    assert!(
        cache
            .session_with_user(late)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at
            .is_none()
    );
    // The slow one commits: the next catch-up applies it.
    slow_tx.commit().await.unwrap();
    cache.catch_up().await.unwrap();
    let (session, _) = cache.session_with_user(late).await.unwrap().unwrap();
    assert!(
        session.revoked_at.is_some(),
        "a revocation committed late was never applied"
    );
}

/// A TCP relay to PostgreSQL that can be cut (every connection through it closed, new
/// ones refused, as when the server goes down) and restored on the same port.
struct PgRelay {
    addr: std::net::SocketAddr,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PgRelay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut relay = Self {
            addr,
            target,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task: aborting it closes every relayed connection.
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                pipes.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restore(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "cannot bind {} again: {e}",
                        self.addr
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        self.serve(listener);
    }
}

/// `host:port` of a `postgres://` URL.
fn pg_address(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a postgres:// URL");
    format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    )
}

/// `url` reaching PostgreSQL through `via` (`host:port`) instead.
fn pg_via(url: &str, via: &str) -> String {
    url.replacen(&pg_address(url), via, 1)
}

/// How long a request took, and its status.
async fn timed(req: reqwest::RequestBuilder) -> (std::time::Duration, StatusCode) {
    let started = std::time::Instant::now();
    let status = req.send().await.unwrap().status();
    (started.elapsed(), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_answered_at_once_until_it_is_back() {
    if !postgres() {
        return;
    }
    let mut relay = PgRelay::start(pg_address(&pg_url().unwrap())).await;
    let through = relay.addr.to_string();
    // A pool timeout far longer than the bound below, so that only failing fast passes.
    let srv = TestServer::start_with(Backend::Postgres, |s| {
        if let tokengate::store::DatabaseUrl::Postgres(url) = &s.store.database_url {
            s.store.database_url = tokengate::store::DatabaseUrl::Postgres(pg_via(url, &through));
        }
        s.store.connect_timeout_secs = 30;
    })
    .await;
    let t = srv.user("alzy").await;
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);

    relay.cut();
    // Readiness answers within its probe's timeout even now.
    let (took, status) = timed(srv.http.get(srv.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < std::time::Duration::from_secs(5), "readyz took {took:?}");
    // Once the loss is confirmed, every request is answered 503 at once (not after
    // the 30 s pool timeout), with the reason and a Retry-After.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let res = srv.get_auth("/me", &t.access).await;
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(res.headers()["retry-after"], "1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/me still answered {}",
            res.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for req in [
        srv.http.get(srv.url("/me")).bearer_auth(&t.access),
        srv.http.get(srv.url("/readyz")),
        srv.http
            .post(srv.url("/auth/login"))
            .form(&[("username", "alzy"), ("password", PASSWORD)]),
    ] {
        let (took, status) = timed(req).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }

    // Back: the background check sees it, and the same token works again.
    relay.restore().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while srv.http.get(srv.url("/readyz")).send().await.unwrap().status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the database came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);

    // A server that cannot reach it at start names the cause, not a pool timeout.
    relay.cut();
    let out = tokengate_with(&[
        ("TOKENGATE_DATABASE_URL", pg_via(&pg_url().unwrap(), &through)),
        ("TOKENGATE_SECRET_KEY", "k7Qz0pL3vX9bN2mC5rT8wY1aS4dF6gH0".to_owned()),
    ])
    .args(["serve", "--bind", "127.0.0.1:0"])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("pool timed out"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refusing_our_configuration_stops_the_start_instead_of_degrading() {
    let Some(redis) = redis_url() else {
        let _ = writeln!(std::io::stderr(), "skipped: TOKENGATE_TEST_REDIS_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = redis.trim_end_matches('/').to_owned();
    // A database index the server does not have, and a password it does not ask for.
    let with_password = base.replacen("redis://", "redis://:not-the-password@", 1);
    for (url, says) in [
        (format!("{base}/99"), "DB index is out of range"),
        (with_password, "authentication failed"),
    ] {
        let out = tokengate_with(&[("TOKENGATE_REDIS_URL", url.clone())])
            .current_dir(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("TOKENGATE_REDIS_URL") && err.contains(says),
            "{url}: {err}"
        );
        assert!(
            !err.contains("not-the-password"),
            "the password is never printed: {err}"
        );
    }
    // A user whose ACL forbids the scripts the limiter runs (NOPERM).
    let user = format!("tg-noperm-{}", std::process::id());
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">a-test-password-only")
        .arg("~*")
        .arg("+@all")
        .arg("-@scripting")
        .query_async(&mut admin)
        .await
        .unwrap();
    let limited = base.replacen("redis://", &format!("redis://{user}:a-test-password-only@"), 1);
    let out = tokengate_with(&[("TOKENGATE_REDIS_URL", limited)])
        .current_dir(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("TOKENGATE_REDIS_URL") && err.contains("NOPERM"), "{err}");

    // Redis down is an outage, not configuration: the server starts, degraded.
    let mut down = Instance::start(&[("TOKENGATE_REDIS_URL", "redis://127.0.0.1:1".to_owned())]);
    let ready: Value = reqwest::get(down.url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["redis"], "degraded", "{ready}");
    let _ = down.child.kill();
}

/// Two instances on one PostgreSQL and Redis, and one SMTP server: every message is sent
/// once, by one of them; a reset through one ends the session the other serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_mail_once_and_a_reset_reaches_both() {
    use common::smtp::SmtpSink;
    use tokengate::mail::{MailTransportSettings, SmtpUrl};
    const USERS: usize = 20;
    if !services() {
        return;
    }
    let sink = SmtpSink::start();
    let smtp = SmtpUrl::parse(&sink.url()).unwrap();
    let a = TestServer::start_with(Backend::Postgres, |s| {
        s.mail.transport = MailTransportSettings::Smtp(smtp);
    })
    .await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    // Registrations on both: both senders see every message and race for it.
    for n in 0..USERS {
        let srv = if n % 2 == 0 { &a } else { &b };
        srv.register(&format!("many{n}")).await;
    }
    sink.wait_for(USERS, std::time::Duration::from_secs(10)).await;
    // A second copy of any of them would arrive within the second.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(sink.received().len(), USERS);
    for n in 0..USERS {
        assert_eq!(sink.count_to(&format!("many{n}@example.com")), 1, "many{n}");
    }

    // Signed in on B; the reset is asked for on A and completed on B.
    let t = b.login("many1", PASSWORD).await;
    assert_eq!(a.me_status(&t.access).await, StatusCode::OK);
    let res = a
        .post_json("/auth/password/forgot", json!({"email": "many1@example.com"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = sink.mail_to("many1@example.com", "Reset your password").await.token();
    let res = b
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "new_password": "a-reset-on-another-node"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for srv in [&a, &b] {
        refused_within_a_second(srv, &t.access).await;
    }
    assert_invalid_token(a.refresh(&t.refresh).await).await;
    // The new password works on either (`login` asserts the 200).
    a.login("many1", "a-reset-on-another-node").await;
}

/// The provider on two instances behind one origin: a code sent to both at once is
/// exchanged once (the other answer is a reuse, which ends what the first opened), and a
/// grant taken back on one instance ends the application's token on the other within a
/// second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_to_two_instances_is_exchanged_once_and_a_revoked_grant_dies_on_both() {
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, |_| {}).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let client_id = register_app(&a, "Shared", true).await.0.to_string();
    a.register("sso").await;
    let cookie = common::cookie_header(
        &a.post_json("/auth/cookie/login", json!({"username": "sso", "password": PASSWORD}))
            .await,
    );
    let verifier = "a-verifier-of-forty-three-characters-or-more-0123";
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let code = async |srv: &TestServer| {
        let url = reqwest::Url::parse_with_params(
            &srv.url("/oauth/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "https://app.example.com/cb"),
                ("scope", "openid"),
                ("code_challenge", &tokengate::crypto::pkce::s256(verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let res = no_redirect.get(url).header("cookie", &cookie).send().await.unwrap();
        let location = reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let exchange = |srv: &TestServer, code: String| {
        let req = no_redirect.post(srv.url("/oauth/token")).form(&[
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", "https://app.example.com/cb".to_owned()),
            ("code_verifier", verifier.to_owned()),
            ("client_id", client_id.clone()),
        ]);
        async move { req.send().await.unwrap() }
    };
    // Issued on b, sent to both at once.
    let c = code(&b).await;
    let (first, second) = tokio::join!(exchange(&a, c.clone()), exchange(&b, c));
    let ok = [first.status(), second.status()]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert!(ok <= 1, "one code, at most one exchange");
    for res in [first, second] {
        if res.status() == StatusCode::OK {
            // The other answer was a reuse: what this one issued is dead everywhere.
            let t: Value = res.json().await.unwrap();
            let access = t["access_token"].as_str().unwrap().to_owned();
            for srv in [&a, &b] {
                within_a_second("a reused code's tokens still work", || async {
                    srv.get_auth("/oauth/userinfo", &access).await.status() == StatusCode::UNAUTHORIZED
                })
                .await;
            }
        }
    }
    // A fresh grant, used on b, taken back on a.
    let t: Value = exchange(&b, code(&a).await).await.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(b.get_auth("/oauth/userinfo", &access).await.status(), StatusCode::OK);
    let me = a.login("sso", PASSWORD).await;
    let res = a.delete_auth(&format!("/auth/consents/{client_id}"), &me.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    within_a_second("still accepted on b a second after the grant went on a", || async {
        b.get_auth("/oauth/userinfo", &access).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_secret_stops_on_every_instance_within_a_second() {
    if !services() {
        return;
    }
    let a = TestServer::start_with(Backend::Postgres, |_| {}).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let (id, secret) = register_app(&a, "Cached", false).await;
    // Introspection authenticates the client: 200 with its secret, 401 without.
    let status = |srv: &TestServer, secret: String| {
        let req = srv
            .http
            .post(srv.url("/oauth/introspect"))
            .basic_auth(id.to_string(), Some(secret))
            .form(&[("token", "x")]);
        async move { req.send().await.unwrap().status() }
    };
    let old = secret.unwrap();
    // b reads the record (and keeps it) before the rotation.
    assert_eq!(status(&b, old.clone()).await, StatusCode::OK);
    assert_eq!(status(&b, old.clone()).await, StatusCode::OK);
    let new = a.auth().rotate_client_secret(id).await.unwrap();
    assert_eq!(
        status(&a, old.clone()).await,
        StatusCode::UNAUTHORIZED,
        "at once where it was rotated"
    );
    within_a_second(
        "the old secret still works on b a second after the rotation on a",
        || async { status(&b, old.clone()).await == StatusCode::UNAUTHORIZED },
    )
    .await;
    assert_eq!(status(&b, new.clone()).await, StatusCode::OK);
    // Removed on a: b refuses the client too.
    a.auth().delete_client(id).await.unwrap();
    within_a_second("a removed client still authenticates on b", || async {
        status(&b, new.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
}
