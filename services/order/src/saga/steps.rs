//! The checkout saga, on one screen.
//!
//! | # | step                | action                             | compensation                    | timeout | attempts              |
//! |---|---------------------|------------------------------------|---------------------------------|---------|-----------------------|
//! | 0 | `create_order`      | order: `POST /orders` (pending)    | order: `POST /orders/{id}/cancel` | 2 s   | 4, then compensate    |
//! | 1 | `reserve_inventory` | inventory: `POST /reservations`    | inventory: `…/{id}/release`     | 2 s     | 4, then compensate    |
//! | 2 | `charge_payment` ◆  | payment: `POST /charges`           | payment: `POST /refunds`        | 3 s     | 4, then compensate    |
//! | 3 | `commit_inventory`  | inventory: `…/{id}/commit`         | — retried until done            | 2 s     | 6, then park          |
//! | 4 | `confirm_order`     | order: `POST /orders/{id}/confirm` | — retried until done            | 2 s     | 6, then park          |
//! | 5 | `send_email`        | email: `POST /emails`              | — retried until done            | 2 s     | 6, then park          |
//!
//! ◆ the pivot. A failure up to and including it compensates every step attempted so
//! far, newest first; after it, steps only go forward: an email outage never refunds
//! a customer. A parked saga is retried by the recovery actor.
//!
//! Every call carries the idempotency key `{saga_id}:{step}` (its compensation
//! `{saga_id}:{step}:compensation`), so a retry, or the same attempt after a crash,
//! never has a second effect. The engine that walks this table is in `engine.rs`;
//! the transitions it follows are in `state.rs`.

use std::time::Duration;

use api::Participant;
pub use base::retry::RetryPolicy;

/// A participant call, built into an HTTP request by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    CreateOrder,
    CancelOrder,
    ReserveInventory,
    ReleaseInventory,
    ChargePayment,
    RefundPayment,
    CommitInventory,
    ConfirmOrder,
    SendEmail,
}

impl Call {
    /// The service the call goes to (its name is its breaker's).
    pub fn participant(self) -> Participant {
        match self {
            Call::CreateOrder | Call::CancelOrder | Call::ConfirmOrder => Participant::Order,
            Call::ReserveInventory | Call::ReleaseInventory | Call::CommitInventory => Participant::Inventory,
            Call::ChargePayment | Call::RefundPayment => Participant::Payment,
            Call::SendEmail => Participant::Email,
        }
    }
}

#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub action: Call,
    /// `None`: after the pivot, the step is retried until it succeeds.
    pub compensation: Option<Call>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

const BEFORE_PIVOT: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    first_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
};

const AFTER_PIVOT: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    first_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(2),
};

/// Compensations must end up succeeding: many attempts, then park for an operator.
pub const COMPENSATION: RetryPolicy = RetryPolicy {
    max_attempts: 10,
    first_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(2),
};

/// A call held back — not sent by the orchestrator's own protections (open breaker,
/// full bulkhead, retry budget), or answered "an earlier call with this key is still
/// in flight" — did nothing and is not an attempt: the engine waits (for the
/// breaker's next trial, the in-flight call's lease, or a backoff) and calls again.
/// So many times in a row, the saga gives up on the call: up to the pivot it is
/// cancelled with an `overload-protection` reason (no participant refused it)...
pub const HELD_BACK_BEFORE_PIVOT: u32 = 5;
/// ...or, for a call still in flight (its lease is known; one wait is the rule),
/// after this many waits...
pub const IN_FLIGHT_WAITS: u32 = 20;
/// ...and work that must happen (compensations, steps past the pivot) is parked,
/// waiting for that participant, and resumed as soon as its breaker closes again.
pub const HELD_BACK_MUST_HAPPEN: u32 = 60;

/// How a saga cancelled or parked by the orchestrator's own protections says so, as
/// the first word of its reason: not a business refusal, and nothing a participant
/// decided.
pub const OVERLOAD_PROTECTION: &str = "overload-protection";

const fn step(
    name: &'static str,
    action: Call,
    compensation: Option<Call>,
    timeout_ms: u64,
    retry: RetryPolicy,
) -> Step {
    Step {
        name,
        action,
        compensation,
        timeout: Duration::from_millis(timeout_ms),
        retry,
    }
}

#[rustfmt::skip]
pub static STEPS: [Step; 6] = [
    step("create_order",      Call::CreateOrder,      Some(Call::CancelOrder),      2000, BEFORE_PIVOT),
    step("reserve_inventory", Call::ReserveInventory, Some(Call::ReleaseInventory), 2000, BEFORE_PIVOT),
    step("charge_payment",    Call::ChargePayment,    Some(Call::RefundPayment),    3000, BEFORE_PIVOT),
    step("commit_inventory",  Call::CommitInventory,  None,                         2000, AFTER_PIVOT),
    step("confirm_order",     Call::ConfirmOrder,     None,                         2000, AFTER_PIVOT),
    step("send_email",        Call::SendEmail,        None,                         2000, AFTER_PIVOT),
];

/// Each step's fault point on the orchestrator, between a call's answer and the write
/// of its outcome (`pause_ms`, `delay_ms`): `fault.order.step.<step>` in baggage, or a
/// rule's operation.
pub static STEP_FAULT_POINTS: [&str; 6] = [
    "order.step.create_order",
    "order.step.reserve_inventory",
    "order.step.charge_payment",
    "order.step.commit_inventory",
    "order.step.confirm_order",
    "order.step.send_email",
];

/// The pivot: `charge_payment`.
pub const PIVOT: usize = 2;

pub fn is_before_or_at_pivot(step: usize) -> bool {
    step <= PIVOT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_up_to_the_pivot_compensate_and_the_rest_only_go_forward() {
        assert_eq!(STEPS[PIVOT].name, "charge_payment");
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.compensation.is_some(), is_before_or_at_pivot(i), "{}", step.name);
            assert_eq!(STEP_FAULT_POINTS[i], format!("order.step.{}", step.name));
        }
    }
}
