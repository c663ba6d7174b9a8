//! Structured logs through `tracing`, and optional OpenTelemetry trace export over OTLP/HTTP.
//!
//! Every request runs inside a `request` span (see `middleware::observe`) carrying the request
//! id, method, route, organization and status; with `telemetry.otlp_endpoint` set those spans,
//! and the spans nested in them, are exported in batches by a background thread.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogSettings, TelemetrySettings};

/// Flushes and stops trace export when dropped (at the end of `main`).
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("axie-server: trace export did not flush: {e}");
        }
    }
}

/// The trace exporter could not be built from the settings.
#[derive(Debug, thiserror::Error)]
#[error("`telemetry.otlp_endpoint`: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
///
/// # Errors
/// The OTLP exporter cannot be built (for example an unusable endpoint).
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> Result<Guard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // The log level filters what is written, not what is traced: each layer has its own filter.
    let fmt = if log.format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let provider = tracer_provider(telemetry)?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("axie-server"))
            .with_tracked_inactivity(false)
            .with_filter(LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Guard { provider })
}

fn tracer_provider(t: &TelemetrySettings) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if t.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let protocol = if t.otlp_protocol == "http/json" {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!(
            "{}/v1/traces",
            t.otlp_endpoint.trim_end_matches('/')
        ))
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                t.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(t.service_name.clone())
                    .build(),
            )
            .build(),
    ))
}
