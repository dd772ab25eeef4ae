//! What the inventory service does, whoever asks: the HTTP routes and the 2PC adapter
//! both call these. Stock rows are locked in SKU order, so concurrent reservations
//! queue instead of overselling or deadlocking.

use std::collections::HashMap;

use base::{ErrorCode, Problem};
use shared::domain::{LineItems, Sku};
use sqlx::PgConnection;
use uuid::Uuid;

pub use api::{Reservation, Shortage};

use crate::db::{self, Product, ReservationState};

/// The problem for a SKU the catalogue does not have.
pub fn unknown_sku(sku: &str) -> Problem {
    Problem::new(ErrorCode::UnknownSku, format!("the catalogue has no {sku}")).with_extension("sku", sku)
}

/// The reservation `row` with its lines.
pub async fn reservation(conn: &mut PgConnection, row: db::ReservationRow) -> Result<Reservation, Problem> {
    Ok(Reservation {
        order_id: row.order_id,
        state: row.state,
        null_compensation: row.null_compensation,
        lines: db::fetch_reservation_lines(conn, row.order_id).await?,
    })
}

/// Reserves every line for the order, or none; `(reservation, is_new)`. A repeat for
/// the order answers with the existing reservation; one after the order's release
/// is refused (a reservation arriving after its compensation).
pub async fn reserve_for(
    conn: &mut PgConnection,
    order_id: Uuid,
    items: &LineItems,
) -> Result<(Reservation, bool), Problem> {
    match reserve(conn, order_id, items).await? {
        Reserved::New => {
            let row = db::ReservationRow {
                order_id,
                state: ReservationState::Held,
                null_compensation: false,
            };
            Ok((reservation(conn, row).await?, true))
        }
        Reserved::Existing(existing) => Ok((existing_reservation(conn, existing).await?, false)),
    }
}

/// What [`reserve`] did.
pub enum Reserved {
    /// Held the stock for the order.
    New,
    /// The order already had a reservation; nothing changed.
    Existing(db::ReservationRow),
}

/// Holds every line's stock for the order, or none of it: rows are locked in SKU
/// order, so concurrent reservations queue instead of overselling or deadlocking.
/// Waiting for locks held by an in-doubt 2PC transaction gives up after 1.5 s (423),
/// before the saga's 2 s step timeout, so the caller learns why.
pub async fn reserve(conn: &mut PgConnection, order_id: Uuid, items: &LineItems) -> Result<Reserved, Problem> {
    sqlx::query("SET LOCAL lock_timeout = '1500ms'")
        .execute(&mut *conn)
        .await?;
    if let Some(existing) = db::fetch_reservation(conn, order_id, true).await.map_err(locked)? {
        return Ok(Reserved::Existing(existing));
    }
    let (skus, quantities) = (items.skus(), items.quantities());
    let available: HashMap<String, i32> = db::lock_products(conn, &skus)
        .await
        .map_err(locked)?
        .into_iter()
        .collect();
    if let Some(missing) = skus.iter().find(|sku| !available.contains_key(*sku)) {
        return Err(unknown_sku(missing));
    }
    let short: Vec<Shortage> = skus
        .iter()
        .zip(&quantities)
        .map(|(sku, requested)| Shortage {
            sku: sku.clone(),
            requested: *requested,
            available: available.get(sku).copied().unwrap_or(0),
        })
        .filter(|line| line.available < line.requested)
        .collect();
    if !short.is_empty() {
        return Err(Problem::new(
            ErrorCode::InsufficientStock,
            "not enough stock for every line; nothing was reserved",
        )
        .with_extension("shortages", serde_json::to_value(&short).map_err(Problem::internal)?));
    }
    if !db::insert_reservation(conn, order_id, ReservationState::Held, false).await? {
        // A concurrent request for the same order got there first.
        let existing = db::fetch_reservation(conn, order_id, true).await?;
        return existing
            .map(Reserved::Existing)
            .ok_or_else(|| Problem::internal(anyhow::anyhow!("reservation vanished")));
    }
    db::insert_reservation_lines(conn, order_id, &skus, &quantities).await?;
    Ok(Reserved::New)
}

/// A lock wait that timed out: the rows are held by another transaction.
fn locked(e: sqlx::Error) -> Problem {
    if base::db::is_lock_timeout(&e) {
        Problem::new(
            ErrorCode::RowsLocked,
            "the stock rows are locked by another transaction (an in-doubt two-phase commit holds them); retry later",
        )
        .with_retry_after(1)
    } else {
        Problem::from(e)
    }
}

/// A reservation asked for again: the same answer, unless it was released meanwhile.
async fn existing_reservation(conn: &mut PgConnection, existing: db::ReservationRow) -> Result<Reservation, Problem> {
    match existing.state {
        ReservationState::Released => Err(Problem::new(
            ErrorCode::ActionAfterCompensation,
            format!(
                "order {} was already released; a reservation arriving after its release is refused",
                existing.order_id
            ),
        )),
        ReservationState::Held | ReservationState::Committed => reservation(conn, existing).await,
    }
}

/// Compensation: gives the stock back. Releasing an order that never reserved
/// succeeds as a recorded no-op (null compensation) that refuses a later reservation.
pub async fn release(conn: &mut PgConnection, order_id: Uuid) -> Result<Reservation, Problem> {
    if db::insert_reservation(conn, order_id, ReservationState::Released, true).await? {
        tracing::info!("null compensation: released an order that had no reservation");
        let row = db::ReservationRow {
            order_id,
            state: ReservationState::Released,
            null_compensation: true,
        };
        return reservation(conn, row).await;
    }
    let row = db::fetch_reservation(conn, order_id, true)
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("reservation vanished")))?;
    match row.state {
        ReservationState::Released => reservation(conn, row).await,
        ReservationState::Committed => Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id}'s reservation is committed (sold); it cannot be released"),
        )),
        ReservationState::Held => {
            db::update_reservation_state(conn, order_id, ReservationState::Released).await?;
            let row = db::ReservationRow {
                state: ReservationState::Released,
                ..row
            };
            reservation(conn, row).await
        }
    }
}

/// Turns held stock into sold stock, once.
pub async fn commit(conn: &mut PgConnection, order_id: Uuid) -> Result<Reservation, Problem> {
    let Some(row) = db::fetch_reservation(conn, order_id, true).await? else {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id} has no reservation to commit"),
        ));
    };
    match row.state {
        ReservationState::Committed => reservation(conn, row).await,
        ReservationState::Released => Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id}'s reservation was released; it cannot be committed"),
        )),
        ReservationState::Held => {
            db::update_reservation_state(conn, order_id, ReservationState::Committed).await?;
            let row = db::ReservationRow {
                state: ReservationState::Committed,
                ..row
            };
            reservation(conn, row).await
        }
    }
}

/// Sets a SKU's shelf stock (0–1,000,000); `stocked` moves with it.
pub async fn set_available(conn: &mut PgConnection, sku: &Sku, available: i64) -> Result<Product, Problem> {
    let available = i32::try_from(available)
        .ok()
        .filter(|n| (0..=1_000_000).contains(n))
        .ok_or_else(|| Problem::invalid(format!("available must be between 0 and 1000000, got {available}")))?;
    db::update_available(conn, sku.as_str(), available)
        .await?
        .ok_or_else(|| unknown_sku(sku.as_str()))
}
