//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered by
//! `GET /metrics`. Labels are route templates, methods, statuses, event kinds and
//! store operations: never a username, address, token or id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "tokengate_http_requests_total";
pub const HTTP_DURATION: &str = "tokengate_http_request_duration_seconds";
pub const AUTH_EVENTS: &str = "tokengate_auth_events_total";
pub const HASH_DURATION: &str = "tokengate_password_hash_duration_seconds";
pub const HASHES_IN_FLIGHT: &str = "tokengate_password_hashes_in_flight";
pub const HASHES_WAITING: &str = "tokengate_password_hashes_waiting";
pub const HASHES_REFUSED: &str = "tokengate_password_hashes_refused_total";
pub const STORE_DURATION: &str = "tokengate_store_operation_duration_seconds";
pub const STORE_ERRORS: &str = "tokengate_store_errors_total";
pub const DB_CONNECTIONS: &str = "tokengate_db_connections";
pub const DATABASE_UP: &str = "tokengate_database_up";
pub const REDIS_UP: &str = "tokengate_redis_up";
pub const SESSION_CACHE_TRUSTED: &str = "tokengate_session_cache_trusted";
pub const RATE_LIMIT_KEYS: &str = "tokengate_rate_limit_keys";
pub const BUILD_INFO: &str = "tokengate_build_info";
pub const MAIL_DELIVERIES: &str = "tokengate_mail_deliveries_total";
pub const MAIL_QUEUED: &str = "tokengate_mail_queued";
pub const MAIL_FAILED_WAITING: &str = "tokengate_mail_failed";
pub const MAIL_OLDEST_QUEUED_AGE: &str = "tokengate_mail_oldest_queued_age_seconds";

/// Buckets for request and store latencies: sub-millisecond cache hits to slow writes.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// argon2 at the recommended parameters takes tens to hundreds of milliseconds.
const HASH_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2];

/// How often buffered histogram samples are folded into buckets. The buffer holds
/// every sample since the last fold (8 bytes each, plus its blocks): under a `GET /me`
/// load a 5 s interval let ~4 MiB pile up, a sixteenth of the server's peak memory
/// (BENCHMARKS.md); folding each second keeps it near 1 MiB.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` if another recorder was
/// installed first (an embedding program's): then `/metrics` says so instead.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_DURATION.into()), &LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(HASH_DURATION.into()), &HASH_BUCKETS));
    let handle = match builder.map(PrometheusBuilder::install_recorder) {
        Ok(Ok(h)) => h,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            return None;
        }
    };
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Histogram samples wait in a buffer until upkeep folds them into buckets; without
    // it an unscraped server would grow. A plain thread: it outlives any one runtime.
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; upkeep runs at each scrape only");
    }
    Some(handle)
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method, route template and status"
    );
    describe_counter!(AUTH_EVENTS, "Auth events (the same as the event log lines), by kind");
    describe_histogram!(HASH_DURATION, Unit::Seconds, "Time of one argon2 hash or verification");
    describe_gauge!(HASHES_IN_FLIGHT, "argon2 computations running now");
    describe_gauge!(HASHES_WAITING, "argon2 computations waiting for a core");
    describe_counter!(
        HASHES_REFUSED,
        "argon2 computations refused because the queue was full (answered 503)"
    );
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Storage operation latency, by operation");
    describe_counter!(STORE_ERRORS, "Storage operations that failed, by operation");
    describe_gauge!(
        DB_CONNECTIONS,
        "Database pool connections, by pool and state (in_use, idle)"
    );
    describe_gauge!(
        RATE_LIMIT_KEYS,
        "Rate-limit keys held in this process, by kind (bounded per kind)"
    );
    describe_gauge!(
        DATABASE_UP,
        "1 while the database answers; 0 while it is unreachable (requests answered 503 at once)"
    );
    describe_gauge!(
        REDIS_UP,
        "With Redis configured: 1 while it answers, 0 while degraded (limits counted per instance)"
    );
    describe_gauge!(
        SESSION_CACHE_TRUSTED,
        "1 while the session cache follows the revocation log (checks answered from memory); 0 while every check reads the database"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which build runs");
    describe_counter!(
        MAIL_DELIVERIES,
        "Mail delivery attempts, by outcome: sent, retry (will be tried again), failed (given up on)"
    );
    describe_gauge!(MAIL_QUEUED, "Messages in the outbox waiting for delivery");
    describe_gauge!(
        MAIL_FAILED_WAITING,
        "Messages given up on, kept for `tokengate mail list --failed` / `mail retry`"
    );
    describe_gauge!(
        MAIL_OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "Age of the oldest message waiting for delivery (0 when none waits)"
    );
}

/// The standard `process_*` series (client_golang's names and meanings).
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = metrics_process::Collector::default();
        c.describe();
        c
    })
}

/// The exposition text, after sampling the process and folding pending samples in.
pub fn render() -> String {
    match handle() {
        Some(h) => {
            process().collect();
            h.run_upkeep();
            h.render()
        }
        None => "# metrics recorder unavailable (another recorder was installed first)\n".to_owned(),
    }
}
