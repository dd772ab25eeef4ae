//! txlab's wire contract as types, shared by whoever sends a body and whoever reads
//! it, so that the two cannot drift apart. Serde-level dependencies only.
//!
//! - [`catalogue`]: a SKU of the catalogue, its price and its stock.
//! - [`checkout`]: the checkout clients send (to the saga and the coordinator alike)
//!   and the priced lines it becomes.
//! - [`participants`]: the four participants, and every request the orchestrators
//!   (the saga engine, the 2PC coordinator) send them.
//! - [`tpc`]: the two-phase-commit exchange: what a participant prepares, its vote,
//!   the coordinator's decision and the participant's acknowledgement.

pub mod catalogue;
pub mod checkout;
pub mod participants;
pub mod tpc;

pub use catalogue::Product;
pub use checkout::{CheckoutRequest, LineItemRequest, PricedLine};
pub use participants::{
    CancelOrder, ChargeRequest, CreateOrder, EnqueueEmail, NoFields, Participant, RefundRequest, Request, ReserveStock,
};
pub use tpc::{Already, Decision, FinishAnswer, FinishOutcome, PrepareAnswer, Prepared, Vote};
