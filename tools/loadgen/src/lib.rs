//! Load for txlab's checkouts and the auditor that checks what it left behind.
//!
//! - [`load`]: `POST /checkout` against the saga or the 2PC coordinator, open loop
//!   (fixed arrival rate; latency measured from each request's intended start, so
//!   a stalled system cannot hide its queueing) or closed loop (N clients).
//! - [`compare`]: saga and 2PC back to back, interleaved, as ratios and a chart.
//! - [`audit`]: the brief's consistency invariants, read through the services' APIs;
//!   every violation names its order and trace.
//! - [`idempotency`]: what idempotency keys cost on a live payment service.
//! - [`otlp_sink`]: an OTLP/gRPC receiver that only counts, for runs with tracing on.

pub mod audit;
pub mod compare;
pub mod idempotency;
pub mod load;
pub mod otlp_sink;
