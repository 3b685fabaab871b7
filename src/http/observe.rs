//! What each request leaves behind: its span (every log line of the request carries
//! the request id; as a trace it is named after the route) and its metrics (a count
//! and a latency per method, route template and status). The route is the template
//! (`/auth/sessions/{id}`), never the concrete path, so no id reaches a label and the
//! series stay few.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

use tracing::Instrument as _;

use super::request_id::RequestId;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// The label of a method: the standard ones by name, any other as `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Run one request in its span, then count and time it (a `Router::layer` middleware,
/// so the route is known).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", res.status().as_u16());
    let status = res.status().as_str().to_owned();
    let elapsed = started.elapsed().as_secs_f64();
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone(), "status" => status.clone()).record(elapsed);
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "other");
    }
}
