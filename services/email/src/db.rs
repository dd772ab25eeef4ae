//! Every query of the email service.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use api::{Email, EmailState};

/// An `emails` row: the outbox entry, with what the dispatcher sends (the body) and
/// the trace it continues, which the API does not show ([`Email::from`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub state: EmailState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<EmailRow> for Email {
    fn from(row: EmailRow) -> Email {
        let EmailRow {
            id,
            order_id,
            kind,
            recipient,
            subject,
            body: _,
            state,
            attempts,
            last_error,
            next_attempt_at,
            delivered_at,
            traceparent: _,
            created_at,
        } = row;
        Email {
            id,
            order_id,
            kind,
            to: recipient,
            subject,
            state,
            attempts,
            last_error,
            next_attempt_at,
            delivered_at,
            created_at,
        }
    }
}

const COLUMNS: &str = "id, order_id, kind, recipient, subject, body, state, attempts, last_error, \
                       next_attempt_at, delivered_at, traceparent, created_at";

pub struct NewEmail<'a> {
    pub order_id: Uuid,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub traceparent: Option<&'a str>,
}

/// Enqueues the order's confirmation unless it has one; `(email, created)`.
#[tracing::instrument(name = "db.insert_email", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_email(tx: &mut PgConnection, new: NewEmail<'_>) -> Result<(Email, bool), sqlx::Error> {
    let inserted: Option<EmailRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO emails (id, order_id, recipient, subject, body, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (order_id, kind) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(new.order_id)
    .bind(new.recipient)
    .bind(new.subject)
    .bind(new.body)
    .bind(new.traceparent)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(email) = inserted {
        return Ok((email.into(), true));
    }
    let existing: EmailRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM emails WHERE order_id = $1 AND kind = 'order_confirmation'"
    )))
    .bind(new.order_id)
    .fetch_one(tx)
    .await?;
    Ok((existing.into(), false))
}

#[tracing::instrument(name = "db.fetch_emails", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_emails(pool: &PgPool, order_id: Uuid) -> Result<Vec<Email>, sqlx::Error> {
    let rows: Vec<EmailRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM emails WHERE order_id = $1 ORDER BY created_at"
    )))
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Email::from).collect())
}

/// Claims up to `limit` due emails for `lease`; a crashed dispatcher's claims expire.
#[tracing::instrument(name = "db.claim_due_emails", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn claim_due_emails(pool: &PgPool, limit: i64, lease: Duration) -> Result<Vec<EmailRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE emails SET locked_until = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM emails
                      WHERE state = 'pending' AND next_attempt_at <= now()
                        AND (locked_until IS NULL OR locked_until < now())
                      ORDER BY next_attempt_at LIMIT $1
                      FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "db.update_email_delivered", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_email_delivered(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE emails SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),
                locked_until = NULL, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried after `retry_in`, or given up when `None`.
#[tracing::instrument(name = "db.update_email_failed", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_email_failed(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE emails SET attempts = attempts + 1, last_error = $2, locked_until = NULL,
                state = CASE WHEN $3::float8 IS NULL THEN 'failed'::email_state ELSE 'pending'::email_state END,
                next_attempt_at = now() + make_interval(secs => coalesce($3, 0))
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(pool)
    .await?;
    Ok(())
}
