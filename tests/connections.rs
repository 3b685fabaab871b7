//! Connection limits, over raw TCP: no client can hold the server's connection slots
//! (a share per client network, the longest-idle connection shed when full, a request
//! and an age cap per connection), and the metrics address has its own small cap.

#[path = "common/mod.rs"]
mod common;
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{Backend, TestServer};

async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// One `GET path` on `s`; the response's head (status line and headers, lower-cased).
async fn get(s: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    answer(s).await
}

/// The head of the next answer on `s` (its body read and dropped).
async fn answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = s.read(&mut chunk).await.expect("read");
                    assert!(n > 0, "closed mid-response");
                    buf.extend_from_slice(&chunk[..n]);
                }
                return head;
            }
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before answering");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("answered within 5 s")
}

/// Whether the server closes `s` within `within`.
async fn closes(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(tokio::time::timeout(within, s.read(&mut b)).await, Ok(Ok(0) | Err(_)))
}

fn addr(srv: &TestServer) -> String {
    srv.base.trim_start_matches("http://").to_owned()
}

/// Two connections to `srv` that each served a request and are idle now (the first
/// idle longer), and a third that is served; whether the first was closed for it.
async fn a_third_connection_closes_the_first(srv: &TestServer) -> (TcpStream, TcpStream, bool) {
    let a = addr(srv);
    let mut first = connect(&a).await;
    assert!(get(&mut first, "/healthz").await.starts_with("http/1.1 200"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = connect(&a).await;
    assert!(get(&mut second, "/healthz").await.starts_with("http/1.1 200"));
    let mut third = connect(&a).await;
    assert!(get(&mut third, "/healthz").await.starts_with("http/1.1 200"));
    let closed = closes(&mut first, Duration::from_secs(3)).await;
    (second, third, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_share_loses_its_longest_idle_connection() {
    let srv = TestServer::start_with(Backend::Sqlite, |s| s.http.connections.max_connections_per_client = 2).await;
    let (mut second, _third, closed) = a_third_connection_closes_the_first(&srv).await;
    assert!(closed, "the oldest idle connection stayed open");
    assert!(get(&mut second, "/healthz").await.starts_with("http/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_full_the_longest_idle_connection_makes_room() {
    // Both slots are held by idle keep-alive connections; a new client is still served.
    let srv = TestServer::start_with(Backend::Sqlite, |s| s.http.connections.max_connections = 2).await;
    let (_second, _third, closed) = a_third_connection_closes_the_first(&srv).await;
    assert!(closed, "the oldest idle connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_serves_a_bounded_number_of_requests() {
    let srv = TestServer::start_with(Backend::Sqlite, |s| s.http.connections.max_requests_per_connection = 3).await;
    let mut s = connect(&addr(&srv)).await;
    for _ in 0..2 {
        let head = get(&mut s, "/healthz").await;
        assert!(!head.contains("connection: close"), "{head}");
    }
    let last = get(&mut s, "/healthz").await;
    assert!(last.starts_with("http/1.1 200"), "{last}");
    assert!(last.contains("connection: close"), "{last}");
    assert!(closes(&mut s, Duration::from_secs(3)).await);
}

/// A `POST` whose body arrives `delay` after its headers; the answer's head.
async fn post_late_body(s: &mut TcpStream, path: &str, bearer: &str, body: &str, delay: Duration) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("send");
    tokio::time::sleep(delay).await;
    // The server may have answered and closed already; what it said is what counts.
    let _ = s.write_all(body.as_bytes()).await;
    answer(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_before_the_body_was_read_says_connection_close() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let body = r#"{"current_password":"not-it-at-all","new_password":"a-new-password-42"}"#;
    // A dead token: refused from the headers, before the body is read.
    let mut s = connect(&addr(&srv)).await;
    let head = post_late_body(&mut s, "/auth/password", "not.a.token", body, Duration::from_millis(10)).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("connection: close"),
        "a pooled client would reuse a dying connection: {head}"
    );
    assert!(closes(&mut s, Duration::from_secs(3)).await);

    // A request whose body was read keeps its connection for the next one.
    srv.register("alzy").await;
    let access = srv.login("alzy", common::PASSWORD).await.access;
    let mut s = connect(&addr(&srv)).await;
    let head = post_late_body(&mut s, "/auth/password", &access, body, Duration::from_millis(10)).await;
    assert!(head.starts_with("http/1.1 401"), "wrong current password: {head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(get(&mut s, "/healthz").await.starts_with("http/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lives_a_bounded_time() {
    let srv = TestServer::start_with(Backend::Sqlite, |s| s.http.connections.max_connection_age_secs = 1).await;
    let mut s = connect(&addr(&srv)).await;
    assert!(get(&mut s, "/healthz").await.starts_with("http/1.1 200"));
    // Kept busy with requests below the idle limit, it still closes once it is old.
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if closes(&mut s, Duration::from_millis(10)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection outlived its maximum age");
}

#[test]
fn idle_connections_to_the_metrics_address_cannot_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut cmd = process::tokengate(dir.path());
    cmd.env("TOKENGATE_METRICS_BIND", &metrics);
    let (mut child, _log, base) = process::start_server_with(cmd);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Forty connections that never send a byte.
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(connect(&metrics).await);
        }
        // Those over its share are closed (the oldest) or refused; then a scraper from
        // the same client still gets in, shedding its longest-idle one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut scrape = connect(&metrics).await;
        assert!(get(&mut scrape, "/metrics").await.starts_with("http/1.1 200"));
        let main = base.trim_start_matches("http://").to_owned();
        assert!(
            get(&mut connect(&main).await, "/healthz")
                .await
                .starts_with("http/1.1 200")
        );
        let mut open = 0;
        for s in &mut idle {
            if !closes(s, Duration::from_millis(200)).await {
                open += 1;
            }
        }
        // One client gets at most 8 connections there.
        assert!(open <= 8, "{open} idle connections still open on the metrics address");
    });
    assert_eq!(process::terminate(&mut child), 0);
}

/// A connection to a client that pipelines big answers and never reads them.
async fn stuck_connection(addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    let one = "GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n";
    // ~11 MB of answers: more than any socket buffers hold.
    stuck.write_all(one.repeat(300).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stuck
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stuck_writing_still_count_against_their_client() {
    let srv = TestServer::start_with(Backend::Sqlite, |s| s.http.connections.max_connections_per_client = 1).await;
    let addr: std::net::SocketAddr = addr(&srv).parse().unwrap();
    // Asked to close, a connection whose client stopped reading cannot finish its
    // answer; it still counts against its client until it is gone, so one client
    // cannot pile such connections up: at most twice its share.
    let first = stuck_connection(addr).await;
    let second = stuck_connection(addr).await;
    let mut third = connect(&addr.to_string()).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a third connection was served while two stuck ones held the client's share: {read:?}"
    );
    drop((first, second));
}
