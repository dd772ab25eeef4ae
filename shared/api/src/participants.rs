//! The participants of a checkout and every request the orchestrators send them:
//! the saga engine for its steps and compensations, the coordinator for its prepares.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checkout::{LineItemRequest, PricedLine};

/// A service that takes part in a checkout, under the name the API uses for it
/// (in transaction views, global transaction ids and span attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Participant {
    Order,
    Inventory,
    Payment,
    Email,
}

impl Participant {
    /// In the order a 2PC transaction lists them.
    pub const ALL: [Participant; 4] = [
        Participant::Order,
        Participant::Inventory,
        Participant::Payment,
        Participant::Email,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Participant::Order => "order",
            Participant::Inventory => "inventory",
            Participant::Payment => "payment",
            Participant::Email => "email",
        }
    }
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Participant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Participant::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("{name:?} is not a participant (order, inventory, payment, email)"))
    }
}

/// `POST /orders` (the saga's first step) and the order's 2PC prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateOrder {
    /// Chosen by the caller (the saga, the coordinator); a new one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, example = "ada@example.com"))]
    pub customer_email: String,
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^tok_[A-Za-z0-9_]{1,60}$", example = "tok_visa")
    )]
    pub payment_token: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 50))]
    pub items: Vec<PricedLine>,
}

/// `POST /orders/{id}/cancel`; the body is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelOrder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /reservations` and the inventory's 2PC prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReserveStock {
    pub order_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 50))]
    pub items: Vec<LineItemRequest>,
}

/// `POST /charges` and the payment's 2PC prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChargeRequest {
    pub order_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub amount_cents: i64,
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^tok_[A-Za-z0-9_]{1,60}$", example = "tok_visa")
    )]
    pub payment_token: String,
}

/// `POST /refunds`: in full unless `amount_cents` says how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundRequest {
    pub order_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub amount_cents: Option<i64>,
}

/// `POST /emails` and the email's 2PC prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnqueueEmail {
    pub order_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, example = "ada@example.com"))]
    pub to: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100_000_000_000_i64))]
    pub total_cents: i64,
}

/// The body of an endpoint that takes none but accepts an empty object (`{}`, as
/// the orchestrators send): any member is refused as unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoFields {}

/// Any of the requests above, for code that sends one of several (a saga step, a
/// prepare): serialized as the body itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Request {
    CreateOrder(CreateOrder),
    CancelOrder(CancelOrder),
    ReserveStock(ReserveStock),
    Charge(ChargeRequest),
    Refund(RefundRequest),
    EnqueueEmail(EnqueueEmail),
    Empty(NoFields),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn participants_go_by_their_api_names() {
        for p in Participant::ALL {
            assert_eq!(p.name().parse::<Participant>(), Ok(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        assert!("coordinator".parse::<Participant>().is_err());
    }

    #[test]
    fn a_request_is_its_body_and_leaves_out_what_is_absent() {
        let id = Uuid::nil();
        let refund = Request::Refund(RefundRequest {
            order_id: id,
            amount_cents: None,
        });
        assert_eq!(
            serde_json::to_value(refund).unwrap(),
            serde_json::json!({ "order_id": id })
        );
        assert_eq!(
            serde_json::to_value(Request::Empty(NoFields {})).unwrap(),
            serde_json::json!({})
        );
        assert!(serde_json::from_str::<NoFields>(r#"{"x":1}"#).is_err());
        assert!(serde_json::from_str::<CancelOrder>(r#"{"reasn":"x"}"#).is_err());
    }
}
