//! Several instances on one PostgreSQL and one Redis, and Redis failing: the rules hold
//! across instances, and an instance without Redis still serves every request. Needs
//! `TOKENGATE_TEST_PG_URL` and `TOKENGATE_TEST_REDIS_URL` (`.ci/run` sets both); without
//! them each test says why it skips.

#[path = "common/mod.rs"]
mod common;

use std::io::Write as _;

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
    // The login limit is counted across instances: bob logs in on A and B, one wrong
    // guess on A, and his budget of 3 is gone on every node, C included (which has
    // counted nothing itself).
    a.register("bob").await;
    assert_eq!(
        login_from(&a, "203.0.113.1", "bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        login_from(&b, "203.0.113.2", "bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        login_from(&a, "203.0.113.3", "bob", "wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    for (srv, ip) in [(&c, "203.0.113.4"), (&a, "203.0.113.5"), (&b, "203.0.113.6")] {
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
    if pg_url().is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out test skipped: TOKENGATE_TEST_PG_URL is not set"
        );
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
    // Limits still hold, counted in this instance (the login above spent one).
    for ip in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(
            login_from(&srv, ip, "alzy", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&srv, "203.0.113.3", "alzy", PASSWORD).await.status(),
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

/// `/readyz`'s `redis` field becomes `want` within 10 s (a login makes the limiter
/// touch Redis, which is how an instance notices).
async fn redis_becomes(srv: &TestServer, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let _ = login_from(srv, "198.51.100.9", "nobody", "wrong-password").await;
        let ready: Value = srv.get_json("/readyz").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_restarted_or_flushed_never_lets_a_revoked_token_through() {
    if pg_url().is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out test skipped: TOKENGATE_TEST_PG_URL is not set"
        );
        return;
    }
    let Some(mut redis) = PrivateRedis::start() else {
        let _ = writeln!(
            std::io::stderr(),
            "scale-out fault test skipped: no redis-server to start"
        );
        return;
    };
    let url = redis.url();
    let a = TestServer::start_with(Backend::Postgres, |s| s.redis.url = Some(url)).await;
    let b = TestServer::start_settings(a.settings.clone(), a.clock.clone()).await;
    let t = a.user("alzy").await;
    let t2 = b.login("alzy", PASSWORD).await;
    for srv in [&a, &b] {
        for tok in [&t, &t2] {
            assert_eq!(srv.me_status(&tok.access).await, StatusCode::OK);
        }
    }
    redis_becomes(&a, "ok").await;

    // Redis stops: logins and /me go on; a logout on A is refused on B within 1 s.
    redis.stop();
    redis_becomes(&a, "degraded").await;
    let t3 = a.login("alzy", PASSWORD).await;
    assert_eq!(b.me_status(&t3.access).await, StatusCode::OK);
    assert_eq!(
        a.post_auth("/auth/logout", &t.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    refused_within_a_second(&b, &t.access).await;

    // Redis comes back (empty): the instances use it again; nothing revoked revives.
    assert!(redis.restart(), "redis-server restarts");
    redis_becomes(&a, "ok").await;
    for srv in [&a, &b] {
        assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
    }
    // FLUSHALL wipes every counter: revocation does not live there.
    assert_eq!(
        b.post_auth("/auth/logout", &t2.access, None).await.status(),
        StatusCode::NO_CONTENT
    );
    redis.flushall();
    for srv in [&a, &b] {
        refused_within_a_second(srv, &t2.access).await;
        assert_eq!(srv.me_status(&t3.access).await, StatusCode::OK);
    }
}

/// A real `tokengate serve` process on a free port; killed when dropped.
struct Instance {
    child: std::process::Child,
    base: String,
}

impl Instance {
    fn start(database_url: &str, redis_url: &str, redis_prefix: &str, secret: &str) -> Self {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_clear()
            .env("TOKENGATE_DATABASE_URL", database_url)
            .env("TOKENGATE_REDIS_URL", redis_url)
            .env("TOKENGATE_REDIS_PREFIX", redis_prefix)
            .env("TOKENGATE_SECRET_KEY", secret)
            .env("TOKENGATE_ARGON2_MEMORY_KIB", "1024")
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
    let secret = "k7Qz0pL3vX9bN2mC5rT8wY1aS4dF6gH0";
    // A Redis prefix of this test's own: runs never share counters.
    let prefix = format!("tokengate-test:{}:", schema.name);
    let nodes: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&schema.url(), &redis_url().unwrap(), &prefix, secret))
        .collect();
    let http = reqwest::Client::new();
    let res = http
        .post(nodes[0].url("/auth/register"))
        .json(&json!({"username": "alzy", "email": "alzy@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let tokens: Value = http
        .post(nodes[1].url("/auth/login"))
        .form(&[("username", "alzy"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let me = |node: &Instance| http.get(node.url("/me")).bearer_auth(&access).send();
    for node in &nodes {
        assert_eq!(me(node).await.unwrap().status(), StatusCode::OK);
    }
    // Logout on the third; the others refuse within a second.
    let res = http
        .post(nodes[2].url("/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    for node in &nodes[..2] {
        while me(node).await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(
                std::time::Instant::now() < deadline,
                "a logout on another process still accepted after 1 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    drop(nodes);
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
