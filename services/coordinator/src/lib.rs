//! The two-phase-commit coordinator: the same checkout as the saga, made atomic with
//! PostgreSQL's own prepared transactions in each participant's database.
//!
//! - [`routes`]: `POST /checkout`, `GET /transactions/{id}`, `GET /transactions?state=`:
//!   parse, call [`transactions`], render.
//! - [`transactions`]: a checkout's transaction found or logged, run until it can be
//!   answered, and shown.
//! - [`tpc`]: the state machine, the log, and the protocol job.
//! - [`startup`]: builds the server, the supervisor and the sweeper that recovers.

pub mod routes;
pub mod startup;
pub mod tpc;
pub mod transactions;
