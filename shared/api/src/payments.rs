//! Charges and refunds as the payment service shows them (`POST /charges`,
//! `POST /refunds`, `GET /payments`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a charge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "charge_state", rename_all = "snake_case")
)]
pub enum ChargeState {
    Succeeded,
    Declined,
}

api_names!("a charge state", ChargeState { Succeeded => "succeeded", Declined => "declined" });

/// Why a card was declined: the `decline_code` of a declined charge and of its
/// `payment-declined` problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeclineCode {
    CardDeclined,
    InsufficientFunds,
}

api_names!("a decline code", DeclineCode { CardDeclined => "card_declined", InsufficientFunds => "insufficient_funds" });

/// A charge, declined ones included (`decline_code` says why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct Charge {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    pub state: ChargeState,
    /// A [`DeclineCode`]'s name, on a declined charge.
    pub decline_code: Option<String>,
    pub refunded_cents: i64,
    pub created_at: DateTime<Utc>,
}

/// A refund; `null_compensation` when the order had no charge to refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct Refund {
    pub id: Uuid,
    pub order_id: Uuid,
    pub charge_id: Option<Uuid>,
    pub amount_cents: i64,
    pub null_compensation: bool,
    pub created_at: DateTime<Utc>,
}

/// An order refunded in full already: a repeated full refund has no second effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundedInFull {
    pub order_id: Uuid,
    pub refunded_cents: i64,
    pub refunds: Vec<Refund>,
}

/// What `POST /refunds` answers: the refund made (or the null compensation), or,
/// for an order refunded in full already, its refunds so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RefundAnswer {
    Refund(Refund),
    RefundedInFull(RefundedInFull),
}

/// `GET /payments?order_id=`: an order's money movements and their balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payments {
    pub order_id: Uuid,
    pub charges: Vec<Charge>,
    pub refunds: Vec<Refund>,
    /// Succeeded charges.
    pub charged_cents: i64,
    pub refunded_cents: i64,
    /// `charged_cents - refunded_cents`.
    pub net_cents: i64,
}

impl Payments {
    /// The charges that took money.
    pub fn succeeded(&self) -> impl Iterator<Item = &Charge> {
        self.charges.iter().filter(|c| c.state == ChargeState::Succeeded)
    }
}
