//! The checkout as clients send it, and its lines once priced.

use serde::{Deserialize, Serialize};

/// `POST /checkout` on the order service (saga) and on the coordinator (2PC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub customer_email: String,
    pub items: Vec<LineItemRequest>,
    pub payment_token: String,
}

/// A line as it arrives, raw: the services validate it (SKU shape, 1–1000 units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItemRequest {
    pub sku: String,
    pub quantity: i64,
}

/// A line priced from the catalogue: what the order records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}
