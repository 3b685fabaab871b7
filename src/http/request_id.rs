//! `X-Request-Id`: every response carries one (the client's own when it is a sane
//! token, else a new UUID), and every log line written while the request is handled
//! carries it too (it is a field of the request's span).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

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
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

/// The middleware: pick the id, hand it to the rest of the stack, echo it back.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(new_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    res
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
