//! The order service: orders and their lifecycle (and, as the public checkout API,
//! the saga orchestrator).
//!
//! - [`checkout`]: `POST /checkout`, which runs the [`saga`].
//! - [`saga`]: the checkout saga: steps table, state machine, engine, actors, recovery.
//! - [`view`]: an order with its saga's steps, as the API shows it.
//! - [`domain`]: the order state machine (`pending → confirmed | cancelled`).
//! - [`orders`]: create, confirm and cancel an order: what the routes and the 2PC
//!   adapter both call.
//! - [`routes`]: HTTP handlers (parse, call, render); each mutation is a fault point
//!   and idempotent.
//! - [`db`]: every query.
//! - [`tpc`]: its part in a two-phase-commit checkout.
//! - [`startup`]: builds the server.

pub mod checkout;
pub mod db;
pub mod domain;
pub mod orders;
pub mod routes;
pub mod saga;
pub mod startup;
pub mod tpc;
pub mod view;
