//! What every txlab service shares, so each service keeps only its own domain.
//!
//! - [`config`]: typed settings read once from the environment at start-up.
//! - [`telemetry`]: `tracing` + OpenTelemetry (OTLP over gRPC or HTTP), JSON logs with
//!   `trace_id`/`span_id`, and the guard that flushes spans on shutdown.
//! - [`problem`]: RFC 9457 problem+json errors, one `ResponseError` impl for all.
//! - [`web`]: what every actix app wires in: root spans, `traceresponse`, body limits,
//!   extractor error handlers, JSON bodies carrying `trace_id`, the admin guard.
//! - [`health`]: `/health/live` and `/health/ready`.
//! - [`http_client`]: the traced HTTP client (W3C `traceparent` + `baggage`), built once.
//! - [`db`]: connecting to Postgres and applying a service's migrations.
//! - [`idempotency`]: `Idempotency-Key` handling held in Postgres, one middleware for
//!   every mutating endpoint, with the stored response committed in the business
//!   transaction.
//! - [`retry`]: exponential backoff with jitter.
//! - [`resilience`]: circuit breakers, retry budgets and bulkheads per downstream in
//!   the HTTP client, deadlines propagated across hops, load shedding on checkout,
//!   and `GET /admin/resilience`.
//! - [`fault`]: fault injection through W3C baggage and `/admin/faults` rules.
//! - [`domain`]: checkout vocabulary (SKU, quantity, line items, email, token).
//! - [`tpc`]: two-phase commit, participant side: prepare / commit / abort on
//!   PostgreSQL prepared transactions, and the actor that resolves in-doubt ones.
//! - [`startup`]: the common `main` of every service and the server they all build.
//! - [`supervisor`]: durable jobs as actors (one runner per job) and the sweeper that
//!   resumes unfinished ones.
//! - [`pgcluster`]: starting a throwaway PostgreSQL cluster (native launcher, tests).
//!
//! Test support lives in `txlab-testing` (`shared/testing`), which only
//! `[dev-dependencies]` name.

pub mod config;
pub mod db;
pub mod domain;
pub mod fault;
pub mod health;
pub mod http_client;
pub mod idempotency;
pub mod openapi;
pub mod pgcluster;
pub mod problem;
pub mod resilience;
pub mod retry;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
pub mod tpc;
pub mod web;

pub use problem::{ErrorCode, Problem};
