//! The order state machine: transitions as a function of state and event, so they
//! are tested here and nowhere compared as strings.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "order_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        base::telemetry::write_api_name(self, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Confirm,
    Cancel,
}

/// What applying an event to an order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to the new status.
    To(OrderStatus),
    /// Already there: a repeat, nothing to do.
    AlreadyThere,
    /// Not allowed from this status.
    Refused,
}

impl OrderStatus {
    pub fn apply(self, event: OrderEvent) -> Transition {
        use OrderEvent::*;
        use OrderStatus::*;
        match (self, event) {
            (Pending, Confirm) => Transition::To(Confirmed),
            (Pending, Cancel) => Transition::To(Cancelled),
            (Confirmed, Confirm) | (Cancelled, Cancel) => Transition::AlreadyThere,
            (Confirmed, Cancel) | (Cancelled, Confirm) => Transition::Refused,
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, OrderStatus::Pending)
    }

    pub fn parse(raw: &str) -> Option<OrderStatus> {
        match raw {
            "pending" => Some(OrderStatus::Pending),
            "confirmed" => Some(OrderStatus::Confirmed),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderEvent::*, OrderStatus::*, Transition::*};

    #[test]
    fn a_pending_order_can_be_confirmed_or_cancelled() {
        assert_eq!(Pending.apply(Confirm), To(Confirmed));
        assert_eq!(Pending.apply(Cancel), To(Cancelled));
    }

    #[test]
    fn repeats_are_no_ops_and_final_states_do_not_cross() {
        assert_eq!(Confirmed.apply(Confirm), AlreadyThere);
        assert_eq!(Cancelled.apply(Cancel), AlreadyThere);
        assert_eq!(Confirmed.apply(Cancel), Refused);
        assert_eq!(Cancelled.apply(Confirm), Refused);
        assert!(Confirmed.is_final() && Cancelled.is_final() && !Pending.is_final());
    }
}
