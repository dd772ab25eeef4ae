//! The payment service: charges and refunds for orders, with Stripe-like test tokens.
//!
//! - [`startup`]: builds the server and reads `PAYMENT_FUNDS_LIMIT_CENTS`.
//! - [`charges`]: charge, refund and the balance of an order: what the routes and
//!   the 2PC adapter both call.
//! - [`routes`]: HTTP handlers (parse, call, render); each mutation is a fault point
//!   and idempotent.
//! - [`cards`]: what each test token does.
//! - [`db`]: every query.
//! - [`tpc`]: its part in a two-phase-commit checkout.
//!
//! Per order, charge and refund are serialised by an advisory lock. A refund with no
//! charge is a recorded no-op (null compensation) that refuses a later charge (hanging).

pub mod cards;
pub mod charges;
pub mod db;
pub mod routes;
pub mod startup;
pub mod tpc;
