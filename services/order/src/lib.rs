//! The order service: orders and their lifecycle (and, as the public checkout API,
//! the saga orchestrator).
//!
//! - [`domain`]: the order state machine (`pending → confirmed | cancelled`).
//! - [`routes`]: HTTP handlers; each mutation is a fault point and idempotent.
//! - [`db`]: every query.
//! - [`startup`]: builds the server.

pub mod db;
pub mod domain;
pub mod routes;
pub mod startup;
