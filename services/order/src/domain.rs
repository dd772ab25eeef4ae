//! The order state machine: transitions as a function of state and event, so they
//! are tested here and nowhere compared as strings.

pub use api::OrderStatus;

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

/// The order state machine: what `event` does to an order in `status`.
pub fn apply(status: OrderStatus, event: OrderEvent) -> Transition {
    use OrderEvent::*;
    use OrderStatus::*;
    match (status, event) {
        (Pending, Confirm) => Transition::To(Confirmed),
        (Pending, Cancel) => Transition::To(Cancelled),
        (Confirmed, Confirm) | (Cancelled, Cancel) => Transition::AlreadyThere,
        (Confirmed, Cancel) | (Cancelled, Confirm) => Transition::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderEvent::*, OrderStatus::*, Transition::*, apply};

    #[test]
    fn a_pending_order_can_be_confirmed_or_cancelled() {
        assert_eq!(apply(Pending, Confirm), To(Confirmed));
        assert_eq!(apply(Pending, Cancel), To(Cancelled));
    }

    #[test]
    fn repeats_are_no_ops_and_final_states_do_not_cross() {
        assert_eq!(apply(Confirmed, Confirm), AlreadyThere);
        assert_eq!(apply(Cancelled, Cancel), AlreadyThere);
        assert_eq!(apply(Confirmed, Cancel), Refused);
        assert_eq!(apply(Cancelled, Confirm), Refused);
        assert!(Confirmed.is_final() && Cancelled.is_final() && !Pending.is_final());
    }
}
