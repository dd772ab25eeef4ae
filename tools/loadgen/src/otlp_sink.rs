//! A minimal OTLP/gRPC trace receiver: accepts every export, keeps nothing but
//! counts, so that services can export to a live endpoint when no collector runs
//! (what tracing costs is measured against it, `scripts/bench-db`).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

/// What the sink has received so far.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Export calls (one per batch the SDK sends).
    pub exports: Arc<AtomicU64>,
    pub spans: Arc<AtomicU64>,
}

impl Counts {
    pub fn summary(&self) -> String {
        format!(
            "otlp-sink: received {} spans in {} exports",
            self.spans.load(Ordering::Relaxed),
            self.exports.load(Ordering::Relaxed)
        )
    }
}

#[tonic::async_trait]
impl TraceService for Counts {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves OTLP/gRPC on `addr` until `shutdown` completes; returns the counts.
pub async fn serve(addr: SocketAddr, shutdown: impl Future<Output = ()>) -> anyhow::Result<Counts> {
    let counts = Counts::default();
    let service = TraceServiceServer::new(counts.clone()).max_decoding_message_size(64 * 1024 * 1024);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_shutdown(addr, shutdown)
        .await?;
    Ok(counts)
}
