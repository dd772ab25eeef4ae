//! The checkout saga.
//!
//! - [`steps`]: the table of steps, compensations, timeouts and retry policies.
//! - [`state`]: the pure state machine the engine follows.
//! - [`engine`]: runs a saga against the participants, logging before and after.
//! - [`log`]: the saga log in Postgres.
//!
//! The engine is a `shared::supervisor::Job`: a supervisor actor runs one runner actor
//! per running saga, and a sweeper actor resumes the unfinished ones from the log.

pub mod engine;
pub mod log;
pub mod state;
pub mod steps;
