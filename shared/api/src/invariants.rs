//! The brief's invariants over one checkout, checked on the contract's views — what
//! the order, the payments, the reservation and the emails say — with no I/O: the
//! auditor (`loadgen audit`) checks every order with them, the console each X-ray.
//!
//! - a confirmed order has exactly one successful charge for its total, a committed
//!   reservation and exactly one confirmation email, delivered;
//! - a cancelled order has net charge 0, no held stock and no email;
//! - no order is charged twice; refunds never exceed charges;
//! - an order still pending has a saga that is visibly parked (checked once the
//!   checkout should have settled).

use serde::Serialize;

use crate::{Email, EmailState, OrderStatus, OrderView, Payments, Product, Reservation, ReservationState, SagaStatus};

/// One broken invariant, with the checkout it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub order_id: Option<String>,
    pub trace_id: Option<String>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VIOLATION {}: order {} (trace {}): {}",
            self.invariant,
            self.order_id.as_deref().unwrap_or("-"),
            self.trace_id.as_deref().unwrap_or("-"),
            self.detail
        )
    }
}

/// What the services say about one checkout.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutFacts<'a> {
    pub order: &'a OrderView,
    pub payments: &'a Payments,
    pub reservation: Option<&'a Reservation>,
    pub emails: &'a [Email],
}

/// Whether the order's saga is parked: visibly waiting (for the recovery actor, or an
/// operator).
pub fn is_parked(order: &OrderView) -> bool {
    order.saga.as_ref().is_some_and(|s| s.status == SagaStatus::Parked)
}

/// Every invariant the checkout breaks.
pub fn check_checkout(facts: CheckoutFacts<'_>) -> Vec<Violation> {
    let CheckoutFacts {
        order,
        payments,
        reservation,
        emails,
    } = facts;
    let mut violations = Vec::new();
    let mut violation = |invariant: &'static str, detail: String| {
        violations.push(Violation {
            invariant,
            order_id: Some(order.order_id.to_string()),
            trace_id: order.trace_id.clone(),
            detail,
        })
    };
    let succeeded = payments.succeeded().count();
    let (charged, refunded, net) = (payments.charged_cents, payments.refunded_cents, payments.net_cents);
    if succeeded > 1 {
        violation("charged-once", format!("{succeeded} successful charges"));
    }
    if refunded > charged {
        violation("refunds-within-charges", format!("refunded {refunded} of {charged}"));
    }
    let reservation_state = reservation.map(|r| r.state);
    match order.status {
        OrderStatus::Confirmed => {
            if succeeded != 1 || net != order.total_cents {
                violation(
                    "confirmed-charged",
                    format!("{succeeded} charges, net {net}, total {}", order.total_cents),
                );
            }
            if reservation_state != Some(ReservationState::Committed) {
                violation(
                    "confirmed-stock-committed",
                    format!("reservation is {}", shown(reservation_state)),
                );
            }
            if emails.len() != 1 || emails[0].state != EmailState::Delivered {
                let states: Vec<String> = emails.iter().map(|m| m.state.to_string()).collect();
                violation("confirmed-one-email", format!("emails: {states:?}"));
            }
        }
        OrderStatus::Cancelled => {
            if net != 0 {
                violation("cancelled-net-zero", format!("net charge {net}"));
            }
            if matches!(
                reservation_state,
                Some(ReservationState::Held | ReservationState::Committed)
            ) {
                violation(
                    "cancelled-no-stock",
                    format!("reservation is {}", shown(reservation_state)),
                );
            }
            if !emails.is_empty() {
                violation("cancelled-no-email", format!("{} emails", emails.len()));
            }
        }
        OrderStatus::Pending => {
            if !is_parked(order) {
                let saga = order.saga.as_ref().map(|s| s.status);
                violation("finished-or-parked", format!("order is pending, saga {}", shown(saga)));
            }
        }
    }
    violations
}

/// The stock invariants of one SKU: `stocked = available + reserved + sold`, nothing
/// negative, and no more stock reserved than pending orders account for.
pub fn check_stock(item: &Product, held_by_pending: i64) -> Vec<Violation> {
    let Product {
        sku,
        available,
        reserved,
        sold,
        stocked,
        ..
    } = item;
    let mut violations = Vec::new();
    let mut bad = |detail: String| {
        violations.push(Violation {
            invariant: "stock-conserved",
            order_id: None,
            trace_id: None,
            detail: format!("{sku}: {detail}"),
        })
    };
    if *available < 0 || *reserved < 0 || *sold < 0 {
        bad(format!("negative counter: {item:?}"));
    }
    if *stocked != available + reserved + sold {
        bad(format!("stocked {stocked} != available + reserved + sold: {item:?}"));
    }
    if i64::from(*reserved) > held_by_pending {
        bad(format!(
            "{reserved} reserved but pending orders account for {held_by_pending}"
        ));
    }
    violations
}

/// A status that may be absent, by its API name.
fn shown<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}
