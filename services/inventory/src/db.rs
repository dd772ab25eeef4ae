//! Every query of the inventory service. Writes take the request's transaction.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use api::{Product, ReservationLine, ReservationState};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReservationRow {
    pub order_id: Uuid,
    pub state: ReservationState,
    pub null_compensation: bool,
}

#[tracing::instrument(name = "db.fetch_products", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_products(pool: &PgPool) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as("SELECT sku, name, price_cents, available, reserved, sold, stocked FROM products ORDER BY sku")
        .fetch_all(pool)
        .await
}

#[tracing::instrument(name = "db.fetch_product", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_product(pool: &PgPool, sku: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as("SELECT sku, name, price_cents, available, reserved, sold, stocked FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_optional(pool)
        .await
}

/// Sets the shelf stock; `stocked` moves with it so the invariant holds.
#[tracing::instrument(name = "db.update_available", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_available(
    tx: &mut PgConnection,
    sku: &str,
    available: i32,
) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE products SET stocked = stocked + ($2 - available), available = $2 WHERE sku = $1
         RETURNING sku, name, price_cents, available, reserved, sold, stocked",
    )
    .bind(sku)
    .bind(available)
    .fetch_optional(tx)
    .await
}

/// The SKUs whose rows the prepared transaction `xid` holds: it updated them, so the
/// version everyone else still sees names it as its lock holder (`xmax`).
#[tracing::instrument(name = "db.fetch_skus_held_by", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_skus_held_by(conn: &mut PgConnection, xid: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT sku FROM products WHERE xmax::text = $1 ORDER BY sku")
        .bind(xid)
        .fetch_all(conn)
        .await
}

/// Locks the products in SKU order (no deadlocks between concurrent reservations)
/// and returns `(sku, available)` for those that exist.
#[tracing::instrument(name = "db.lock_products", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT FOR UPDATE"))]
pub async fn lock_products(tx: &mut PgConnection, skus: &[String]) -> Result<Vec<(String, i32)>, sqlx::Error> {
    sqlx::query_as("SELECT sku, available FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
        .bind(skus)
        .fetch_all(tx)
        .await
}

#[tracing::instrument(name = "db.fetch_reservation", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
    lock: bool,
) -> Result<Option<ReservationRow>, sqlx::Error> {
    let sql = if lock {
        "SELECT order_id, state, null_compensation FROM reservations WHERE order_id = $1 FOR UPDATE"
    } else {
        "SELECT order_id, state, null_compensation FROM reservations WHERE order_id = $1"
    };
    sqlx::query_as(sql).bind(order_id).fetch_optional(conn).await
}

#[tracing::instrument(name = "db.fetch_reservation_lines", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_reservation_lines(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<ReservationLine>, sqlx::Error> {
    sqlx::query_as("SELECT sku, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY sku")
        .bind(order_id)
        .fetch_all(conn)
        .await
}

/// Inserts a reservation row unless the order has one; `true` if inserted.
#[tracing::instrument(name = "db.insert_reservation", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_reservation(
    tx: &mut PgConnection,
    order_id: Uuid,
    state: ReservationState,
    null_compensation: bool,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO reservations (order_id, state, null_compensation) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(state)
    .bind(null_compensation)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Moves stock for the lines of a new reservation: available → reserved.
#[tracing::instrument(name = "db.insert_reservation_lines", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_reservation_lines(
    tx: &mut PgConnection,
    order_id: Uuid,
    skus: &[String],
    quantities: &[i32],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH lines AS (SELECT * FROM unnest($2::text[], $3::int[]) AS l(sku, quantity)),
              moved AS (UPDATE products p SET available = p.available - l.quantity, reserved = p.reserved + l.quantity
                        FROM lines l WHERE p.sku = l.sku)
         INSERT INTO reservation_lines (order_id, sku, quantity) SELECT $1, sku, quantity FROM lines",
    )
    .bind(order_id)
    .bind(skus)
    .bind(quantities)
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves a held reservation's stock to `to` and sets its state.
#[tracing::instrument(name = "db.update_reservation_state", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_reservation_state(
    tx: &mut PgConnection,
    order_id: Uuid,
    to: ReservationState,
) -> Result<(), sqlx::Error> {
    let move_stock = match to {
        ReservationState::Released => {
            "UPDATE products p SET available = p.available + l.quantity, reserved = p.reserved - l.quantity
             FROM reservation_lines l WHERE l.order_id = $1 AND p.sku = l.sku"
        }
        ReservationState::Committed => {
            "UPDATE products p SET sold = p.sold + l.quantity, reserved = p.reserved - l.quantity
             FROM reservation_lines l WHERE l.order_id = $1 AND p.sku = l.sku"
        }
        ReservationState::Held => "SELECT $1::uuid",
    };
    sqlx::query(move_stock).bind(order_id).execute(&mut *tx).await?;
    sqlx::query("UPDATE reservations SET state = $2, updated_at = now() WHERE order_id = $1")
        .bind(order_id)
        .bind(to)
        .execute(tx)
        .await?;
    Ok(())
}
