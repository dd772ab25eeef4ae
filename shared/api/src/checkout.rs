//! The checkout as clients send it, and its lines once priced.

use serde::{Deserialize, Serialize};

/// `POST /checkout` on the order service (saga) and on the coordinator (2PC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckoutRequest {
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, example = "ada@example.com"))]
    pub customer_email: String,
    /// 1–50 lines, each SKU once.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 50))]
    pub items: Vec<LineItemRequest>,
    /// A test token: `tok_visa` pays, `tok_chargeDeclined` is declined.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^tok_[A-Za-z0-9_]{1,60}$", example = "tok_visa")
    )]
    pub payment_token: String,
}

/// A line as it arrives, raw: the services validate it (SKU shape, 1–1000 units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineItemRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Z0-9-]{1,32}$", example = "SKU-001"))]
    pub sku: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub quantity: i64,
}

/// A line priced from the catalogue: what the order records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PricedLine {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Z0-9-]{1,32}$", example = "SKU-001"))]
    pub sku: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub quantity: i64,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub unit_price_cents: i64,
}
