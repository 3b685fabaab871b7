//! Hostile input: what an attacker sends on purpose. Every answer is a clear 4xx with a
//! `detail` (or the HTTP parser's own 4xx for bytes HTTP does not allow), never a 5xx,
//! and the server keeps serving.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, PASSWORD, TestServer};

/// Every string field of every body route, for the per-field checks below.
const STRING_FIELDS: &[(&str, &[&str])] = &[
    ("/auth/register", &["username", "email", "password"]),
    ("/auth/login", &["username", "password", "device_token"]),
    ("/auth/refresh", &["refresh_token"]),
    ("/auth/password", &["current_password", "new_password"]),
];

/// A body for `path` whose `field` is `value` and every other field plausible.
fn body_with(path: &str, field: &str, value: &str) -> String {
    let mut v = match path {
        "/auth/register" => json!({"username": "mallory", "email": "m@example.com", "password": "long enough pass"}),
        "/auth/login" => json!({"username": "mallory", "password": "long enough pass"}),
        "/auth/refresh" => json!({"refresh_token": "x"}),
        _ => json!({"current_password": "long enough pass", "new_password": "another long pass"}),
    };
    v[field] = Value::String("@@".into());
    // Spliced in raw, so that escapes JSON itself would refuse to produce get through.
    v.to_string().replace("\"@@\"", value)
}

async fn assert_still_serving(srv: &TestServer) {
    let res = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the server stopped serving");
}

#[per_backend]
pub async fn one_megabyte_bodies_and_chunked_bodies_are_413_and_the_connection_lives(b: Backend) {
    let srv = TestServer::start(b).await;
    let mb = 1024 * 1024;
    for ct in ["application/json", "application/x-www-form-urlencoded"] {
        // A client that waits before sending (Expect: 100-continue) gets the 413 without
        // sending a byte of the body.
        let head = format!(
            "POST /auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ct}\r\n\
             Content-Length: {mb}\r\nExpect: 100-continue\r\n\r\n"
        );
        let res = srv.raw(head.as_bytes()).await;
        assert_eq!(res.status, 413, "{ct}: {}", res.head);
        assert!(res.json()["detail"].is_string(), "{ct}");
        // One that just sends it: the answer is a 413, or the connection is closed
        // under it once the 413 is written (as nginx does); never anything else.
        let body = match ct {
            "application/json" => format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(mb)),
            _ => format!("username=a&password={}", "x".repeat(mb)),
        };
        let sent = srv
            .http
            .post(srv.url("/auth/login"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await;
        if let Ok(res) = sent {
            assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{ct}");
        }
        assert_still_serving(&srv).await;
    }
    // Chunked, no Content-Length: cut off at the limit all the same; then the same
    // connection (keep-alive) still answers a second request.
    let mut req =
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..16 {
        req.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        req.extend_from_slice(&vec![b' '; 64 * 1024]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let res = srv.raw(&req).await;
    assert_eq!(res.status, 413, "{}", res.head);
    assert_still_serving(&srv).await;
}

#[per_backend]
pub async fn deeply_nested_json_is_refused_without_a_crash(b: Backend) {
    let srv = TestServer::start(b).await;
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
        let body = format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
        let res = srv
            .http
            .post(srv.url("/auth/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.json::<Value>().await.unwrap()["detail"].is_array());
    }
    assert_still_serving(&srv).await;
}

#[per_backend]
pub async fn invalid_utf8_lone_surrogates_and_control_characters_in_every_string_field(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    // (value as raw bytes, always refused): JSON with lone surrogates, a raw NUL,
    // bytes that are not UTF-8 (never valid JSON, so always 422); escaped NUL and
    // control characters (valid JSON: a field's own rules decide).
    let values: &[(&[u8], bool)] = &[
        (br#""\ud800""#, true),
        (br#""a\udc00b""#, true),
        (b"\"ad\x00min\"", true),
        (b"\"\xff\xfe\"", true),
        (b"\"\xc3\x28\"", true),
        (br#""\u0000admin""#, false),
        (br#""\u0007\u001b[31m""#, false),
    ];
    for (path, fields) in STRING_FIELDS {
        for field in *fields {
            for (value, refused) in values {
                let body = body_with(path, field, "\u{0}");
                let mut bytes = body.into_bytes();
                let at = bytes.iter().position(|b| *b == 0).unwrap();
                bytes.splice(at..=at, value.iter().copied());
                let res = srv
                    .http
                    .post(srv.url(path))
                    .bearer_auth(&t.access)
                    .header("content-type", "application/json")
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let shown = String::from_utf8_lossy(value);
                assert!(!status.is_server_error(), "{path} {field} {shown}: {status}");
                if *refused {
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {field} {shown}");
                }
                if status.is_client_error() {
                    let v: Value = res.json().await.unwrap();
                    assert!(v.get("detail").is_some(), "{path} {field} {shown}: {v}");
                }
            }
        }
    }
    // A username with a NUL or a control character is never created.
    for name in ["ad\u{0}min", "tab\tbed", "bell\u{7}"] {
        let res = srv
            .post_json(
                "/auth/register",
                json!({"username": name, "email": "n@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
    }
    // A password may hold them (it is only ever hashed), and then must match exactly.
    let odd = "pass\u{0}word\u{7}\u{1b}[0m!";
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "odd", "email": "odd@example.com", "password": odd}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        srv.post_json("/auth/login", json!({"username": "odd", "password": odd}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        srv.post_json("/auth/login", json!({"username": "odd", "password": "pass"}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_still_serving(&srv).await;
}

#[per_backend]
pub async fn huge_and_numerous_headers_are_4xx(b: Backend) {
    let srv = TestServer::start(b).await;
    // A 100 KB Authorization header.
    let long = format!(
        "GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let res = srv.raw(long.as_bytes()).await;
    assert!(matches!(res.status, 401 | 431), "{}", res.head);
    // 200 headers.
    let mut many = String::from("GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let res = srv.raw(many.as_bytes()).await;
    assert!(matches!(res.status, 401 | 431), "{}", res.head);
    assert_still_serving(&srv).await;
}

#[per_backend]
pub async fn sql_and_like_wildcards_are_plain_text(b: Backend) {
    let srv = TestServer::start(b).await;
    srv.register("alzy").await;
    let t = srv.login("alzy", PASSWORD).await;
    for hostile in [
        "%",
        "_",
        "a%",
        "alz_",
        "' OR '1'='1",
        "alzy'--",
        "\"; DROP TABLE users; --",
        "\\",
    ] {
        // Logging in as a pattern or an injection matches no one.
        let res = srv
            .post_json("/auth/login", json!({"username": hostile, "password": PASSWORD}))
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{hostile:?}");
        let res = srv.post_json("/auth/refresh", json!({"refresh_token": hostile})).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{hostile:?}");
        // As a password it is text like any other.
        let res = srv
            .post_json("/auth/login", json!({"username": "alzy", "password": hostile}))
            .await;
        assert!(res.status().is_client_error(), "{hostile:?}");
    }
    // Register refuses the characters outright; the real user is untouched.
    for hostile in ["a%b", "a_b%", "x' OR 1=1"] {
        let res = srv
            .post_json(
                "/auth/register",
                json!({"username": hostile, "email": "e@example.com", "password": PASSWORD}),
            )
            .await;
        assert!(res.status().is_client_error(), "{hostile:?}");
    }
    let res = srv.get_auth("/me", &t.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["username"], "alzy");
}

#[per_backend]
pub async fn compressed_bodies_are_not_decompressed(b: Backend) {
    let srv = TestServer::start(b).await;
    // A gzip "bomb" header on a JSON body: we never decompress request bodies, so the
    // bytes are judged as they are (not JSON) instead of being inflated.
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 0x03, 0])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    // Nor is a response compressed for a client that asks (nothing to inflate on the
    // way back either).
    let res = srv
        .http
        .get(srv.url("/healthz"))
        .header("accept-encoding", "gzip, br, zstd")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none());
}

#[per_backend]
pub async fn five_hundred_slowloris_clients_are_cut_off_while_others_are_served(b: Backend) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    raise_open_file_limit();
    let srv = TestServer::start_with(b, |s| s.http.connections.header_timeout_secs = 2).await;
    let addr = srv.base.trim_start_matches("http://").to_owned();
    // 500 clients, each sending one header line a second and never finishing.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let addr = addr.clone();
        slow.spawn(async move {
            let started = std::time::Instant::now();
            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                return None;
            };
            if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                return Some(started.elapsed());
            }
            for i in 0..30 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                    return Some(started.elapsed());
                }
                // Closed by the server (a 408 or nothing, then EOF)?
                let mut buf = [0u8; 256];
                if let Ok(Ok(0)) = tokio::time::timeout(std::time::Duration::from_millis(1), s.read(&mut buf)).await {
                    return Some(started.elapsed());
                }
            }
            None
        });
    }
    // Meanwhile (the slow clients still connected) other clients are served.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..10 {
        let res = srv.http.get(srv.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Every slow client is cut off near the header timeout, none lasts its 30 s.
    let mut cut = Vec::new();
    while let Some(r) = slow.join_next().await {
        cut.push(r.unwrap().expect("a slow client was never cut off"));
    }
    let longest = cut.iter().max().unwrap();
    // (A generous bound: the header timeout is 2 s, the clients would go on for 30.)
    assert!(
        *longest < std::time::Duration::from_secs(15),
        "longest slow client lasted {longest:?}"
    );
}

/// Both ends of 500 connections live in this process (and the two backends' tests run
/// at once): lift the soft limit on open files to the hard one.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
