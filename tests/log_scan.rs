//! Runs a full flow against the real binary with debug logging in JSON, then scans
//! everything it logged: no password, refresh token, access token or secret may
//! appear, and every security event must be there with its context.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");
const PASSWORD: &str = "log-scan-password-1";
const NEW_PASSWORD: &str = "log-scan-password-2";
const WRONG_PASSWORD: &str = "log-scan-wrong-pass";

async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets_and_record_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("TOKENGATE_LOG", "debug")
        .env("TOKENGATE_LOG_FORMAT", "json")
        .env("TOKENGATE_ARGON2_MEMORY_KIB", "1024")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = BufReader::new(child.stderr.take().unwrap());
    let sink = lines.clone();
    let drain = std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let found = lines.lock().unwrap().iter().find_map(|l| {
            l.split("listening on http://")
                .nth(1)
                .map(|rest| rest.split(['"', ' ']).next().unwrap_or_default().to_owned())
        });
        if let Some(addr) = found {
            break format!("http://{addr}");
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let http = reqwest::Client::builder().user_agent("log-scan/1.0").build().unwrap();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body);
    let login = |password: &'static str| post("/auth/login", json!({"username": "scan", "password": password}));
    let mut secrets: Vec<String> = vec![PASSWORD.into(), NEW_PASSWORD.into(), WRONG_PASSWORD.into()];

    let user = json_of(post(
        "/auth/register",
        json!({"username": "scan", "email": "scan@example.com", "password": PASSWORD}),
    ))
    .await;
    let user_id = field(&user, "id");
    assert_eq!(status_of(login(WRONG_PASSWORD)).await, 401);
    let first = json_of(
        http.post(format!("{base}/auth/login"))
            .header("x-request-id", "log-scan-request-1")
            .form(&[("username", "scan"), ("password", PASSWORD)]),
    )
    .await;
    let second = json_of(login(PASSWORD)).await;
    let access = field(&first, "access_token");
    assert_eq!(
        status_of(http.get(format!("{base}/me")).bearer_auth(&access)).await,
        200
    );
    let spent = json!({"refresh_token": field(&first, "refresh_token")});
    let rotated = json_of(post("/auth/refresh", spent.clone())).await;
    // Reuse of the spent token: the first session dies.
    assert_eq!(status_of(post("/auth/refresh", spent)).await, 401);
    let third = json_of(login(PASSWORD)).await;
    let a3 = field(&third, "access_token");
    let sessions = json_of(http.get(format!("{base}/auth/sessions")).bearer_auth(&a3)).await;
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap();
    let revoke = http.delete(format!("{base}/auth/sessions/{}", field(other, "id")));
    assert_eq!(status_of(revoke.bearer_auth(&a3)).await, 204);
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    assert_eq!(status_of(post("/auth/password", change).bearer_auth(&a3)).await, 204);
    assert_eq!(
        status_of(http.get(format!("{base}/auth/verify")).bearer_auth(&a3)).await,
        200
    );
    let fourth = json_of(login(NEW_PASSWORD)).await;
    let out = post(
        "/auth/logout",
        json!({"refresh_token": field(&fourth, "refresh_token")}),
    );
    assert_eq!(status_of(out.bearer_auth(&a3)).await, 204);
    let fifth = json_of(login(NEW_PASSWORD)).await;
    let all = http.post(format!("{base}/auth/logout-all"));
    assert_eq!(status_of(all.bearer_auth(field(&fifth, "access_token"))).await, 204);

    for pair in [&first, &second, &rotated, &third, &fourth, &fifth] {
        for key in ["access_token", "refresh_token"] {
            let t = field(pair, key);
            assert!(!t.is_empty());
            // The signature alone would let nobody forge, but a full token would; check both.
            if let Some(sig) = t.rsplit('.').next().filter(|_| key == "access_token") {
                secrets.push(sig.to_owned());
            }
            secrets.push(t);
        }
    }
    let secret_file = std::fs::read_to_string(dir.path().join("tokengate.secret")).unwrap();
    secrets.push(secret_file.trim().to_owned());

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());
    drain.join().unwrap();

    let lines = lines.lock().unwrap().clone();
    assert!(lines.len() > 20, "debug logging produced {} lines", lines.len());
    let text = lines.join("\n");
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a secret value ({} chars) appears in the logs",
            s.len()
        );
    }
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .filter(|v| v["target"] == "tokengate::event")
        .collect();
    let names: Vec<String> = events.iter().map(|e| field(&e["fields"], "event")).collect();
    for expected in [
        "register",
        "login.failed",
        "login.ok",
        "refresh.ok",
        "refresh.reuse_detected",
        "session.revoked",
        "password.changed",
        "logout",
        "logout.all",
    ] {
        assert!(names.iter().any(|n| n == expected), "no {expected} event in {names:?}");
    }
    for e in events.iter().filter(|e| e["fields"]["event"] != "login.failed") {
        let f = &e["fields"];
        assert_eq!(f["user_id"], user_id.as_str(), "{e}");
        assert_eq!(f["ip"], "127.0.0.1", "{e}");
        assert_eq!(f["user_agent"], "log-scan/1.0", "{e}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "refresh.reuse_detected" && e["fields"]["session_id"].is_string())
    );
    // Every line of a request carries its id: the login sent with one says so.
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "login.ok" && e["span"]["request_id"] == "log-scan-request-1"),
        "no login.ok event with the request's id"
    );
    assert!(
        events.iter().all(|e| e["span"]["request_id"].is_string()),
        "an event outside a request span"
    );
}

/// `tokengate serve` in `dir` with `env`, its log piped: the child, the rest of its log,
/// and its base URL once it listens.
// The child is handed to the caller, which waits for it (`stop_and_read`).
#[allow(clippy::zombie_processes)]
fn serve_logging(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, BufReader<std::process::ChildStderr>, String) {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("TOKENGATE_ARGON2_MEMORY_KIB", "1024")
        .envs(env.iter().copied())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert_ne!(reader.read_line(&mut line).unwrap(), 0, "server exited");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            return (child, reader, format!("http://{addr}"));
        }
    }
}

/// SIGTERM `child`; every line it logged after `reader`'s position, once it exited 0.
fn stop_and_read(mut child: std::process::Child, reader: BufReader<std::process::ChildStderr>) -> Vec<String> {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let rest: Vec<String> = reader.lines().map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    rest
}

/// `TOKENGATE_SESSION_IP` governs the logs as it governs sessions: `prefix` logs the
/// client's network, `none` no address at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_log_the_client_address_as_sessions_keep_it() {
    for (policy, expected) in [("prefix", Some("127.0.0.0/24")), ("none", None)] {
        let dir = tempfile::tempdir().unwrap();
        let env = [("TOKENGATE_LOG_FORMAT", "json"), ("TOKENGATE_SESSION_IP", policy)];
        let (child, reader, base) = serve_logging(dir.path(), &env);
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body);
        let user = json!({"username": "scan", "email": "scan@example.com", "password": PASSWORD});
        assert_eq!(status_of(post("/auth/register", user)).await, 201);
        let wrong = json!({"username": "scan", "password": WRONG_PASSWORD});
        assert_eq!(status_of(post("/auth/login", wrong)).await, 401);
        let right = json!({"username": "scan", "password": PASSWORD});
        assert_eq!(status_of(post("/auth/login", right)).await, 200);
        let rest = stop_and_read(child, reader);
        let events: Vec<Value> = rest
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "tokengate::event")
            .collect();
        assert!(events.len() >= 3, "{policy}: {events:?}");
        for e in &events {
            match expected {
                Some(net) => assert_eq!(e["fields"]["ip"], net, "{policy}: {e}"),
                None => assert!(e["fields"].get("ip").is_none(), "{policy}: {e}"),
            }
        }
        assert!(
            !rest.iter().any(|l| l.contains("\"127.0.0.1\"")),
            "{policy}: a full address was logged"
        );
    }
}

/// The pretty log (the default) carries a request's id and route on its lines, but not
/// the `otel.*` fields that only the trace exporter reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pretty_log_leaves_out_the_trace_exporters_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (child, reader, base) = serve_logging(dir.path(), &[]);
    let wrong = json!({"username": "nobody", "password": WRONG_PASSWORD});
    let res = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let rest = stop_and_read(child, reader);
    let failed = rest
        .iter()
        .find(|l| l.contains("login.failed"))
        .unwrap_or_else(|| panic!("no login.failed line in {rest:?}"));
    assert!(
        failed.contains("request_id=") && failed.contains("http.route=/auth/login"),
        "{failed}"
    );
    assert!(!rest.iter().any(|l| l.contains("otel.")), "{rest:?}");
}
