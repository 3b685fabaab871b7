//! What each request leaves behind: its span (every log line of the request carries
//! the request id; as a trace it is named after the route) and its metrics (a count
//! and a latency per method, route template and status). The route is the template
//! (`/auth/sessions/{id}`), never the concrete path, so no id reaches a label and the
//! series stay few.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response};
use metrics::{Counter, Histogram, counter, histogram};
use tower::{Layer, Service};
use tracing::instrument::{Instrument as _, Instrumented};

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

/// Runs each request in its span, then counts and times it. Added with
/// `Router::layer`, so the matched route is known; a tower layer rather than
/// `axum::middleware::from_fn`, which clones the route's service and boxes a future
/// on every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;
    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Track<S> {
    inner: S,
}

impl<S, Req, Res> Service<Request<Req>> for Track<S>
where
    S: Service<Request<Req>, Response = Response<Res>>,
{
    type Response = Response<Res>;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Req>) -> Self::Future {
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
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
        let method = method_label(req.method());
        let started = Instant::now();
        let inner = span.in_scope(|| self.inner.call(req));
        Tracked {
            inner: inner.instrument(span),
            route: matched,
            method,
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way, in its span; counted when it is ready.
    pub struct Tracked<F> {
        #[pin]
        inner: Instrumented<F>,
        route: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
    }
}

impl<F, Res, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response<Res>, E>>,
{
    type Output = Result<Response<Res>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let res = ready!(this.inner.as_mut().poll(cx))?;
        let status = res.status().as_u16();
        this.inner.span().record("http.response.status_code", status);
        let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let series = series(route, this.method, status);
        series.duration.record(this.started.elapsed().as_secs_f64());
        series.requests.increment(1);
        Poll::Ready(Ok(res))
    }
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
