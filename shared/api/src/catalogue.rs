//! The catalogue as the inventory service shows it, and as the orchestrators read it
//! to price a checkout.

use serde::{Deserialize, Serialize};

/// A SKU of the catalogue and its stock: `stocked = available + reserved + sold`.
/// `GET /inventory/{sku}`, each item of `GET /inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
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

/// `GET /inventory`: every SKU, its price and its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalogue {
    pub items: Vec<Product>,
}

/// `PUT /admin/inventory/{sku}`: the shelf stock to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStock {
    /// The shelf stock; `stocked` moves with it.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000))]
    pub available: i64,
}
