//! An order as `GET /orders/{id}` and `POST /checkout` show it: the contract's
//! checkout shape, with the saga's steps when the order came from a checkout; sagas
//! as `GET /sagas` lists them; and a saga's history (`GET /sagas/{id}/history`).

use api::{SagaEvent, SagaHistory, SagaList, SagaSummary};
use base::{Problem, telemetry::trace_id_of};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    db::{self, OrderLine},
    domain::OrderStatus,
    saga::{
        log,
        state::{SagaStatus, StepStatus},
        steps::{PIVOT, STEPS},
    },
};

pub use api::{OrderView, SagaView, StepView};

/// A step's status as the API shows it: one being attempted is `pending` until its
/// outcome is known.
fn step_status(status: StepStatus) -> api::StepStatus {
    match status {
        StepStatus::Pending | StepStatus::Running => api::StepStatus::Pending,
        StepStatus::Succeeded => api::StepStatus::Succeeded,
        StepStatus::Failed => api::StepStatus::Failed,
        StepStatus::Compensating => api::StepStatus::Compensating,
        StepStatus::Compensated => api::StepStatus::Compensated,
    }
}

/// A page of sagas, newest first; the cursor of the next page when this one is full.
pub async fn sagas(pool: &PgPool, filter: &log::SagaFilter, limit: i64) -> Result<SagaList, Problem> {
    let rows = log::list_sagas(pool, filter, limit).await?;
    let next_cursor = match rows.last() {
        Some(last) if i64::try_from(rows.len()).is_ok_and(|n| n == limit) => Some(last.id),
        _ => None,
    };
    Ok(SagaList {
        sagas: rows.into_iter().map(saga_summary).collect(),
        next_cursor,
    })
}

/// A page of a saga's history, oldest first; `None` when there is no such saga.
pub async fn history(
    pool: &PgPool,
    saga_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Option<SagaHistory>, Problem> {
    let mut conn = pool.acquire().await?;
    let Some(ids) = log::fetch_saga_ids(&mut conn, saga_id).await? else {
        return Ok(None);
    };
    let rows = log::fetch_events(&mut conn, saga_id, after, limit).await?;
    let next_cursor = match rows.last() {
        Some(last) if i64::try_from(rows.len()).is_ok_and(|n| n == limit) => Some(last.seq),
        _ => None,
    };
    Ok(Some(SagaHistory {
        saga_id: ids.id,
        order_id: ids.order_id,
        events: rows.into_iter().map(saga_event).collect(),
        next_cursor,
    }))
}

fn saga_event(row: log::EventRow) -> SagaEvent {
    SagaEvent {
        seq: row.seq,
        at: row.at,
        kind: row.kind,
        step: row.step,
        attempt: row.attempt.and_then(|a| u32::try_from(a).ok()),
        outcome: row.outcome,
        status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
        detail: row.detail,
        duration_ms: row.duration_ms,
        status: row.status,
        // Written from a participant's name; anything else was never written here.
        participant: row.participant.and_then(|name| name.parse().ok()),
        epoch: row.epoch,
        owner: row.owner,
    }
}

fn saga_summary(row: log::SagaListing) -> SagaSummary {
    let max_attempts = u32::try_from(row.max_attempts).unwrap_or(0);
    SagaSummary {
        saga_id: row.id,
        order_id: row.order_id,
        status: row.status,
        reason: row.parked_reason.or(row.reason),
        // Written from a participant's name; anything else was never written here.
        parked_on: row.parked_on.and_then(|name| name.parse().ok()),
        max_attempts,
        retrying: !row.status.is_final() && max_attempts > 1,
        trace_id: row.traceparent.as_deref().and_then(trace_id_of).map(str::to_owned),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The order, its lines and its saga read in one snapshot.
pub async fn load_consistent(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderView>, Problem> {
    let mut snapshot = base::db::begin(pool).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await?;
    let view = load(&mut snapshot, order_id).await?;
    snapshot.commit().await?;
    Ok(view)
}

/// An order that must exist (404 otherwise).
pub async fn load_existing(conn: &mut PgConnection, order_id: Uuid) -> Result<OrderView, Problem> {
    load(conn, order_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no order {order_id}")))
}

/// The order, from its row and (when it came from a checkout) its saga.
///
/// The saga is read before the order: an order's final status commits before its
/// saga logs its own, so a saga read as final always comes with a final order (read
/// the other way round, a finishing saga could show a stale order).
pub async fn load(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<OrderView>, Problem> {
    let saga = match log::fetch_saga_id_by_order(&mut *conn, order_id).await? {
        Some(saga_id) => log::fetch_saga(&mut *conn, saga_id).await?,
        None => None,
    };
    let order = db::fetch_order(conn, order_id, false).await?;
    let items = match &order {
        Some(_) => db::fetch_order_lines(conn, order_id).await?,
        None => Vec::new(),
    };
    Ok(match (order, saga) {
        (None, None) => None,
        (order, Some(saga)) => {
            let status = order.as_ref().map(|o| o.status).unwrap_or(match saga.state.status {
                SagaStatus::Cancelled => OrderStatus::Cancelled,
                _ => OrderStatus::Pending,
            });
            let reason = order.as_ref().and_then(|o| o.reason.clone()).or_else(|| {
                (status == OrderStatus::Cancelled)
                    .then(|| saga.state.reason.clone())
                    .flatten()
            });
            let items = if items.is_empty() {
                saga.request
                    .items
                    .iter()
                    .map(|i| OrderLine {
                        sku: i.sku.clone(),
                        // Validated to 1..=1000 when the checkout was priced.
                        quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                        unit_price_cents: i.unit_price_cents,
                    })
                    .collect()
            } else {
                items
            };
            Some(OrderView {
                order_id,
                status,
                reason,
                total_cents: saga.request.total_cents,
                trace_id: saga.traceparent.as_deref().and_then(trace_id_of).map(str::to_owned),
                customer_email: saga.request.customer_email.clone(),
                items,
                steps: STEPS
                    .iter()
                    .zip(&saga.state.steps)
                    .enumerate()
                    .map(|(i, (step, state))| StepView {
                        name: step.name.to_owned(),
                        status: step_status(state.status),
                        attempts: state.attempts,
                        compensation_attempts: state.compensation_attempts,
                        last_error: state.last_error.clone(),
                        pivot: i == PIVOT,
                    })
                    .collect(),
                saga: Some(SagaView {
                    saga_id: saga.id,
                    status: saga.state.status,
                    reason: saga.state.parked_reason.clone().or_else(|| saga.state.reason.clone()),
                    cancel_reason: saga.state.reason.clone(),
                    checkout_key: Some(saga.checkout_key.clone()),
                    owner: saga.owner.clone(),
                    epoch: saga.epoch,
                    lease_expires_at: saga.lease_expires_at,
                }),
                created_at: order.as_ref().map(|o| o.created_at),
            })
        }
        (Some(order), None) => Some(OrderView {
            order_id,
            status: order.status,
            reason: order.reason,
            total_cents: order.total_cents,
            trace_id: order.trace_id,
            customer_email: order.customer_email,
            items,
            steps: Vec::new(),
            saga: None,
            created_at: Some(order.created_at),
        }),
    })
}
