//! The catalogue as the inventory service shows it, and as the orchestrators read it
//! to price a checkout.

use serde::{Deserialize, Serialize};

/// A SKU of the catalogue and its stock: `stocked = available + reserved + sold`.
/// `GET /inventory/{sku}`, each item of `GET /inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    #[cfg_attr(feature = "openapi", schema(example = "SKU-001"))]
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    /// On the shelf, free to reserve.
    pub available: i32,
    /// Held for checkouts still running.
    pub reserved: i32,
    pub sold: i32,
    /// Every unit ever put on the shelf: `available + reserved + sold`.
    pub stocked: i32,
}
