//! The two-phase-commit coordinator: the same checkout as the saga, made atomic with
//! PostgreSQL's own prepared transactions in each participant's database.
//!
//! - [`routes`]: `POST /checkout`, `GET /transactions/{id}`, `GET /transactions?state=`.
//! - [`tpc`]: the state machine, the log, and the protocol job.
//! - [`startup`]: builds the server, the supervisor and the sweeper that recovers.

pub mod routes;
pub mod startup;
pub mod tpc;
