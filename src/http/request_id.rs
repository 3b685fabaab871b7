//! `X-Request-Id`: every response carries one (the client's own when it is a sane
//! token, else a new UUID), and every log line written while the request is handled
//! carries it too (it is a field of the request's span).

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

pub const HEADER: &str = "x-request-id";

/// The id of the request being handled (in the request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// At most 64 characters of `[A-Za-z0-9._-]`: safe to echo and to log.
fn sane(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Ids for requests that bring none, shaped as v4 UUIDs: unique within the process
/// (a counter) and across processes (a random start), with no system call per request
/// (a fresh random UUID costs a `getrandom` call each).
struct IdSource {
    start: u64,
    mix: u64,
    counter: AtomicU64,
}

static IDS: LazyLock<IdSource> = LazyLock::new(|| {
    let mut seed = [0u8; 16];
    // Without randomness, a fixed start still gives unique ids within this process.
    let _ = getrandom::fill(&mut seed);
    let (a, b) = seed.split_at(8);
    IdSource {
        start: u64::from_le_bytes(a.try_into().unwrap_or_default()),
        mix: u64::from_le_bytes(b.try_into().unwrap_or_default()),
        counter: AtomicU64::new(0),
    }
});

/// SplitMix64's finaliser: spreads a counter's bits so ids do not look sequential.
fn spread(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn new_id() -> String {
    let ids = &*IDS;
    let n = ids.counter.fetch_add(1, Ordering::Relaxed);
    // The low half is the counter plus the start (distinct for every n); the high half
    // only makes the id look random. The v4 version and variant bits are set on top.
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&spread(ids.mix ^ n).to_be_bytes());
    bytes[8..].copy_from_slice(&ids.start.wrapping_add(n).to_be_bytes());
    crate::domain::hyphenated(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The client's id when it is sane, else a new one.
fn pick(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(new_id, str::to_owned)
}

/// The layer: pick the id, hand it to the rest of the stack, echo it back. A tower
/// layer rather than `axum::middleware::from_fn`, which clones the whole stack below
/// and boxes a future on every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssignLayer;

impl<S> Layer<S> for AssignLayer {
    type Service = Assign<S>;
    fn layer(&self, inner: S) -> Assign<S> {
        Assign { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Assign<S> {
    inner: S,
}

impl<S, Req, Res> Service<Request<Req>> for Assign<S>
where
    S: Service<Request<Req>, Response = Response<Res>>,
{
    type Response = Response<Res>;
    type Error = S::Error;
    type Future = Echo<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Req>) -> Self::Future {
        let id = pick(req.headers());
        let echo = HeaderValue::from_str(&id).ok();
        req.extensions_mut().insert(RequestId(id));
        Echo {
            inner: self.inner.call(req),
            echo,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of the stack below, with the request id added.
    pub struct Echo<F> {
        #[pin]
        inner: F,
        echo: Option<HeaderValue>,
    }
}

impl<F, Res, E> Future for Echo<F>
where
    F: Future<Output = Result<Response<Res>, E>>,
{
    type Output = Result<Response<Res>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(v) = this.echo.take() {
            res.headers_mut().insert(HEADER, v);
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(5) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert!(sane(id));
        }
    }

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(sane("abc-123_X.y"));
        assert!(sane(&"a".repeat(64)));
        assert!(!sane(&"a".repeat(65)));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("evil\\r\\nheader"));
        assert!(!sane("<script>"));
    }
}
