//! The coordinator's transactions: a checkout's transaction found by its key or
//! priced and logged, run until it can be answered, and shown as the API shows it.

use std::time::Duration;

use actix::Addr;
use api::{CheckoutRequest, ParticipantView, TransactionFilter, TransactionStatus, TransactionView};
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
    limit: i64,
) -> Result<Vec<TransactionView>, Problem> {
    let ids = log::fetch_transaction_ids(pool, filter, before, limit).await?;
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
    }
}

/// A transaction that must exist (404 otherwise).
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<TransactionView, Problem> {
    log::fetch_transaction(conn, id)
        .await?
        .map(view)
        .ok_or_else(|| Problem::not_found(format!("no transaction {id}")))
}
