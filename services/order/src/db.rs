//! Every query of the order service.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use api::{OrderLine, OrderSummary};

use crate::domain::OrderStatus;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrderRow {
    #[serde(rename = "order_id")]
    pub id: Uuid,
    pub customer_email: String,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub total_cents: i64,
    #[serde(skip)]
    pub payment_token: String,
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at";

pub struct NewOrder<'a> {
    pub id: Uuid,
    pub customer_email: &'a str,
    pub payment_token: &'a str,
    pub trace_id: Option<&'a str>,
    pub skus: &'a [String],
    pub quantities: &'a [i32],
    pub unit_prices: &'a [i64],
}

/// Inserts a pending order and its lines; `None` if the id is taken.
#[tracing::instrument(name = "db.insert_order", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_order(tx: &mut PgConnection, new: NewOrder<'_>) -> Result<Option<OrderRow>, sqlx::Error> {
    let total: i64 = new
        .quantities
        .iter()
        .zip(new.unit_prices)
        .map(|(q, p)| i64::from(*q) * p)
        .sum();
    let inserted: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders (id, customer_email, total_cents, payment_token, trace_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(new.id)
    .bind(new.customer_email)
    .bind(total)
    .bind(new.payment_token)
    .bind(new.trace_id)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_some() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])",
        )
        .bind(new.id)
        .bind(new.skus)
        .bind(new.quantities)
        .bind(new.unit_prices)
        .execute(tx)
        .await?;
    }
    Ok(inserted)
}

#[tracing::instrument(name = "db.fetch_order", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_order(conn: &mut PgConnection, id: Uuid, lock: bool) -> Result<Option<OrderRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.fetch_order_lines", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_order_lines(conn: &mut PgConnection, id: Uuid) -> Result<Vec<OrderLine>, sqlx::Error> {
    sqlx::query_as("SELECT sku, quantity, unit_price_cents FROM order_lines WHERE order_id = $1 ORDER BY sku")
        .bind(id)
        .fetch_all(conn)
        .await
}

#[tracing::instrument(name = "db.update_order_status", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_order_status(
    tx: &mut PgConnection,
    id: Uuid,
    status: OrderStatus,
    reason: Option<&str>,
) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = $2, reason = $3, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .bind(reason)
    .fetch_one(tx)
    .await
}

#[tracing::instrument(name = "db.fetch_orders", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_orders(
    pool: &PgPool,
    status: Option<OrderStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, status, customer_email, total_cents, created_at FROM orders
         WHERE ($1::order_status IS NULL OR status = $1)
           AND ($3::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM orders WHERE id = $3))
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .bind(before)
    .fetch_all(pool)
    .await
}

/// Records a cancellation for an order that does not exist; `true` if new.
#[tracing::instrument(name = "db.insert_order_tombstone", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_order_tombstone(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO order_tombstones (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(id)
        .execute(tx)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

#[tracing::instrument(name = "db.fetch_order_tombstone", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_order_tombstone(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM order_tombstones WHERE order_id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}
