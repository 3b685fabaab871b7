//! `GET /me` answering a constant JSON body: everything an HTTP request costs on this
//! stack (accept, parse, route, respond) and nothing of tokengate's own work.

use axum::Router;
use axum::http::header;
use axum::routing::get;

const BODY: &str = r#"{"id":"3f1c0c2e-8f7e-4a1b-9d3a-2b8c1e4f5a6b","username":"benchuser","email":"bench@example.com","is_active":true,"roles":[],"created_at":"2026-11-26T00:00:00+00:00"}"#;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8102".to_owned());
    let app = Router::new()
        .route("/me", get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
