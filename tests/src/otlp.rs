//! An OTLP trace receiver for tests, built on `opentelemetry-proto`: the real wire
//! format, over gRPC (tonic) and over HTTP (`POST /v1/traces`, protobuf). It keeps
//! every span it receives, for assertions about a trace's structure.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value as AnyValueKind},
    trace::v1::span::SpanKind,
};
use prost::Message;

/// A received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: SpanKind,
    pub attributes: HashMap<String, String>,
    pub events: Vec<String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<Span>>>);

impl Store {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .map(text)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), a.value.as_ref().map(text).unwrap_or_default()))
                            .collect(),
                        events: span.events.iter().map(|e| e.name.clone()).collect(),
                        name: span.name,
                        start_unix_nano: span.start_time_unix_nano,
                        end_unix_nano: span.end_time_unix_nano,
                    });
                }
            }
        }
        if let Ok(mut store) = self.0.lock() {
            store.extend(spans);
        }
    }
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(AnyValueKind::StringValue(s)) => s.clone(),
        Some(AnyValueKind::BoolValue(b)) => b.to_string(),
        Some(AnyValueKind::IntValue(i)) => i.to_string(),
        Some(AnyValueKind::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Listens for OTLP/gRPC and OTLP/HTTP on two ports of 127.0.0.1.
#[derive(Clone)]
pub struct OtlpReceiver {
    pub grpc_port: u16,
    pub http_port: u16,
    store: Store,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let store = Store::default();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("grpc port");
        let grpc_port = grpc.local_addr().expect("grpc addr").port();
        let service = TraceServiceServer::new(store.clone());
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(grpc);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        let http = std::net::TcpListener::bind("127.0.0.1:0").expect("http port");
        let http_port = http.local_addr().expect("http addr").port();
        let http_store = store.clone();
        let server = actix_web::HttpServer::new(move || {
            let store = http_store.clone();
            actix_web::App::new()
                .app_data(actix_web::web::PayloadConfig::new(16 * 1024 * 1024))
                .route(
                    "/v1/traces",
                    actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                        let store = store.clone();
                        async move {
                            match ExportTraceServiceRequest::decode(body) {
                                Ok(request) => {
                                    store.add(request);
                                    let response = ExportTraceServiceResponse { partial_success: None };
                                    actix_web::HttpResponse::Ok()
                                        .content_type("application/x-protobuf")
                                        .body(response.encode_to_vec())
                                }
                                Err(e) => actix_web::HttpResponse::BadRequest().body(e.to_string()),
                            }
                        }
                    }),
                )
        })
        .workers(1)
        .listen(http)
        .expect("listen")
        .run();
        actix_rt::spawn(server);
        OtlpReceiver {
            grpc_port,
            http_port,
            store,
        }
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.store.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every span of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }

    /// Waits until `check` holds for the trace's spans (batches arrive every 0.5 s).
    pub async fn wait_for(&self, trace_id: &str, what: &str, check: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.trace(trace_id);
            if check(&spans) {
                return spans;
            }
            if std::time::Instant::now() > deadline {
                let names: Vec<String> = spans.iter().map(|s| format!("{}:{}", s.service, s.name)).collect();
                panic!("trace {trace_id} never had {what}; it has {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Assertions about a trace's shape.
pub trait TraceShape {
    fn named(&self, name: &str) -> Vec<&Span>;
    fn by_id(&self, span_id: &str) -> Option<&Span>;
    fn services(&self) -> Vec<String>;
    /// Spans whose parent is not in the trace (`allowed` parents excepted).
    fn orphans(&self, allowed: &[&str]) -> Vec<&Span>;
    /// Whether `ancestor` is on the path from `span` to its root.
    fn descends_from(&self, span: &Span, ancestor: &Span) -> bool;
}

impl TraceShape for [Span] {
    fn named(&self, name: &str) -> Vec<&Span> {
        self.iter().filter(|s| s.name == name).collect()
    }

    fn by_id(&self, span_id: &str) -> Option<&Span> {
        self.iter().find(|s| s.span_id == span_id)
    }

    fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.iter().map(|s| s.service.clone()).collect();
        services.sort();
        services.dedup();
        services
    }

    fn orphans(&self, allowed: &[&str]) -> Vec<&Span> {
        self.iter()
            .filter(|s| {
                !s.parent_span_id.is_empty()
                    && !allowed.contains(&s.parent_span_id.as_str())
                    && self.by_id(&s.parent_span_id).is_none()
            })
            .collect()
    }

    fn descends_from(&self, span: &Span, ancestor: &Span) -> bool {
        let mut current = span;
        for _ in 0..64 {
            if current.parent_span_id == ancestor.span_id {
                return true;
            }
            match self.by_id(&current.parent_span_id) {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        false
    }
}
