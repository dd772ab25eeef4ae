//! Every query of the payment service.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use api::{Charge, ChargeState, Refund};

const CHARGE_COLUMNS: &str = "id, order_id, amount_cents, state, decline_code, refunded_cents, created_at";

/// Serialises charge and refund of one order until the transaction ends.
#[tracing::instrument(name = "db.lock_order", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT pg_advisory_xact_lock"))]
pub async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(order_id)
        .execute(tx)
        .await?;
    Ok(())
}

#[tracing::instrument(name = "db.fetch_successful_charge", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_successful_charge(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Charge>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHARGE_COLUMNS} FROM charges WHERE order_id = $1 AND state = 'succeeded'"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.insert_charge", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_charge(
    tx: &mut PgConnection,
    order_id: Uuid,
    amount_cents: i64,
    token: &str,
    decline_code: Option<&str>,
) -> Result<Charge, sqlx::Error> {
    let state = if decline_code.is_some() {
        ChargeState::Declined
    } else {
        ChargeState::Succeeded
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO charges (id, order_id, amount_cents, token, state, decline_code)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CHARGE_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(amount_cents)
    .bind(token)
    .bind(state)
    .bind(decline_code)
    .fetch_one(tx)
    .await
}

#[tracing::instrument(name = "db.fetch_refunds", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_refunds(conn: &mut PgConnection, order_id: Uuid) -> Result<Vec<Refund>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, order_id, charge_id, amount_cents, null_compensation, created_at
         FROM refunds WHERE order_id = $1 ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.fetch_charges", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_charges(pool: &PgPool, order_id: Uuid) -> Result<Vec<Charge>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHARGE_COLUMNS} FROM charges WHERE order_id = $1 ORDER BY created_at, id"
    )))
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// Records a refund; for a real one also raises the charge's `refunded_cents` (the
/// table's check refuses going past the charged amount).
#[tracing::instrument(name = "db.insert_refund", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_refund(
    tx: &mut PgConnection,
    order_id: Uuid,
    charge_id: Option<Uuid>,
    amount_cents: i64,
) -> Result<Refund, sqlx::Error> {
    if let Some(charge_id) = charge_id {
        sqlx::query("UPDATE charges SET refunded_cents = refunded_cents + $2 WHERE id = $1")
            .bind(charge_id)
            .bind(amount_cents)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query_as(
        "INSERT INTO refunds (id, order_id, charge_id, amount_cents, null_compensation)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, order_id, charge_id, amount_cents, null_compensation, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(charge_id)
    .bind(amount_cents)
    .bind(charge_id.is_none())
    .fetch_one(tx)
    .await
}
