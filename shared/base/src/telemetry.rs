//! `tracing` wired to OpenTelemetry, and JSON logs that carry `trace_id`/`span_id`.
//!
//! Spans always get W3C trace ids (so every response can name its trace), and are
//! exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The batch
//! processor has a bounded queue: a slow or absent collector drops spans (counted and
//! logged by the SDK) and never slows a request.

use std::{fmt, time::Duration};

pub use opentelemetry::KeyValue;
use opentelemetry::{
    propagation::TextMapCompositePropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber, level_filters::LevelFilter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::config::{OtelSettings, OtlpProtocol};

/// Flushes and shuts the tracer provider down. Call [`TelemetryGuard::shutdown`] at the
/// end of `main`; dropping the guard does the same from a helper thread as a fallback.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes every queued span. The provider is shut down on a blocking thread: doing
    /// it on the actix main thread deadlocks the gRPC exporter.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || shutdown_provider(&provider)).await;
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::spawn(move || shutdown_provider(&provider)).join();
        }
    }
}

fn shutdown_provider(provider: &SdkTracerProvider) {
    if let Err(e) = provider.force_flush() {
        tracing::warn!(error = %e, "flushing spans failed");
    }
    if let Err(e) = provider.shutdown() {
        tracing::warn!(error = %e, "shutting the tracer provider down failed");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("RUST_LOG: invalid filter: {0}")]
    Filter(String),
}

/// Sets the global propagator (TraceContext + Baggage) and subscriber. Must run
/// inside the actix/tokio runtime (the gRPC exporter needs a reactor).
pub fn init(settings: &OtelSettings, log_filter: &str) -> Result<TelemetryGuard, TelemetryError> {
    install_propagator();
    let provider = build_provider(settings)?;
    let tracer = provider.tracer(settings.service_name.clone());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let log_filter = EnvFilter::try_new(log_filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    // Spans are filtered apart from logs: a quiet RUST_LOG must not drop spans.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    let log_layer = tracing_subscriber::fmt::layer()
        .event_format(JsonLogFormat)
        .with_writer(std::io::stdout)
        .with_filter(log_filter);
    // A second init (tests building several apps in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(otel_layer)
        .with(log_layer)
        .try_init();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

fn build_provider(settings: &OtelSettings) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.namespace", "txlab"))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &settings.endpoint else {
        return Ok(builder.build());
    };
    let exporter = match settings.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build(),
        OtlpProtocol::HttpProtobuf => {
            let endpoint = endpoint.trim_end_matches('/');
            let endpoint = if endpoint.ends_with("/v1/traces") {
                endpoint.to_owned()
            } else {
                format!("{endpoint}/v1/traces")
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(5))
                .build()
        }
    }
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(8192)
        .with_max_export_batch_size(512)
        .with_scheduled_delay(Duration::from_millis(500))
        .build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    Ok(builder.with_span_processor(processor).build())
}

/// The trace id of the current span, as 32 hex characters.
/// Adds an event to `span` (and so to the checkout's trace).
pub fn span_event(span: &tracing::Span, name: &'static str, attributes: Vec<KeyValue>) {
    span.add_event(name, attributes);
}

pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// The current span's context as a W3C `traceparent` value (also the value of the
/// `traceresponse` header).
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// A context with fresh trace and span ids that is *not sampled*: a span under it has
/// ids, so an answer can name its trace (`trace_id`, `traceresponse`), but it is never
/// exported. For health checks, which are polled constantly.
pub fn unsampled_root() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let ids = RandomIdGenerator::default();
    let parent = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(parent)
}

/// The trace id inside a W3C `traceparent` value.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// Makes `span` continue the trace of a stored `traceparent`: work resumed from a
/// log (a saga, a 2PC transaction, an email) joins the request that began it.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = std::collections::HashMap::from([(api::headers::TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if let Err(e) = span.set_parent(context) {
        tracing::debug!(error = %e, "the span could not join the stored trace");
    }
}

/// One JSON object per line: timestamp, level, target, message, fields, the span
/// name, and the OpenTelemetry `trace_id`/`span_id` of the innermost span that has them.
pub struct JsonLogFormat;

impl<S, N> FormatEvent<S, N> for JsonLogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
        }
        // The subscriber is the global default, so asking for the current span from
        // inside the formatter is safe (no scoped dispatcher to re-enter).
        let context = tracing::Span::current().context();
        let otel_span = context.span();
        let sc = otel_span.span_context();
        if sc.is_valid() {
            line.insert("trace_id".into(), sc.trace_id().to_string().into());
            line.insert("span_id".into(), sc.span_id().to_string().into());
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// Writes a value as the API spells it (its serde name: `commit`, `yes`,
/// `confirmed`), for the `Display` of the states and outcomes that spans and logs
/// carry, so that telemetry never shows Rust's `Debug` spelling.
pub fn write_api_name<T: serde::Serialize>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => f.write_str(&name),
        _ => Err(fmt::Error),
    }
}
