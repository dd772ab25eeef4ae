//! Reservations as the inventory service shows them (`POST /reservations`,
//! `GET /reservations/{order_id}`, release and commit).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "reservation_state", rename_all = "snake_case")
)]
pub enum ReservationState {
    Held,
    Committed,
    Released,
}

api_names!("a reservation state", ReservationState { Held => "held", Committed => "committed", Released => "released" });

/// One line of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct ReservationLine {
    pub sku: String,
    pub quantity: i32,
}

/// A line the shelf cannot fill: an `insufficient-stock` problem lists them in
/// `shortages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shortage {
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

/// An order's reservation and its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    pub order_id: Uuid,
    pub state: ReservationState,
    /// True when this reservation was released before it was ever made.
    pub null_compensation: bool,
    pub lines: Vec<ReservationLine>,
}
