//! The console's own trace buffer, for a platform without Jaeger: it accepts OTLP/HTTP
//! exports (`POST /v1/traces`, protobuf; `txlab up` points the services at it when no
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is given) and keeps the most recent traces in bounded
//! memory — at most `CONSOLE_TRACE_CAPACITY` traces of at most
//! `CONSOLE_TRACE_MAX_SPANS` spans, a few attributes each; the oldest trace goes
//! first, and what is dropped is counted. The services' background work (sweeps,
//! polls, resolvers) makes many small traces: they are kept apart, in a tenth of the
//! room, so they never push a checkout's trace out. A checkout's X-ray draws its
//! trace from it.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use actix_web::{HttpResponse, web};
use base::{ErrorCode, Problem};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, any_value::Value},
};
use prost::Message as _;

use crate::Console;

/// The attributes a span keeps (the rest are dropped on arrival, to bound memory).
const KEPT: [&str; 16] = [
    "saga.step",
    "saga.attempt",
    "saga.step.outcome",
    "saga.compensation",
    "tx.participant",
    "tx.vote",
    "tx.decision",
    "tx.outcome",
    "http.request.method",
    "http.route",
    "url.full",
    "http.response.status_code",
    "idempotency.key",
    "idempotency.replayed",
    "fault.injected",
    "db.operation",
];

/// How long a kept attribute value may be.
const VALUE_LENGTH: usize = 200;

/// A span as the buffer keeps it.
#[derive(Debug, Clone)]
pub struct Span {
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub service: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub error: Option<String>,
    pub attributes: Vec<(&'static str, String)>,
}

/// What the buffer holds and has let go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub traces: usize,
    pub spans: usize,
    pub dropped_traces: u64,
    pub dropped_spans: u64,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<String, Vec<Span>>,
    /// Checkouts' trace ids, oldest first.
    checkouts: VecDeque<String>,
    /// The other traces' ids (background work), oldest first.
    others: VecDeque<String>,
    spans: usize,
    dropped_traces: u64,
    dropped_spans: u64,
}

impl Inner {
    /// Lets the oldest trace of a queue go while it holds more than `room`.
    fn make_room(&mut self, checkouts: bool, room: usize) {
        loop {
            let queue = if checkouts {
                &mut self.checkouts
            } else {
                &mut self.others
            };
            if queue.len() <= room {
                return;
            }
            let Some(oldest) = queue.pop_front() else { return };
            let gone = self.traces.remove(&oldest).map_or(0, |s| s.len());
            self.spans -= gone;
            self.dropped_traces += 1;
        }
    }
}

/// Whether a span says its trace is a checkout's.
fn is_checkout(name: &str) -> bool {
    name.contains("checkout")
}

pub struct TraceBuffer {
    capacity: usize,
    max_spans: usize,
    inner: Mutex<Inner>,
}

impl TraceBuffer {
    pub fn new(capacity: usize, max_spans: usize) -> TraceBuffer {
        TraceBuffer {
            capacity: capacity.max(1),
            max_spans: max_spans.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps the spans of an export.
    pub fn ingest(&self, export: ExportTraceServiceRequest) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(text)
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let trace_id = hex::encode(&span.trace_id);
                if !inner.traces.contains_key(&trace_id) {
                    inner.others.push_back(trace_id.clone());
                    inner.traces.insert(trace_id.clone(), Vec::new());
                }
                // A checkout's span moves its trace to the checkouts' room.
                if is_checkout(&span.name)
                    && let Some(at) = inner.others.iter().position(|t| *t == trace_id)
                {
                    inner.others.remove(at);
                    inner.checkouts.push_back(trace_id.clone());
                    inner.make_room(true, self.capacity);
                }
                inner.make_room(false, (self.capacity / 10).max(1));
                if !inner.traces.contains_key(&trace_id) {
                    // Let go at once: background work, and its room is full of newer.
                    inner.dropped_spans += 1;
                    continue;
                }
                let full = inner.traces.get(&trace_id).is_some_and(|s| s.len() >= self.max_spans);
                if full {
                    inner.dropped_spans += 1;
                    continue;
                }
                let error = span
                    .status
                    .as_ref()
                    .filter(|s| s.code == 2)
                    .map(|s| s.message.chars().take(VALUE_LENGTH).collect());
                let attributes = span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let key = KEPT.iter().find(|k| **k == kv.key)?;
                        let value = kv.value.as_ref().map(text)?;
                        Some((*key, value.chars().take(VALUE_LENGTH).collect()))
                    })
                    .collect();
                let kept = Span {
                    span_id: hex::encode(&span.span_id),
                    parent_id: (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id)),
                    name: span.name.chars().take(VALUE_LENGTH).collect(),
                    service: service.clone(),
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    error,
                    attributes,
                };
                if let Some(spans) = inner.traces.get_mut(&trace_id) {
                    spans.push(kept);
                }
                inner.spans += 1;
            }
        }
    }

    /// The spans of a trace, if it is in the buffer.
    pub fn trace(&self, trace_id: &str) -> Option<Vec<Span>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.traces.get(trace_id).cloned()
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Stats {
            traces: inner.checkouts.len() + inner.others.len(),
            spans: inner.spans,
            dropped_traces: inner.dropped_traces,
            dropped_spans: inner.dropped_spans,
        }
    }
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// `POST /v1/traces`: an OTLP/HTTP export, protobuf-encoded.
pub async fn export(console: web::Data<Console>, body: web::Bytes) -> Result<HttpResponse, Problem> {
    let request = ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| {
        Problem::new(
            ErrorCode::InvalidRequest,
            format!("not an OTLP ExportTraceServiceRequest in protobuf: {e}"),
        )
    })?;
    console.traces.ingest(request);
    let answer = ExportTraceServiceResponse { partial_success: None };
    Ok(HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(answer.encode_to_vec()))
}

/// A trace's spans in waterfall order: each after its parent, siblings by start;
/// with each one's depth.
pub fn waterfall(spans: &[Span]) -> Vec<(usize, &Span)> {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&Span>> = HashMap::new();
    for span in spans {
        // A parent outside the buffer (the client's, or dropped) makes a root.
        let parent = span.parent_id.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| (s.start_unix_nanos, s.end_unix_nanos));
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, &Span)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|s| (0, *s)).collect())
        .unwrap_or_default();
    while let Some((depth, span)) = stack.pop() {
        out.push((depth, span));
        if let Some(kids) = children.get(&Some(span.span_id.as_str())) {
            stack.extend(kids.iter().rev().map(|s| (depth + 1, *s)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        common::v1::KeyValue,
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan},
    };

    use super::*;

    fn export(trace: u8, spans: &[(u8, u8, u64)]) -> ExportTraceServiceRequest {
        named(trace, spans, "span")
    }

    fn named(trace: u8, spans: &[(u8, u8, u64)], name: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue("order-service".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: spans
                        .iter()
                        .map(|(id, parent, start)| OtlpSpan {
                            trace_id: vec![trace; 16],
                            span_id: vec![*id; 8],
                            parent_span_id: if *parent == 0 { Vec::new() } else { vec![*parent; 8] },
                            name: format!("{name} {id}"),
                            start_time_unix_nano: *start,
                            end_time_unix_nano: start + 10,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_oldest_checkout_goes_first_and_what_goes_is_counted() {
        let buffer = TraceBuffer::new(2, 3);
        buffer.ingest(named(1, &[(1, 0, 0)], "POST /checkout"));
        buffer.ingest(named(2, &[(1, 0, 0), (2, 1, 1), (3, 1, 2), (4, 1, 3)], "saga.checkout"));
        buffer.ingest(named(3, &[(1, 0, 0)], "tpc.checkout"));
        let stats = buffer.stats();
        assert_eq!((stats.traces, stats.spans), (2, 4));
        assert_eq!((stats.dropped_traces, stats.dropped_spans), (1, 1));
        assert!(buffer.trace(&hex::encode([1u8; 16])).is_none());
        let kept = buffer.trace(&hex::encode([2u8; 16])).unwrap();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].service, "order-service");
    }

    #[test]
    fn background_traces_never_push_a_checkout_out() {
        let buffer = TraceBuffer::new(10, 100);
        buffer.ingest(named(1, &[(1, 0, 0)], "saga.checkout"));
        for trace in 2..50 {
            buffer.ingest(named(trace, &[(1, 0, 0)], "email.dispatch"));
        }
        assert!(buffer.trace(&hex::encode([1u8; 16])).is_some(), "the checkout stays");
        let stats = buffer.stats();
        assert_eq!(stats.traces, 2, "one checkout, and the one newest background trace");
        assert!(buffer.trace(&hex::encode([49u8; 16])).is_some());
    }

    #[test]
    fn a_waterfall_puts_children_under_their_parents_by_start() {
        let buffer = TraceBuffer::new(4, 10);
        buffer.ingest(export(1, &[(3, 1, 5), (2, 1, 1), (1, 0, 0), (4, 2, 2), (5, 9, 7)]));
        let spans = buffer.trace(&hex::encode([1u8; 16])).unwrap();
        let order: Vec<(usize, &str)> = waterfall(&spans).iter().map(|(d, s)| (*d, s.name.as_str())).collect();
        assert_eq!(
            order,
            [
                (0, "span 1"),
                (1, "span 2"),
                (2, "span 4"),
                (1, "span 3"),
                (0, "span 5")
            ]
        );
    }
}
