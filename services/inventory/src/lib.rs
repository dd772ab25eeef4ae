//! The inventory service: the catalogue, stock, and reservations held for orders.
//!
//! - [`startup`]: builds the server.
//! - [`stock`]: reserve, release, commit and restock: what the routes and the 2PC
//!   adapter both call.
//! - [`routes`]: HTTP handlers (parse, call, render); each mutation is a fault point
//!   and idempotent.
//! - [`db`]: every query, one function each.
//! - [`tpc`]: its part in a two-phase-commit checkout.
//!
//! A reservation moves stock `available → reserved` (reserve), back (release), or
//! `reserved → sold` (commit). Release before reserve is a recorded no-op (null
//! compensation) that makes a late reserve fail (hanging action refused).

pub mod db;
pub mod routes;
pub mod startup;
pub mod stock;
pub mod tpc;
