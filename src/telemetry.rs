//! Logs and traces: the `tracing` subscriber of the binary. Logs go to stderr (pretty
//! or JSON) filtered by `TOKENGATE_LOG`; with `TOKENGATE_OTLP_ENDPOINT`, spans are also
//! exported as OpenTelemetry traces over OTLP/HTTP: one per request, with children for
//! password hashing (`password.*`), storage operations (`db.*`) and token signing
//! (`token.sign`). Span fields carry methods, route templates, statuses and operation
//! names only: never a password, token, secret, username or address.

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// Keeps the trace pipeline alive; dropping it flushes the spans not yet sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: flushing traces at shutdown failed: {e}");
        }
    }
}

/// The levels a `TOKENGATE_LOG` directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
/// Where our logs (and our libraries' worth reading) come from: a directive naming a
/// target alone must name one of these (or a module below one).
const KNOWN_TARGETS: [&str; 10] = [
    "tokengate",
    "sqlx",
    "tower_http",
    "axum",
    "hyper",
    "h2",
    "redis",
    "tokio",
    "opentelemetry",
    "reqwest",
];

/// `TOKENGATE_LOG` checked: every directive is a level, `target=level`, or a known
/// target alone. A bare word like `verbose` parses as a target of that name and would
/// silence everything else, so it is refused with the fix.
pub fn check_filter(filter: &str) -> Result<EnvFilter, String> {
    let fix = "use a level (error, warn, info, debug, trace) or target=level, e.g. info,tokengate=debug";
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (Some(t), Some(l)),
            None if LEVELS.contains(&directive.to_ascii_lowercase().as_str()) => (None, Some(directive)),
            None => (Some(directive), None),
        };
        if let Some(level) = level
            && !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "TOKENGATE_LOG: {level:?} in {directive:?} is not a level; {fix}"
            ));
        }
        if let (Some(target), None) = (target, level) {
            let root = target.split(['[', ':']).next().unwrap_or_default();
            if !KNOWN_TARGETS.contains(&root) {
                return Err(format!(
                    "TOKENGATE_LOG: {directive:?} names no level or known target; {fix}"
                ));
            }
        }
    }
    EnvFilter::try_new(filter).map_err(|e| format!("TOKENGATE_LOG: {e}; {fix}"))
}

/// The pretty log's fields, without the `otel.*` ones (span names and kinds meant for
/// the trace exporter, noise in a terminal).
fn pretty_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let name = field.name();
        if name.starts_with("otel.") {
            Ok(())
        } else if name == "message" {
            write!(w, "{value:?}")
        } else {
            write!(w, "{name}={value:?}")
        }
    })
    .delimited(" ")
}

/// How log lines are written: for people, or one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Install the process's subscriber. `default_level` applies when `TOKENGATE_LOG` is
/// unset; a `TOKENGATE_LOG` that would log nothing useful is an error. A trace
/// exporter that cannot be built is reported and left out: traces are an aid, never a
/// reason not to serve.
pub fn init(format: LogFormat, default_level: &str, otlp_endpoint: Option<&str>) -> Result<Telemetry, String> {
    let chosen = std::env::var("TOKENGATE_LOG").ok().filter(|v| !v.trim().is_empty());
    let mut filter = match &chosen {
        Some(v) => check_filter(v)?,
        None => EnvFilter::new(default_level),
    };
    // The WebAuthn library logs what it refuses with the raw bytes it was sent, at
    // ERROR: a client could fill the log (auth logs each refusal itself). Off unless
    // TOKENGATE_LOG names it.
    if !chosen.is_some_and(|v| v.contains("webauthn")) {
        for quiet in ["webauthn_rs_core=off", "webauthn_rs=off"] {
            if let Ok(d) = quiet.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    let logs = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Pretty => logs.fmt_fields(pretty_fields()).boxed(),
    }
    .with_filter(filter);
    let (provider, built) = match otlp_endpoint.map(tracer_provider) {
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // Our own spans down to `debug` (the hashing, storage and signing children), and
    // nothing of the libraries' (HTTP client, database driver) internals.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tokengate"))
            .with_filter(Targets::new().with_target("tokengate", LevelFilter::DEBUG))
    });
    tracing_subscriber::registry().with(logs).with(traces).init();
    if let Some(endpoint) = otlp_endpoint {
        match built {
            None => tracing::info!(endpoint, "exporting traces over OTLP/HTTP"),
            Some(e) => {
                tracing::warn!(endpoint, error = %e, "traces are not exported: the OTLP exporter could not be built")
            }
        }
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = SpanExporter::builder().with_http().with_endpoint(endpoint).build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("tokengate")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::check_filter;

    #[test]
    fn filters_that_name_something_are_accepted() {
        for f in [
            "info",
            "WARN",
            "debug,sqlx=warn",
            "tokengate=trace",
            "tokengate::auth",
            "info,tower_http=debug",
            "off",
        ] {
            assert!(check_filter(f).is_ok(), "{f}");
        }
    }

    #[test]
    fn filters_that_would_silence_everything_are_refused() {
        for f in ["verbose", "info,loud", "tokengate=chatty", "=debug2"] {
            let e = check_filter(f).unwrap_err();
            assert!(e.starts_with("TOKENGATE_LOG: "), "{f}: {e}");
            assert!(e.contains("e.g. info,tokengate=debug"), "{f}: {e}");
        }
    }
}
