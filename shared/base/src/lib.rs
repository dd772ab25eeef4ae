//! What every txlab process starts from, below the HTTP client and the service
//! platform: nothing here knows about either.
//!
//! - [`config`]: typed settings read once from the environment at start-up, the
//!   [`config::Service`] table, and which resilience patterns are on
//!   ([`config::resilience`]).
//! - [`telemetry`]: `tracing` + OpenTelemetry (OTLP over gRPC or HTTP), JSON logs with
//!   `trace_id`/`span_id`, and the guard that flushes spans on shutdown.
//! - [`problem`]: RFC 9457 problem+json errors and the error-code table, one
//!   `ResponseError` impl for all.
//! - [`db`]: connecting to Postgres, applying a service's migrations, beginning a
//!   transaction safely, and naming the SQLSTATEs the platform acts on.
//! - [`retry`]: exponential backoff with jitter.
//! - [`pgcluster`]: starting a throwaway PostgreSQL cluster (the native launcher,
//!   tests).
//!
//! Dependencies run one way: `config` ← `telemetry` ← `problem`; `db` reads `config`.

pub mod config;
pub mod db;
pub mod pgcluster;
pub mod problem;
pub mod retry;
pub mod telemetry;

pub use problem::{ErrorCode, Problem};
