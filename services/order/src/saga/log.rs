//! The saga log in Postgres: written before each attempt and after each outcome.

use std::time::Duration;

use api::{AttemptOutcome, SagaEventKind};
use chrono::{DateTime, Utc};
pub use shared::domain::PricedCheckout;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    state::{Parking, SagaState, SagaStatus, StepState, StepStatus},
    steps::STEPS,
};

#[derive(Debug, Clone)]
pub struct SagaRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    pub request: PricedCheckout,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
    pub checkout_key: String,
    pub state: SagaState,
    /// Who drives it: the replica holding (or last holding) its lease, the epoch it
    /// took the saga at, and when the lease runs out.
    pub owner: Option<String>,
    pub epoch: i64,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

pub use shared::lease::{Lease, Replica};

/// What trying to take a saga found.
#[derive(Debug)]
pub enum Taken {
    /// This replica drives it now; `from` is the replica whose expired lease it took
    /// over, when another one held it.
    Held {
        saga: SagaRecord,
        lease: Lease,
        from: Option<String>,
    },
    /// Final: there is nothing to drive.
    Final(SagaRecord),
    /// Another replica holds a live lease on it.
    HeldElsewhere { owner: String },
}

/// A saga's id and its order's.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SagaIds {
    pub id: Uuid,
    pub order_id: Uuid,
}

pub struct NewSaga<'a> {
    /// The replica that logs it: it holds the saga's lease from the start, so no
    /// other replica's sweep picks a saga up before its own checkout runs it.
    pub replica: &'a Replica,
    pub checkout_key: &'a str,
    pub request: &'a PricedCheckout,
    pub traceparent: Option<&'a str>,
    pub baggage: Option<&'a str>,
}

#[derive(sqlx::FromRow)]
struct SagaRow {
    id: Uuid,
    order_id: Uuid,
    status: SagaStatus,
    reason: Option<String>,
    parked_reason: Option<String>,
    parked_compensating: bool,
    parked_on: Option<String>,
    request: sqlx::types::Json<PricedCheckout>,
    traceparent: Option<String>,
    baggage: Option<String>,
    checkout_key: String,
    owner: Option<String>,
    epoch: i64,
    lease_expires_at: Option<DateTime<Utc>>,
}

/// A saga's row as taking it found it (locked), and what came of it.
#[derive(sqlx::FromRow)]
struct TakenRow {
    #[sqlx(flatten)]
    saga: SagaRow,
    /// The new epoch, when this replica took it.
    taken_epoch: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    status: StepStatus,
    attempts: i32,
    compensation_attempts: i32,
    last_error: Option<String>,
}

/// Creates the saga and its steps unless one exists for the checkout key; returns
/// the saga's ids either way.
#[tracing::instrument(name = "db.insert_saga", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_saga(pool: &PgPool, new: NewSaga<'_>) -> Result<SagaIds, sqlx::Error> {
    let mut tx = base::db::begin(pool).await?;
    let id = Uuid::now_v7();
    let inserted: Option<SagaIds> = sqlx::query_as(
        "WITH saga AS (
             INSERT INTO sagas (id, order_id, checkout_key, request, traceparent, baggage, owner, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
             ON CONFLICT (checkout_key) DO NOTHING RETURNING id, order_id),
         started AS (INSERT INTO saga_events (saga_id, kind) SELECT id, 'saga_started' FROM saga)
         SELECT id, order_id FROM saga",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(new.checkout_key)
    .bind(sqlx::types::Json(new.request))
    .bind(new.traceparent)
    .bind(new.baggage)
    .bind(&new.replica.id)
    .bind(new.replica.lease_ttl.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ids) = inserted else {
        tx.rollback().await?;
        return sqlx::query_as("SELECT id, order_id FROM sagas WHERE checkout_key = $1")
            .bind(new.checkout_key)
            .fetch_one(pool)
            .await;
    };
    let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
    sqlx::query(
        "INSERT INTO saga_steps (saga_id, position, step)
         SELECT $1, (ordinality - 1)::smallint, step FROM unnest($2::text[]) WITH ORDINALITY AS s(step, ordinality)",
    )
    .bind(ids.id)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}

#[tracing::instrument(name = "db.fetch_saga_ids_by_key", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_saga_ids_by_key(pool: &PgPool, checkout_key: &str) -> Result<Option<SagaIds>, sqlx::Error> {
    sqlx::query_as("SELECT id, order_id FROM sagas WHERE checkout_key = $1")
        .bind(checkout_key)
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(name = "db.fetch_saga_id_by_order", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_saga_id_by_order(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM sagas WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

const SAGA_COLUMNS: &str = "id, order_id, status, reason, parked_reason, parked_compensating, parked_on, request,
     traceparent, baggage, checkout_key, owner, epoch, lease_expires_at";

#[tracing::instrument(name = "db.fetch_saga", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_saga(conn: &mut PgConnection, id: Uuid) -> Result<Option<SagaRecord>, sqlx::Error> {
    let row: Option<SagaRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SAGA_COLUMNS} FROM sagas WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(with_steps(conn, row).await?))
}

/// Takes the saga for `replica` if it is unfinished and its lease is free, its own,
/// or run out — raising its epoch — and reads it as the locked row says, with its
/// steps (read once the saga is held, so no earlier holder's write is missed).
#[tracing::instrument(name = "db.take_saga", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn take_saga(conn: &mut PgConnection, id: Uuid, replica: &Replica) -> Result<Option<Taken>, sqlx::Error> {
    let row: Option<TakenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH old AS (SELECT {SAGA_COLUMNS} FROM sagas WHERE id = $1 FOR UPDATE),
         taken AS (
             UPDATE sagas s SET owner = $2, epoch = old.epoch + 1, lease_expires_at = now() + make_interval(secs => $3)
             FROM old
             WHERE s.id = old.id AND old.status IN ('running', 'compensating', 'parked')
               AND (old.owner IS NULL OR old.owner = $2 OR old.lease_expires_at IS NULL OR old.lease_expires_at <= now())
             RETURNING s.epoch)
         SELECT old.*, (SELECT epoch FROM taken) AS taken_epoch FROM old"
    )))
    .bind(id)
    .bind(&replica.id)
    .bind(replica.lease_ttl.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(TakenRow { saga, taken_epoch }) = row else {
        return Ok(None);
    };
    let Some(epoch) = taken_epoch else {
        if saga.status.is_final() {
            return Ok(Some(Taken::Final(with_steps(conn, saga).await?)));
        }
        return Ok(Some(Taken::HeldElsewhere {
            owner: saga.owner.unwrap_or_default(),
        }));
    };
    let from = saga.owner.clone().filter(|owner| *owner != replica.id);
    let mut saga = with_steps(conn, saga).await?;
    saga.owner = Some(replica.id.clone());
    saga.epoch = epoch;
    let lease = Lease::new(saga.id, epoch, replica);
    Ok(Some(Taken::Held { saga, lease, from }))
}

async fn with_steps(conn: &mut PgConnection, row: SagaRow) -> Result<SagaRecord, sqlx::Error> {
    let steps: Vec<StepRow> = sqlx::query_as(
        "SELECT status, attempts, compensation_attempts, last_error FROM saga_steps
         WHERE saga_id = $1 ORDER BY position",
    )
    .bind(row.id)
    .fetch_all(conn)
    .await?;
    let steps = steps
        .into_iter()
        .map(|s| StepState {
            status: s.status,
            attempts: s.attempts.max(0) as u32,
            compensation_attempts: s.compensation_attempts.max(0) as u32,
            last_error: s.last_error,
        })
        .collect();
    Ok(SagaRecord {
        id: row.id,
        order_id: row.order_id,
        request: row.request.0,
        traceparent: row.traceparent,
        baggage: row.baggage,
        checkout_key: row.checkout_key,
        owner: row.owner,
        epoch: row.epoch,
        lease_expires_at: row.lease_expires_at,
        state: SagaState::from_parts(
            row.status,
            row.reason,
            Parking {
                reason: row.parked_reason,
                compensating: row.parked_compensating,
                // Written from a participant's name; anything else was never written here.
                on: row.parked_on.and_then(|name| name.parse().ok()),
            },
            steps,
        ),
    })
}

/// An attempt of a step or of its compensation, as its history records it: started
/// (logged before the call), or ended with what the call established.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEvent<'a> {
    pub kind: SagaEventKind,
    pub attempt: u32,
    pub ended: Option<Ended<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    pub outcome: AttemptOutcome,
    /// The participant's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub detail: Option<&'a str>,
    pub took: Duration,
}

/// Saves a step's state and the attempt event that changed it, in one statement that
/// also renews the lease — if the lease is still this replica's (with fencing on: its
/// epoch is the saga's). Returns whether it was written; `false` means the lease was
/// taken over.
#[tracing::instrument(name = "db.update_saga_step", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_step(
    pool: &PgPool,
    lease: &Lease,
    position: usize,
    step: &StepState,
    event: AttemptEvent<'_>,
) -> Result<bool, sqlx::Error> {
    let ended = event.ended;
    let written = sqlx::query(
        "WITH lease AS (
             UPDATE sagas SET lease_expires_at = now() + make_interval(secs => $13)
             WHERE id = $1 AND (NOT $14 OR epoch = $15) RETURNING id),
         step AS (
             UPDATE saga_steps SET status = $3, attempts = $4, compensation_attempts = $5, last_error = $6, updated_at = now()
             WHERE saga_id = (SELECT id FROM lease) AND position = $2 RETURNING saga_id, step)
         INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
         SELECT saga_id, $7, step, $8, $9, $10, $11, $12, $15, $16 FROM step",
    )
    .bind(lease.holder)
    .bind(position as i16)
    .bind(step.status)
    .bind(step.attempts as i32)
    .bind(step.compensation_attempts as i32)
    .bind(step.last_error.as_deref())
    .bind(event.kind)
    .bind(i32::try_from(event.attempt).unwrap_or(i32::MAX))
    .bind(ended.map(|e| e.outcome))
    .bind(ended.and_then(|e| e.status_code).map(|code| code as i16))
    .bind(ended.and_then(|e| e.detail))
    .bind(ended.map(|e| e.took.as_secs_f64() * 1000.0))
    .bind(lease.ttl_secs())
    .bind(lease.fenced)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Records that this replica found its lease taken over (a write refused, or a
/// participant refusing its fencing token) and stopped driving the saga. Not
/// conditional: the history says who stood down, and why.
#[tracing::instrument(name = "db.insert_saga_event", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_lease_lost(pool: &PgPool, lease: &Lease, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO saga_events (saga_id, kind, detail, epoch, owner) VALUES ($1, 'lease_lost', $2, $3, $4)")
        .bind(lease.holder)
        .bind(why)
        .bind(lease.epoch)
        .bind(&lease.owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records that an unfinished saga was taken up again, from `from`; `taken_from` is
/// the replica that held it before, when it changed hands.
#[tracing::instrument(name = "db.insert_saga_event", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn insert_resumed(
    pool: &PgPool,
    lease: &Lease,
    from: SagaStatus,
    taken_from: Option<&str>,
) -> Result<(), sqlx::Error> {
    let detail = taken_from.map(|previous| format!("taken over from {previous} at epoch {}", lease.epoch));
    sqlx::query(
        "INSERT INTO saga_events (saga_id, kind, status, detail, epoch, owner) VALUES ($1, 'resumed', $2, $3, $4, $5)",
    )
    .bind(lease.holder)
    .bind(from)
    .bind(detail)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// An event of a saga's history, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: SagaEventKind,
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub outcome: Option<AttemptOutcome>,
    pub status_code: Option<i16>,
    pub detail: Option<String>,
    pub duration_ms: Option<f64>,
    pub status: Option<SagaStatus>,
    pub participant: Option<String>,
    pub epoch: Option<i64>,
    pub owner: Option<String>,
}

/// A page of a saga's history, oldest first: the events after `after` (a `seq`).
#[tracing::instrument(name = "db.fetch_saga_events", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_events(
    conn: &mut PgConnection,
    saga_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, at, kind, step, attempt, outcome, status_code, detail, duration_ms, status, participant, epoch, owner
         FROM saga_events WHERE saga_id = $1 AND seq > coalesce($2, 0) ORDER BY seq LIMIT $3",
    )
    .bind(saga_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(name = "db.fetch_saga_ids", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_saga_ids(conn: &mut PgConnection, saga_id: Uuid) -> Result<Option<SagaIds>, sqlx::Error> {
    sqlx::query_as("SELECT id, order_id FROM sagas WHERE id = $1")
        .bind(saga_id)
        .fetch_optional(conn)
        .await
}

/// Saves the saga's status, and the change as an event of its history, if the lease
/// is still this replica's; a parked saga is due again after `retry_parked_in`. A
/// saga that stops here (parked or final) has its lease released, so any replica may
/// take it up when it is due. Returns whether it was written.
#[tracing::instrument(name = "db.update_saga", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn update_saga(
    pool: &PgPool,
    lease: &Lease,
    state: &SagaState,
    retry_parked_in: Duration,
) -> Result<bool, sqlx::Error> {
    let due_in = if state.status == SagaStatus::Parked {
        retry_parked_in.as_secs_f64()
    } else {
        0.0
    };
    let stops = state.status == SagaStatus::Parked || state.status.is_final();
    let written = sqlx::query(
        "WITH saga AS (
             UPDATE sagas SET status = $2, reason = $3, parked_reason = $6, parked_compensating = $4, parked_on = $7,
                    next_attempt_at = now() + make_interval(secs => $5), updated_at = now(),
                    lease_expires_at = CASE WHEN $9 THEN now() ELSE now() + make_interval(secs => $10) END
             WHERE id = $1 AND (NOT $11 OR epoch = $12) RETURNING id)
         INSERT INTO saga_events (saga_id, kind, status, detail, participant, epoch, owner)
         SELECT id, 'status_changed', $2, $8, $7, $12, $13 FROM saga",
    )
    .bind(lease.holder)
    .bind(state.status)
    .bind(state.reason.as_deref())
    .bind(state.parked_compensating)
    .bind(due_in)
    .bind(state.parked_reason.as_deref())
    .bind(state.parked_on.map(api::Participant::name))
    .bind(state.parked_reason.as_deref().or(state.reason.as_deref()))
    .bind(stops)
    .bind(lease.ttl_secs())
    .bind(lease.fenced)
    .bind(lease.epoch)
    .bind(&lease.owner)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Which sagas a listing shows; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct SagaFilter {
    pub status: Option<SagaStatus>,
    /// `Some(true)`: only unfinished sagas with a step or compensation past its first
    /// attempt; `Some(false)`: only the others.
    pub retrying: Option<bool>,
    /// Only sagas started at least this long ago.
    pub older_than: Option<Duration>,
    /// Only sagas older than this one (the last of the previous page).
    pub after: Option<Uuid>,
}

/// A saga as a listing shows it: its row and the most attempts any step has taken.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SagaListing {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: SagaStatus,
    pub reason: Option<String>,
    pub parked_reason: Option<String>,
    pub parked_on: Option<String>,
    pub traceparent: Option<String>,
    pub max_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of sagas, newest first, from the `sagas_newest` index.
#[tracing::instrument(name = "db.list_sagas", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn list_sagas(pool: &PgPool, filter: &SagaFilter, limit: i64) -> Result<Vec<SagaListing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.order_id, s.status, s.reason, s.parked_reason, s.parked_on, s.traceparent,
                s.created_at, s.updated_at, m.max_attempts
         FROM sagas s
         CROSS JOIN LATERAL (SELECT coalesce(max(greatest(st.attempts, st.compensation_attempts)), 0) AS max_attempts
                             FROM saga_steps st WHERE st.saga_id = s.id) m
         WHERE ($1::saga_status IS NULL OR s.status = $1)
           AND ($2::boolean IS NULL
                OR $2 = (s.status IN ('running', 'compensating', 'parked') AND m.max_attempts > 1))
           AND ($3::float8 IS NULL OR s.created_at <= now() - make_interval(secs => $3))
           AND ($4::uuid IS NULL OR (s.created_at, s.id) < (SELECT c.created_at, c.id FROM sagas c WHERE c.id = $4))
         ORDER BY s.created_at DESC, s.id DESC
         LIMIT $5",
    )
    .bind(filter.status)
    .bind(filter.retrying)
    .bind(filter.older_than.map(|d| d.as_secs_f64()))
    .bind(filter.after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many sagas are in each status, and how many unfinished ones are retrying.
#[tracing::instrument(name = "db.count_sagas", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn count_sagas(pool: &PgPool) -> Result<api::SagaCounts, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'running') AS running,
                count(*) FILTER (WHERE status = 'compensating') AS compensating,
                count(*) FILTER (WHERE status = 'parked') AS parked,
                count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
                count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                count(*) FILTER (WHERE status IN ('running', 'compensating', 'parked') AND EXISTS (
                    SELECT 1 FROM saga_steps st WHERE st.saga_id = s.id
                    AND greatest(st.attempts, st.compensation_attempts) > 1)) AS retrying
         FROM sagas s",
    )
    .fetch_one(pool)
    .await
}

/// Unfinished sagas that `owner` may take, for its recovery sweep: those that are
/// due — running or compensating ones a crash left behind, parked ones whose wait is
/// over — and are its own, free, or with their lease run out; and, due or not, the
/// running or compensating ones whose holder (another replica) let its lease run
/// out: it died, or it is paused. Each one returned is not due again for
/// `reoffer_after` (see `shared::supervisor::FindDue`).
#[tracing::instrument(name = "db.offer_due_sagas", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn offer_due_sagas(
    pool: &PgPool,
    owner: &str,
    limit: i64,
    reoffer_after: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sagas SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM sagas
                      WHERE status IN ('running', 'compensating', 'parked')
                        AND ((next_attempt_at <= now()
                              AND (owner IS NULL OR owner = $3 OR lease_expires_at IS NULL OR lease_expires_at <= now()))
                             OR (status <> 'parked' AND owner <> $3 AND lease_expires_at <= now()))
                      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(limit)
    .bind(reoffer_after.as_secs_f64())
    .bind(owner)
    .fetch_all(pool)
    .await
}

/// Makes every saga parked waiting for `participant` due now: it has recovered (its
/// circuit breaker closed again), so the sweep resumes them at once instead of after
/// their park wait. Returns how many.
#[tracing::instrument(name = "db.update_sagas_parked_on", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn wake_parked_on(pool: &PgPool, participant: &str) -> Result<u64, sqlx::Error> {
    let woken = sqlx::query(
        "UPDATE sagas SET next_attempt_at = now()
         WHERE status = 'parked' AND parked_on = $1 AND next_attempt_at > now()",
    )
    .bind(participant)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(woken)
}
