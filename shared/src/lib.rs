//! The service platform: what every txlab service is built on, so each service keeps
//! only its own domain. Above `txlab-base` (settings, telemetry, problem+json, db) and
//! `txlab-client` (the HTTP client and its resilience); below the 2PC participant
//! side (`txlab-participant`) and the services.
//!
//! - [`web`]: what every actix app wires in: root spans, `traceresponse`, the admin
//!   guard, extractor errors as problem+json, JSON bodies carrying `trace_id`.
//! - [`health`]: `/health/live` and `/health/ready`.
//! - [`fault`]: fault injection through W3C baggage and `/admin/faults` rules.
//! - [`idempotency`]: `Idempotency-Key` handling held in Postgres, one middleware for
//!   every mutating endpoint, with the stored response committed in the business
//!   transaction; and the fencing tokens it checks with the work.
//! - [`lease`]: replicas of one service on one database: who drives which job (a
//!   lease with an epoch), the heartbeat, standing down, the registry of replicas.
//! - [`supervisor`]: durable jobs as actors (one runner per job) and the sweeper that
//!   resumes unfinished ones.
//! - [`shedding`]: load shedding on checkout, and `GET /admin/resilience`.
//! - [`routing`]: how routes are wired: the middleware stack of every write, and what
//!   every app configures.
//! - [`openapi`]: the OpenAPI document (the service's operations plus the platform's)
//!   and the offline docs page.
//! - [`startup`]: the common `main` of every service and the server they all build.
//! - [`domain`]: checkout vocabulary (SKU, quantity, line items, email, token) and
//!   pricing a checkout against the catalogue.
//!
//! Dependencies run one way, bottom to top: `web` ← `health`, `fault`, `idempotency`;
//! `lease` stands on its own;
//! `supervisor` ← `shedding`; all of them ← `routing` ← `openapi` ← `startup`.
//! Test support lives in `txlab-testing` (`shared/testing`), which only
//! `[dev-dependencies]` name.

pub mod domain;
pub mod fault;
pub mod health;
pub mod idempotency;
pub mod lease;
pub mod openapi;
pub mod routing;
pub mod shedding;
pub mod startup;
pub mod supervisor;
pub mod web;
