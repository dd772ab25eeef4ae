//! The coordinator's log in Postgres.

use std::{collections::HashMap, time::Duration};

use api::{TransactionEventKind, TransactionFilter};
use chrono::{DateTime, Utc};
use shared::domain::PricedCheckout;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::state::{Ack, Decision, Participant, ParticipantVote, Transaction, TransactionState};

#[derive(Debug, Clone)]
pub struct TxRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    pub request: PricedCheckout,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
    pub started_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub checkout_key: String,
    pub tx: Transaction,
    /// Who drives it: the replica holding (or last holding) its lease, the epoch it
    /// took the transaction at, and when the lease runs out.
    pub owner: Option<String>,
    pub epoch: i64,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

pub use shared::lease::{Lease, Replica};

/// What trying to take a transaction found.
#[derive(Debug)]
pub enum Taken {
    /// This replica drives it now; `from` is the replica that held it before, when
    /// another one did.
    Held {
        record: TxRecord,
        lease: Lease,
        from: Option<String>,
    },
    /// Final: there is nothing to drive.
    Final(TxRecord),
    /// Another replica holds a live lease on it.
    HeldElsewhere { owner: String },
}

#[derive(sqlx::FromRow)]
struct TxRow {
    id: Uuid,
    order_id: Uuid,
    state: TransactionState,
    /// As text: the contract's `Decision` knows nothing of the database.
    decision: Option<String>,
    reason: Option<String>,
    request: sqlx::types::Json<PricedCheckout>,
    traceparent: Option<String>,
    baggage: Option<String>,
    started_by: Uuid,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    checkout_key: String,
    owner: Option<String>,
    epoch: i64,
    lease_expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ParticipantRow {
    transaction_id: Uuid,
    name: String,
    vote: ParticipantVote,
    outcome: Ack,
    detail: Option<String>,
}

pub struct NewTransaction<'a> {
    pub checkout_key: &'a str,
    pub request: &'a PricedCheckout,
    pub traceparent: Option<&'a str>,
    pub baggage: Option<&'a str>,
    pub started_by: Uuid,
    /// The replica that logs it: it holds the lease from the start, so no other
    /// replica's sweep picks the transaction up before its own checkout runs it.
    pub replica: &'a Replica,
}

/// Logs a transaction (before anything is prepared) unless the checkout key has one.
#[tracing::instrument(name = "db.insert_transaction", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_transaction(pool: &PgPool, new: NewTransaction<'_>) -> Result<Uuid, sqlx::Error> {
    let mut db = base::db::begin(pool).await?;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "WITH tx AS (
             INSERT INTO transactions (id, order_id, checkout_key, request, traceparent, baggage, started_by, owner,
                                       lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
             ON CONFLICT (checkout_key) DO NOTHING RETURNING id),
         logged AS (INSERT INTO tx_events (transaction_id, kind) SELECT id, 'logged' FROM tx)
         SELECT id FROM tx",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(new.checkout_key)
    .bind(sqlx::types::Json(new.request))
    .bind(new.traceparent)
    .bind(new.baggage)
    .bind(new.started_by)
    .bind(&new.replica.id)
    .bind(new.replica.lease_ttl.as_secs_f64())
    .fetch_optional(&mut *db)
    .await?;
    let Some(id) = inserted else {
        db.rollback().await?;
        return sqlx::query_scalar("SELECT id FROM transactions WHERE checkout_key = $1")
            .bind(new.checkout_key)
            .fetch_one(pool)
            .await;
    };
    sqlx::query(
        "INSERT INTO tx_participants (transaction_id, position, name)
         SELECT $1, (ordinality - 1)::smallint, name FROM unnest($2::text[]) WITH ORDINALITY AS p(name, ordinality)",
    )
    .bind(id)
    .bind(api::Participant::ALL.map(api::Participant::name).to_vec())
    .execute(&mut *db)
    .await?;
    db.commit().await?;
    Ok(id)
}

#[tracing::instrument(name = "db.fetch_transaction_id_by_key", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_transaction_id_by_key(pool: &PgPool, checkout_key: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM transactions WHERE checkout_key = $1")
        .bind(checkout_key)
        .fetch_optional(pool)
        .await
}

pub async fn fetch_transaction(conn: &mut PgConnection, id: Uuid) -> Result<Option<TxRecord>, sqlx::Error> {
    Ok(fetch_transactions(conn, &[id]).await?.pop())
}

/// The transactions with these ids, in the order given (those that exist), with
/// their participants: two queries whatever the number.
#[tracing::instrument(name = "db.fetch_transactions", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_transactions(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<TxRecord>, sqlx::Error> {
    let rows: Vec<TxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TX_COLUMNS} FROM transactions WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    with_participants(conn, rows, ids).await
}

const TX_COLUMNS: &str = "id, order_id, state, decision::text AS decision, reason, request, traceparent, baggage,
     started_by, created_at, decided_at, checkout_key, owner, epoch, lease_expires_at";

/// A transaction's row as taking it found it (locked), and the new epoch when this
/// replica took it.
#[derive(sqlx::FromRow)]
struct TakenRow {
    #[sqlx(flatten)]
    tx: TxRow,
    taken_epoch: Option<i64>,
}

/// Takes the transaction for `replica` if it is unfinished and its lease is free,
/// its own, or run out — raising its epoch — and reads it as the locked row says,
/// with its participants (read once it is held, so no earlier holder's write is
/// missed).
#[tracing::instrument(name = "db.take_transaction", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn take_transaction(
    conn: &mut PgConnection,
    id: Uuid,
    replica: &Replica,
) -> Result<Option<Taken>, sqlx::Error> {
    let row: Option<TakenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH old AS (SELECT * FROM transactions WHERE id = $1 FOR UPDATE),
         taken AS (
             UPDATE transactions t SET owner = $2, epoch = old.epoch + 1,
                    lease_expires_at = now() + make_interval(secs => $3)
             FROM old
             WHERE t.id = old.id AND old.state IN ('preparing', 'committing', 'aborting')
               AND (old.owner IS NULL OR old.owner = $2 OR old.lease_expires_at IS NULL OR old.lease_expires_at <= now())
             RETURNING t.epoch)
         SELECT {TX_COLUMNS}, (SELECT epoch FROM taken) AS taken_epoch FROM old"
    )))
    .bind(id)
    .bind(&replica.id)
    .bind(replica.lease_ttl.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(TakenRow { tx, taken_epoch }) = row else {
        return Ok(None);
    };
    let final_state = tx.state.is_final();
    let previous = tx.owner.clone();
    let Some(mut record) = with_participants(conn, vec![tx], &[id]).await?.pop() else {
        return Ok(None);
    };
    let Some(epoch) = taken_epoch else {
        if final_state {
            return Ok(Some(Taken::Final(record)));
        }
        return Ok(Some(Taken::HeldElsewhere {
            owner: previous.unwrap_or_default(),
        }));
    };
    record.owner = Some(replica.id.clone());
    record.epoch = epoch;
    let lease = Lease::new(id, epoch, replica);
    let from = previous.filter(|owner| *owner != replica.id);
    Ok(Some(Taken::Held { record, lease, from }))
}

/// Rows as records, with their participants, in the order of `ids`.
async fn with_participants(
    conn: &mut PgConnection,
    rows: Vec<TxRow>,
    ids: &[Uuid],
) -> Result<Vec<TxRecord>, sqlx::Error> {
    let participants: Vec<ParticipantRow> = sqlx::query_as(
        "SELECT transaction_id, name, vote, outcome, detail FROM tx_participants
         WHERE transaction_id = ANY($1) ORDER BY transaction_id, position",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut by_id: HashMap<Uuid, TxRecord> = HashMap::with_capacity(rows.len());
    for row in rows {
        let id = row.id;
        by_id.insert(id, record(row)?);
    }
    for p in participants {
        let id = p.transaction_id;
        if let Some(record) = by_id.get_mut(&id) {
            record.tx.participants.push(Participant {
                name: p.name.parse().map_err(|e| corrupt(id, e))?,
                vote: p.vote,
                ack: p.outcome,
                detail: p.detail,
            });
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn corrupt(id: Uuid, what: String) -> sqlx::Error {
    sqlx::Error::Decode(format!("transaction {id}: {what}").into())
}

/// A transaction's row as a record, its participants still to be added.
fn record(row: TxRow) -> Result<TxRecord, sqlx::Error> {
    Ok(TxRecord {
        id: row.id,
        order_id: row.order_id,
        request: row.request.0,
        traceparent: row.traceparent,
        baggage: row.baggage,
        started_by: row.started_by,
        created_at: row.created_at,
        decided_at: row.decided_at,
        checkout_key: row.checkout_key,
        owner: row.owner,
        epoch: row.epoch,
        lease_expires_at: row.lease_expires_at,
        tx: Transaction {
            state: row.state,
            decision: row
                .decision
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| corrupt(row.id, e))?,
            reason: row.reason,
            participants: Vec::new(),
        },
    })
}

/// What happened to a participant's part, as the transaction's history records it.
#[derive(Debug, Clone, Copy)]
pub enum ParticipantEvent<'a> {
    /// Its vote came in (or its time ran out).
    Vote { took: Duration },
    /// It was told the decision: a phase-two attempt.
    PhaseTwo {
        attempt: u32,
        acknowledged: bool,
        /// Why it was not acknowledged.
        error: Option<&'a str>,
        took: Duration,
    },
    /// Aborted without a call: its prepare was never sent, so it has nothing to abort.
    NeverAsked,
}

/// Saves a participant's part and the event that changed it, in one statement.
#[tracing::instrument(name = "db.update_participant", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_participant(
    pool: &PgPool,
    lease: &Lease,
    position: usize,
    p: &Participant,
    event: ParticipantEvent<'_>,
) -> Result<bool, sqlx::Error> {
    let (vote, attempt, acknowledged, detail, took) = match event {
        ParticipantEvent::Vote { took } => (Some(p.vote), None, None, p.detail.as_deref(), Some(took)),
        ParticipantEvent::PhaseTwo {
            attempt,
            acknowledged,
            error,
            took,
        } => (None, Some(attempt), Some(acknowledged), error, Some(took)),
        ParticipantEvent::NeverAsked => (
            None,
            None,
            Some(true),
            Some("its prepare was never sent: nothing to abort"),
            None,
        ),
    };
    let kind = match event {
        ParticipantEvent::Vote { .. } => TransactionEventKind::Vote,
        ParticipantEvent::PhaseTwo { .. } | ParticipantEvent::NeverAsked => TransactionEventKind::PhaseTwoAttempt,
    };
    let written = sqlx::query(
        "WITH lease AS (
             UPDATE transactions SET lease_expires_at = now() + make_interval(secs => $13)
             WHERE id = $1 AND (NOT $14 OR epoch = $15) RETURNING id),
         part AS (
             UPDATE tx_participants SET vote = $3, outcome = $4, detail = $5,
                    phase2_attempts = phase2_attempts + CASE WHEN $6 THEN 1 ELSE 0 END
             WHERE transaction_id = (SELECT id FROM lease) AND position = $2 RETURNING transaction_id, name)
         INSERT INTO tx_events (transaction_id, kind, participant, vote, attempt, acknowledged, detail, duration_ms,
                                epoch, owner)
         SELECT transaction_id, $7, name, $8, $9, $10, $11, $12, $15, $16 FROM part",
    )
    .bind(lease.holder)
    .bind(position as i16)
    .bind(p.vote)
    .bind(p.ack)
    .bind(p.detail.as_deref())
    .bind(kind == TransactionEventKind::PhaseTwoAttempt)
    .bind(kind)
    .bind(vote)
    .bind(attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX)))
    .bind(acknowledged)
    .bind(detail)
    .bind(took.map(|t| t.as_secs_f64() * 1000.0))
    .bind(lease.ttl_secs())
    .bind(lease.fenced)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// The commit point: the decision, durably, before anyone hears it (and as an event
/// of the history). Refuses to change a decision already logged — whatever
/// `FENCING` says: the decision is written once — and, with fencing, refuses a
/// writer whose lease was taken over.
#[tracing::instrument(name = "db.log_decision", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn log_decision(pool: &PgPool, lease: &Lease, tx: &Transaction) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "WITH tx AS (
             UPDATE transactions SET state = $2, decision = $3::tx_decision, reason = $4, decided_at = now(), updated_at = now(),
                    lease_expires_at = now() + make_interval(secs => $5)
             WHERE id = $1 AND decision IS NULL AND (NOT $6 OR epoch = $7) RETURNING id)
         INSERT INTO tx_events (transaction_id, kind, decision, detail, epoch, owner)
         SELECT id, 'decision_logged', $3::tx_decision, $4, $7, $8 FROM tx",
    )
    .bind(lease.holder)
    .bind(tx.state)
    .bind(tx.decision.map(Decision::name))
    .bind(tx.reason.as_deref())
    .bind(lease.ttl_secs())
    .bind(lease.fenced)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The final state, once every participant has acknowledged; the lease is released
/// with it. Returns whether it was written (the lease was still this replica's).
#[tracing::instrument(name = "db.update_transaction_state", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_state(pool: &PgPool, lease: &Lease, state: TransactionState) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "WITH tx AS (
             UPDATE transactions SET state = $2, updated_at = now(), lease_expires_at = now(),
                    completed_at = CASE WHEN $2 IN ('committed', 'aborted') THEN now() ELSE completed_at END
             WHERE id = $1 AND (NOT $3 OR epoch = $4) RETURNING id)
         INSERT INTO tx_events (transaction_id, kind, state, epoch, owner) SELECT id, 'finished', $2, $4, $5 FROM tx",
    )
    .bind(lease.holder)
    .bind(state)
    .bind(lease.fenced)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Records that an unfinished transaction was taken up again, in `state`;
/// `taken_from` is the replica that held it before, when it changed hands.
#[tracing::instrument(name = "db.insert_tx_event", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_resumed(
    pool: &PgPool,
    lease: &Lease,
    state: TransactionState,
    taken_from: Option<&str>,
) -> Result<(), sqlx::Error> {
    let detail = taken_from.map(|previous| format!("taken over from {previous} at epoch {}", lease.epoch));
    sqlx::query(
        "INSERT INTO tx_events (transaction_id, kind, state, detail, epoch, owner) VALUES ($1, 'resumed', $2, $3, $4, $5)",
    )
    .bind(lease.holder)
    .bind(state)
    .bind(detail)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that this replica found its lease taken over and stopped driving the
/// transaction. Not conditional: the history says who stood down, and why.
#[tracing::instrument(name = "db.insert_tx_event", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_lease_lost(pool: &PgPool, lease: &Lease, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tx_events (transaction_id, kind, detail, epoch, owner) VALUES ($1, 'lease_lost', $2, $3, $4)",
    )
    .bind(lease.holder)
    .bind(why)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// An event of a transaction's history, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: TransactionEventKind,
    pub participant: Option<String>,
    pub vote: Option<ParticipantVote>,
    pub attempt: Option<i32>,
    pub acknowledged: Option<bool>,
    /// As text: the contract's `Decision` knows nothing of the database.
    pub decision: Option<String>,
    pub state: Option<TransactionState>,
    pub detail: Option<String>,
    pub duration_ms: Option<f64>,
    pub epoch: Option<i64>,
    pub owner: Option<String>,
}

/// The transaction's order id, and a page of its history, oldest first: the events
/// after `after` (a `seq`). `None` when there is no such transaction.
#[tracing::instrument(name = "db.fetch_tx_events", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_events(
    conn: &mut PgConnection,
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Option<(Uuid, Vec<EventRow>)>, sqlx::Error> {
    let order_id: Option<Uuid> = sqlx::query_scalar("SELECT order_id FROM transactions WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(order_id) = order_id else { return Ok(None) };
    let events = sqlx::query_as(
        "SELECT seq, at, kind, participant, vote, attempt, acknowledged, decision::text AS decision, state, detail,
                duration_ms, epoch, owner
         FROM tx_events WHERE transaction_id = $1 AND seq > coalesce($2, 0) ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(Some((order_id, events)))
}

/// Unfinished transactions that `owner` may take, for its recovery sweep: those that
/// are due and are its own, free, or with their lease run out; and, due or not, those
/// whose holder (another replica) let its lease run out — it died, or it is paused.
/// Each one returned is not due again for `reoffer_after` (see
/// `shared::supervisor::FindDue`).
#[tracing::instrument(name = "db.offer_unfinished_transactions", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn offer_unfinished(
    pool: &PgPool,
    owner: &str,
    limit: i64,
    reoffer_after: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE transactions SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM transactions
                      WHERE state IN ('preparing', 'committing', 'aborting')
                        AND ((next_attempt_at <= now()
                              AND (owner IS NULL OR owner = $3 OR lease_expires_at IS NULL OR lease_expires_at <= now()))
                             OR (owner <> $3 AND lease_expires_at <= now()))
                      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(limit)
    .bind(reoffer_after.as_secs_f64())
    .bind(owner)
    .fetch_all(pool)
    .await
}

/// How many transactions are in each state, and how many unfinished ones are in doubt.
#[tracing::instrument(name = "db.count_transactions", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn count_transactions(pool: &PgPool) -> Result<api::TransactionCounts, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'preparing') AS preparing,
                count(*) FILTER (WHERE state = 'committing') AS committing,
                count(*) FILTER (WHERE state = 'aborting') AS aborting,
                count(*) FILTER (WHERE state = 'committed') AS committed,
                count(*) FILTER (WHERE state = 'aborted') AS aborted,
                count(*) FILTER (WHERE state IN ('preparing', 'committing', 'aborting') AND EXISTS (
                    SELECT 1 FROM tx_participants p WHERE p.transaction_id = t.id
                    AND p.vote IN ('yes', 'timeout') AND p.outcome = 'pending')) AS in_doubt
         FROM transactions t",
    )
    .fetch_one(pool)
    .await
}

/// The transaction of an order.
#[tracing::instrument(name = "db.fetch_transaction_id_by_order", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_transaction_id_by_order(pool: &PgPool, order_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM transactions WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// Newest first; `in_doubt` means unfinished with a participant that may have
/// prepared and has not heard the decision.
#[tracing::instrument(name = "db.fetch_transaction_ids", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_transaction_ids(
    pool: &PgPool,
    filter: Option<TransactionFilter>,
    before: Option<Uuid>,
    older_than: Option<Duration>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT t.id FROM transactions t
         WHERE ($1::text IS NULL
            OR ($1 = 'in_doubt' AND t.state IN ('preparing', 'committing', 'aborting') AND EXISTS (
                    SELECT 1 FROM tx_participants p WHERE p.transaction_id = t.id
                    AND p.vote IN ('yes', 'timeout') AND p.outcome = 'pending'))
            OR t.state::text = $1)
           AND ($3::uuid IS NULL OR (t.created_at, t.id) < (SELECT created_at, id FROM transactions WHERE id = $3))
           AND ($4::float8 IS NULL OR t.created_at <= now() - make_interval(secs => $4))
         ORDER BY t.created_at DESC, t.id DESC LIMIT $2",
    )
    .bind(filter.map(TransactionFilter::name))
    .bind(limit)
    .bind(before)
    .bind(older_than.map(|d| d.as_secs_f64()))
    .fetch_all(pool)
    .await
}
