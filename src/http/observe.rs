//! Per-request metrics: a count and a latency per method, route template and status.
//! The route is the template (`/auth/sessions/{id}`), never the concrete path, so no
//! id reaches a label and the series stay few.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

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

/// Count and time one request (a `Router::layer` middleware, so the route is known).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
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
