//! The coordinator's transactions: a checkout's transaction found by its key or
//! priced and logged, run until it can be answered, and shown as the API shows it
//! (with its history).

use std::time::Duration;

use actix::Addr;
use api::{
    CheckoutRequest, ParticipantView, TransactionEvent, TransactionFilter, TransactionHistory, TransactionStatus,
    TransactionView,
};
use base::{
    Problem,
    telemetry::{current_traceparent, trace_id_of},
};
use shared::{
    domain::price_checkout,
    supervisor::{Supervisor, run_and_wait},
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::tpc::{
    log::{self, NewTransaction, TxRecord},
    protocol::Coordinator,
    state::Decision,
};

/// The transaction of this checkout key: the one logged already, or the checkout
/// priced and logged now (in the current trace, with its baggage).
pub async fn find_or_log(
    pool: &PgPool,
    coordinator: &Coordinator,
    checkout_key: &str,
    body: &CheckoutRequest,
    baggage: Option<&str>,
) -> Result<Uuid, Problem> {
    if let Some(id) = log::fetch_transaction_id_by_key(pool, checkout_key).await? {
        return Ok(id);
    }
    let priced = price_checkout(body, &coordinator.client, &coordinator.peers.inventory).await?;
    Ok(log::insert_transaction(
        pool,
        NewTransaction {
            checkout_key,
            request: &priced,
            traceparent: current_traceparent().as_deref(),
            baggage,
            started_by: coordinator.boot_id,
            replica: &coordinator.replica,
        },
    )
    .await?)
}

/// Runs the transaction until it is over, or decided and every participant told once,
/// or `deadline` has passed.
pub async fn run_until_answerable(
    coordinator: &Coordinator,
    supervisor: &Addr<Supervisor<Coordinator>>,
    id: Uuid,
    deadline: Duration,
) -> Result<(), Problem> {
    tokio::select! {
        ran = run_and_wait(supervisor, id, deadline) => {
            ran.map_err(|e| Problem::internal(anyhow::anyhow!("supervisor: {e}")))?;
        }
        () = coordinator.answers.answerable(id) => {}
    }
    Ok(())
}

/// A page of transactions, newest first.
pub async fn list(
    pool: &PgPool,
    filter: Option<TransactionFilter>,
    before: Option<Uuid>,
    older_than: Option<Duration>,
    limit: i64,
) -> Result<Vec<TransactionView>, Problem> {
    let ids = log::fetch_transaction_ids(pool, filter, before, older_than, limit).await?;
    let records = log::fetch_transactions(&mut *pool.acquire().await?, &ids).await?;
    Ok(records.into_iter().map(view).collect())
}

/// A transaction as the API shows it.
pub fn view(record: TxRecord) -> TransactionView {
    TransactionView {
        transaction_id: record.id,
        order_id: record.order_id,
        status: match record.tx.decision {
            Some(Decision::Commit) => TransactionStatus::Committed,
            Some(Decision::Abort) => TransactionStatus::Aborted,
            None => TransactionStatus::Pending,
        },
        state: record.tx.state,
        decision: record.tx.decision,
        reason: record.tx.reason.clone(),
        total_cents: record.request.total_cents,
        trace_id: record.traceparent.as_deref().and_then(trace_id_of).map(str::to_owned),
        customer_email: record.request.customer_email.clone(),
        items: record.request.items.clone(),
        participants: record
            .tx
            .participants
            .iter()
            .map(|p| ParticipantView {
                name: p.name,
                vote: p.vote,
                outcome: p.outcome(),
                detail: p.detail.clone(),
            })
            .collect(),
        created_at: record.created_at,
        decided_at: record.decided_at,
        checkout_key: Some(record.checkout_key.clone()),
        owner: record.owner.clone(),
        epoch: record.epoch,
        lease_expires_at: record.lease_expires_at,
    }
}

/// A transaction that must exist (404 otherwise).
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<TransactionView, Problem> {
    log::fetch_transaction(conn, id)
        .await?
        .map(view)
        .ok_or_else(|| Problem::not_found(format!("no transaction {id}")))
}

/// A page of a transaction's history, oldest first (404 when there is no such
/// transaction); the cursor of the next page when this one is full.
pub async fn history(
    conn: &mut PgConnection,
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<TransactionHistory, Problem> {
    let (order_id, rows) = log::fetch_events(conn, id, after, limit)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no transaction {id}")))?;
    let next_cursor = match rows.last() {
        Some(last) if i64::try_from(rows.len()).is_ok_and(|n| n == limit) => Some(last.seq),
        _ => None,
    };
    Ok(TransactionHistory {
        transaction_id: id,
        order_id,
        events: rows.into_iter().map(event).collect(),
        next_cursor,
    })
}

fn event(row: log::EventRow) -> TransactionEvent {
    TransactionEvent {
        seq: row.seq,
        at: row.at,
        kind: row.kind,
        // Written from the contract's names; anything else was never written here.
        participant: row.participant.and_then(|name| name.parse().ok()),
        vote: row.vote,
        attempt: row.attempt.and_then(|a| u32::try_from(a).ok()),
        acknowledged: row.acknowledged,
        decision: row.decision.and_then(|d| d.parse().ok()),
        state: row.state,
        detail: row.detail,
        duration_ms: row.duration_ms,
        epoch: row.epoch,
        owner: row.owner,
    }
}
