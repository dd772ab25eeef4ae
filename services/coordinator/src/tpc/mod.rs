//! Two-phase commit, coordinator side.
//!
//! - [`state`]: the pure state machine.
//! - [`log`]: the coordinator's log (transactions, votes, the decision, acknowledgements).
//! - [`protocol`]: the job that runs a transaction, supervised one actor per transaction.

pub mod log;
pub mod protocol;
pub mod state;
