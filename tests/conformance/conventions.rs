//! The contract's Conventions: JSON errors everywhere, limits, never a 5xx.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, TestServer};

#[per_backend]
pub async fn unknown_route_is_json_404(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv.http.get(srv.url("/no/such/route")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.text().await.unwrap(), concat!(r#"{"detail":"Not Found"}"#, "\n"));
}

#[per_backend]
pub async fn wrong_method_is_json_405(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv.http.get(srv.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(
        res.text().await.unwrap(),
        concat!(r#"{"detail":"Method Not Allowed"}"#, "\n")
    );
    let res = srv.http.delete(srv.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[per_backend]
pub async fn oversized_body_is_413(b: Backend) {
    let srv = TestServer::start(b).await;
    let big = "x".repeat(65 * 1024);
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "alzy", "email": "a@example.com", "password": big}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = res.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("64 KiB"));
    let res = srv
        .http
        .post(srv.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=a&password={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is judged on its content instead.
    let fits = "x".repeat(60 * 1024);
    let res = srv
        .post_json(
            "/auth/register",
            json!({"username": "alzy", "email": "a@example.com", "password": fits}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[per_backend]
pub async fn malformed_json_is_422(b: Backend) {
    let srv = TestServer::start(b).await;
    for body in ["{", "[]", "\"str\"", "{\"username\": }", "null"] {
        let res = srv
            .http
            .post(srv.url("/auth/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["detail"][0]["loc"][0], "body", "{body}");
    }
}

#[per_backend]
pub async fn wrong_content_type_is_415(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv
        .http
        .post(srv.url("/auth/register"))
        .header("content-type", "text/plain")
        .body("username=alzy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = res.json().await.unwrap();
    assert!(v["detail"].is_string());
    // Register is JSON only; a form is refused clearly.
    let res = srv
        .http
        .post(srv.url("/auth/register"))
        .form(&[("username", "alzy")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[per_backend]
pub async fn health_and_readiness(b: Backend) {
    let srv = TestServer::start(b).await;
    let res = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    let res = srv.http.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["database"], "ok");
}

#[per_backend]
pub async fn no_client_input_causes_a_5xx(b: Backend) {
    let srv = TestServer::start(b).await;
    let t = srv.user("alzy").await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"username\":\"\\u0000\",\"email\":\"\\ud800@x.com\",\"password\":\"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}".to_vec()),
        ("application/json", vec![0xff, 0xfe, 0x00]),
        ("application/json", b"{\"refresh_token\": {\"$ne\": null}}".to_vec()),
        ("application/json", b"{\"username\": [\"a\"], \"password\": {\"a\": 1}}".to_vec()),
        ("application/json", "{\"a\":".repeat(5000).into_bytes()),
        ("application/x-www-form-urlencoded", b"username=%ff%fe&password=%00".to_vec()),
        ("application/x-www-form-urlencoded", b"=&&=&username".to_vec()),
        ("application/json; charset=latin1", b"{}".to_vec()),
        ("multipart/form-data; boundary=x", b"--x--".to_vec()),
        ("", Vec::new()),
    ];
    let paths = [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/password",
        "/auth/logout-all",
    ];
    for path in paths {
        for (ct, body) in &bodies {
            for auth in [None, Some(t.access.as_str())] {
                let mut req = srv.http.request(Method::POST, srv.url(path)).body(body.clone());
                if !ct.is_empty() {
                    req = req.header("content-type", *ct);
                }
                if let Some(a) = auth {
                    req = req.bearer_auth(a);
                }
                let res = req.send().await.unwrap();
                let status = res.status();
                assert!(status.as_u16() < 500, "{path} {ct} -> {status}");
                // Every refusal is JSON with a `detail`; a success may have no body.
                if status.is_client_error() {
                    let v: Value = res
                        .json()
                        .await
                        .unwrap_or_else(|e| panic!("{path} {ct} -> {status}: {e}"));
                    assert!(v.get("detail").is_some(), "{path} {ct} -> {status}: {v}");
                }
            }
        }
    }
    // Sent as raw bytes: a client library refuses some of these header values (DEL).
    for header in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer \x7f",
        b"Bearer a\x7fb",
        b"bearer a b c",
        b"Basic Og==",
    ] {
        let mut req = b"GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: ".to_vec();
        req.extend_from_slice(header);
        req.extend_from_slice(b"\r\n\r\n");
        let res = srv.raw(&req).await;
        let shown = String::from_utf8_lossy(header);
        if header.contains(&0x7f) {
            // Not a legal header byte: the HTTP parser refuses the request itself.
            assert_eq!(res.status, 400, "{shown:?}: {}", res.head);
        } else {
            assert_eq!(res.status, 401, "{shown:?}: {}", res.head);
            assert!(res.json().get("detail").is_some(), "{shown:?}");
        }
    }
}

/// Does the server close `stream` within `within`? (A read that ends, not one that waits.)
fn closed_within(stream: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read as _;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response (408, say), then the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // timed out: still open
        }
    }
}

#[per_backend]
pub async fn slow_and_idle_clients_cannot_hold_connections(b: Backend) {
    use std::io::Write as _;
    let srv = TestServer::start_with(b, |s| {
        s.http.connections.header_timeout_secs = 1;
        s.http.connections.max_connections = 4;
    })
    .await;
    let addr = srv.base.trim_start_matches("http://").to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let t = std::time::Duration::from_secs(6);
        // Slowloris: headers that never end, on every connection we allow.
        let mut slow: Vec<_> = (0..4)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
                    .unwrap();
                s
            })
            .collect();
        // An idle keep-alive connection after one full request.
        let mut idle = std::net::TcpStream::connect(&addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let all_slow_closed = slow.iter_mut().all(|s| closed_within(s, t));
        let idle_closed = closed_within(&mut idle, t);
        (all_slow_closed, idle_closed)
    })
    .await
    .unwrap();
    assert_eq!(outcome, (true, true), "(slow, idle) connections closed by the server");
    // The server serves again.
    let res = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[per_backend]
pub async fn a_slow_body_gets_408(b: Backend) {
    use std::io::{Read as _, Write as _};
    let srv = TestServer::start_with(b, |s| s.http.connections.request_timeout_secs = 1).await;
    let addr = srv.base.trim_start_matches("http://").to_owned();
    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
        )
        .unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(6))).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

#[per_backend]
pub async fn every_response_carries_a_request_id(b: Backend) {
    let srv = TestServer::start(b).await;
    let id_of = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // None sent: a new UUID, on every kind of answer.
    for path in ["/healthz", "/no-such-route", "/me"] {
        let res = srv.http.get(srv.url(path)).send().await.unwrap();
        let id = id_of(&res);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id:?}");
    }
    // A sane one is kept; anything else is replaced.
    let res = srv
        .http
        .get(srv.url("/healthz"))
        .header("x-request-id", "abc-123_X.y")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&res), "abc-123_X.y");
    for bad in ["a".repeat(65), "has space".to_owned(), "<script>".to_owned()] {
        let res = srv
            .http
            .get(srv.url("/healthz"))
            .header("x-request-id", &bad)
            .send()
            .await
            .unwrap();
        let id = id_of(&res);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} -> {id:?}");
    }
}

/// Contract v1.2: `/metrics` on the main address answers only to its bearer token, and
/// is not there at all (404) when no token is configured.
#[per_backend]
pub async fn metrics_answer_only_to_their_token(b: Backend) {
    const TOKEN: &str = "metrics-token-0123456789abcdef0123456789";
    let scrape = |srv: &TestServer, token: Option<&str>| {
        let req = srv.http.get(srv.url("/metrics"));
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send()
    };
    let srv = TestServer::start(b).await;
    for token in [None, Some(TOKEN)] {
        assert_eq!(scrape(&srv, token).await.unwrap().status(), StatusCode::NOT_FOUND);
    }
    let srv = TestServer::start_with(b, |s| {
        s.http.metrics_token = Some(tokengate::domain::Secret::new(TOKEN.as_bytes().to_vec()));
    })
    .await;
    let res = scrape(&srv, None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    for wrong in [&TOKEN[..TOKEN.len() - 1], "metrics-token-0123456789abcdef0123456780"] {
        assert_eq!(
            scrape(&srv, Some(wrong)).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let res = scrape(&srv, Some(TOKEN)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("tokengate_build_info"));
}
