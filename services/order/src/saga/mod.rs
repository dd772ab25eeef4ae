//! The checkout saga.
//!
//! - [`steps`]: the table of steps, compensations, timeouts and retry policies.
//! - [`state`]: the pure state machine the engine follows.
//! - [`engine`]: runs a saga against the participants, logging before and after.
//! - [`log`]: the saga log in Postgres.
//! - [`actor`]: the manager actor and one runner actor per running saga.
//! - [`recovery`]: the actor that resumes unfinished sagas.

pub mod actor;
pub mod engine;
pub mod log;
pub mod recovery;
pub mod state;
pub mod steps;
