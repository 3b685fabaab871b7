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
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::config::LogFormat;

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

/// Install the process's subscriber. `default_level` applies when `TOKENGATE_LOG` is
/// unset. A trace exporter that cannot be built is reported and left out: traces are
/// an aid, never a reason not to serve.
pub fn init(format: LogFormat, default_level: &str, otlp_endpoint: Option<&str>) -> Telemetry {
    let filter = EnvFilter::try_from_env("TOKENGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Pretty => logs.boxed(),
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
    Telemetry { provider }
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
