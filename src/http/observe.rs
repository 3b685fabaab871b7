//! What each request leaves behind: its span (every log line of the request carries
//! the request id; as a trace it is named after the route) and its metrics (a count
//! and a latency per method, route template and status). The route is the template
//! (`/auth/sessions/{id}`), never the concrete path, so no id reaches a label and the
//! series stay few.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram, counter, histogram};

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

/// The count and the latency of one route, method and status.
#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// Each series registered once: the recorder's own lookup (building the labels and
/// finding them again) was a tenth of a `GET /me`. Bounded by the route templates x
/// methods x statuses the server answers, never by what clients send.
type SeriesByRoute = HashMap<Box<str>, Vec<(&'static str, u16, Series)>, foldhash::fast::RandomState>;
static SERIES: LazyLock<RwLock<SeriesByRoute>> = LazyLock::new(|| {
    // A handle taken before the recorder exists would record nowhere, for good.
    let _ = crate::metrics::handle();
    RwLock::default()
});

fn series(route: &str, method: &'static str, status: u16) -> Series {
    let find = |all: &SeriesByRoute| {
        all.get(route)?
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, series)| series.clone())
    };
    if let Some(found) = find(&SERIES.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut all = SERIES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = find(&all) {
        return found;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let made = Series {
        requests: counter!(HTTP_REQUESTS, &labels),
        duration: histogram!(HTTP_DURATION, &labels),
    };
    all.entry(route.into())
        .or_default()
        .push((method, status, made.clone()));
    made
}

/// Run one request in its span, then count and time it (a `Router::layer` middleware,
/// so the route is known).
pub async fn track(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
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
    let status = res.status().as_u16();
    span.record("http.response.status_code", status);
    let series = series(route, method, status);
    series.duration.record(started.elapsed().as_secs_f64());
    series.requests.increment(1);
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
