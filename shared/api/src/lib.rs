//! txlab's wire contract as types, shared by whoever sends a body and whoever reads
//! it, so that the two cannot drift apart. Serde-level dependencies only (utoipa and
//! sqlx behind features).
//!
//! - [`catalogue`]: a SKU of the catalogue, its price and its stock.
//! - [`checkout`]: the checkout clients send (to the saga and the coordinator alike)
//!   and the priced lines it becomes.
//! - [`participants`]: the four participants, and every request the orchestrators
//!   (the saga engine, the 2PC coordinator) send them.
//! - [`tpc`]: the two-phase-commit exchange: what a participant prepares, its vote,
//!   the coordinator's decision and the participant's acknowledgement; the
//!   transactions a participant holds prepared.
//! - [`orders`]: orders, the saga that runs a checkout and its steps, sagas listed,
//!   and a saga's history.
//! - [`transactions`]: 2PC transactions as the coordinator shows them, and their history.
//! - [`reservations`]: stock held for an order.
//! - [`resilience`]: what `GET /admin/resilience` shows.
//! - [`payments`]: charges, refunds and an order's balance.
//! - [`emails`]: the outbox and each email's delivery.
//! - [`faults`]: fault injection's rules and the kinds of fault.
//! - [`idempotency`]: a service's idempotency keys, as its admin listing shows them.
//! - [`invariants`]: the brief's invariants over one checkout's views, checked
//!   without I/O (by the auditor and the console).
//! - [`headers`]: the names of the headers the contract uses.
//! - [`health`]: what the health checks answer.
//! - [`problem`]: the error-code table and the problem+json body of every error.
//!
//! Every status travels by its lowercase API name; each status enum has `ALL`,
//! `name()`, `Display` and `FromStr` by those names. Features: `openapi` derives the
//! schemas of the OpenAPI documents; `db` maps the statuses a service stores to its
//! Postgres enums and lets rows read straight into the views that are rows.

/// The API names of a contract enum (the lowercase names serde reads and writes):
/// `ALL`, `name()`, `Display` and `FromStr` by the same names, so logs, span
/// attributes and query parameters say what the bodies say.
macro_rules! api_names {
    ($what:literal, $ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &[$ty] = &[$($ty::$variant),+];

            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                $ty::ALL.iter().copied().find(|v| v.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = $ty::ALL.iter().map(|v| v.name()).collect();
                    format!("{name:?} is not {} ({})", $what, names.join(", "))
                })
            }
        }
    };
}

pub mod catalogue;
pub mod checkout;
pub mod emails;
pub mod faults;
pub mod headers;
pub mod health;
pub mod idempotency;
pub mod invariants;
pub mod orders;
pub mod participants;
pub mod payments;
pub mod problem;
pub mod reservations;
pub mod resilience;
pub mod tpc;
pub mod transactions;

pub use catalogue::{Catalogue, Product, SetStock};
pub use checkout::{CheckoutRequest, LineItemRequest, PricedLine};
pub use emails::{Email, EmailState, Emails};
pub use orders::{
    AttemptOutcome, CancelAnswer, NeverCreated, OrderLine, OrderList, OrderStatus, OrderSummary, OrderView,
    ReplicaList, ReplicaView, SagaCounts, SagaEvent, SagaEventKind, SagaHistory, SagaList, SagaStatus, SagaSummary,
    SagaView, StepStatus, StepView,
};
pub use participants::{
    CancelOrder, ChargeRequest, CreateOrder, EnqueueEmail, NoFields, Participant, RefundRequest, Request, ReserveStock,
};
pub use payments::{Charge, ChargeState, DeclineCode, Payments, Refund, RefundAnswer, RefundedInFull};
pub use problem::{ErrorCode, ProblemBody};
pub use reservations::{Reservation, ReservationLine, ReservationState, Shortage};
pub use tpc::{
    Already, ChargePrepared, Decision, EmailPrepared, FinishAnswer, FinishOutcome, HeldLock, OrderPrepared,
    PrepareAnswer, Prepared, PreparedList, PreparedTransaction, StockSold, Vote,
};
pub use transactions::{
    ParticipantOutcome, ParticipantView, ParticipantVote, TransactionCounts, TransactionEvent, TransactionEventKind,
    TransactionFilter, TransactionHistory, TransactionList, TransactionState, TransactionStatus, TransactionView,
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{fmt::Debug, str::FromStr};

    use serde::{Serialize, de::DeserializeOwned};

    use super::*;

    fn goes_by_its_api_names<T>(all: &[T])
    where
        T: Copy + PartialEq + Debug + Serialize + DeserializeOwned + std::fmt::Display + FromStr,
    {
        for value in all {
            let name = value.to_string();
            assert_eq!(serde_json::to_value(value).unwrap(), name.as_str());
            assert_eq!(serde_json::from_value::<T>(name.as_str().into()).unwrap(), *value);
            assert!(name.parse::<T>().is_ok_and(|v| v == *value), "{name}");
        }
        assert!("Pending".parse::<T>().is_err(), "names are lowercase");
    }

    #[test]
    fn every_status_goes_by_the_name_its_bodies_use() {
        goes_by_its_api_names(OrderStatus::ALL);
        goes_by_its_api_names(SagaStatus::ALL);
        goes_by_its_api_names(StepStatus::ALL);
        goes_by_its_api_names(TransactionStatus::ALL);
        goes_by_its_api_names(TransactionState::ALL);
        goes_by_its_api_names(ParticipantVote::ALL);
        goes_by_its_api_names(ParticipantOutcome::ALL);
        goes_by_its_api_names(ChargeState::ALL);
        goes_by_its_api_names(EmailState::ALL);
        goes_by_its_api_names(ReservationState::ALL);
        goes_by_its_api_names(DeclineCode::ALL);
        goes_by_its_api_names(Vote::ALL);
        assert_eq!(ParticipantOutcome::InDoubt.to_string(), "in_doubt");
    }

    #[test]
    fn a_cancel_answer_is_an_order_or_the_record_of_a_null_compensation() {
        let never: CancelAnswer = serde_json::from_value(serde_json::json!({
            "order_id": uuid::Uuid::nil(), "status": "cancelled", "null_compensation": true, "trace_id": null
        }))
        .unwrap();
        assert!(matches!(
            never,
            CancelAnswer::NeverCreated(NeverCreated {
                null_compensation: true,
                ..
            })
        ));
    }
}
