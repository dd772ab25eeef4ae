//! Two-phase commit, participant side, shared by every service.
//!
//! ```text
//! POST /tpc/{gid}/prepare   BEGIN; INSERT tpc_log (the id claimed); no tombstone?; the service's
//!                           work; PREPARE TRANSACTION 'gid'
//!                           → 200 vote yes (checked in pg_prepared_xacts), or 4xx vote no
//! POST /tpc/{gid}/commit    COMMIT PREPARED 'gid'   (again, or at once by another session:
//!                           200 if tpc_log says committed)
//! POST /tpc/{gid}/abort     tombstone; wait for a prepare under way; ROLLBACK PREPARED 'gid'
//!                           (again, or never prepared: 200)
//! GET  /tpc/prepared        this database's prepared transactions and their age
//! ```
//!
//! Each call may carry the coordinator's `Fencing-Token` (`<transaction id>:<epoch>`):
//! prepare checks and raises it in the transaction it prepares; commit and abort
//! refuse a lower epoch than the highest seen (409 `stale-fencing-token`).
//!
//! The global transaction id is the idempotency key of these calls. Locks taken by
//! the work stay held from PREPARE until the decision arrives: that is two-phase
//! commit's blocking, and `/tpc/prepared` shows it. A [`TpcResolver`] actor asks the
//! coordinator about transactions prepared too long ago and finishes them.
//!
//! The crate sits above the service platform (`shared`) and below the services:
//!
//! - this file: the global transaction id ([`Gid`]), the service's part
//!   ([`TpcWork`]), the endpoints ([`routes`]) and prepare / commit / abort on
//!   PostgreSQL prepared transactions;
//! - [`document`]: the endpoints' OpenAPI operations, from the service's types;
//! - [`resolver`]: the actor that resolves in-doubt transactions ([`TpcResolver`]).

mod document;
mod resolver;

pub use document::openapi;
pub use resolver::{TpcResolver, start_resolver};

use std::{future::Future, time::Duration};

use actix_web::{HttpRequest, HttpResponse, web};
use api::{
    Already, Decision, FinishAnswer, FinishOutcome, HeldLock, NoFields, Participant, PrepareAnswer, Prepared,
    PreparedList, PreparedTransaction, Vote, headers::FencingToken,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use base::{ErrorCode, Problem};
use client::resilience::deadline;
use shared::{
    fault::FaultPoint,
    idempotency::{Fence, IdempotencyStore, check_fence, fencing_token, highest_epoch, stale_token},
    web::{OptionalJson, ok},
};

/// A global transaction id: `txlab_<transaction id, 32 hex>_<participant>`. Unique
/// per cluster (participants may share one), and safe to splice into SQL because it
/// is checked against exactly this shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gid {
    pub transaction_id: Uuid,
    pub participant: Participant,
}

impl Gid {
    pub fn new(transaction_id: Uuid, participant: Participant) -> Gid {
        Gid {
            transaction_id,
            participant,
        }
    }

    pub fn parse(raw: &str) -> Result<Gid, String> {
        let bad = || format!("{raw:?} is not a global transaction id (txlab_<32 hex>_<participant>)");
        let rest = raw.strip_prefix("txlab_").ok_or_else(bad)?;
        let (hex, participant) = rest.split_once('_').ok_or_else(bad)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let participant = participant.parse::<Participant>().map_err(|_| bad())?;
        let transaction_id = Uuid::parse_str(hex).map_err(|_| bad())?;
        Ok(Gid::new(transaction_id, participant))
    }

    pub fn as_string(&self) -> String {
        format!("txlab_{}_{}", self.transaction_id.simple(), self.participant)
    }

    /// The id as an SQL string literal (it cannot be a bind parameter).
    fn literal(&self) -> String {
        format!("'{}'", self.as_string())
    }
}

/// A service's part in a 2PC checkout: the work done inside the transaction that
/// is then prepared. Refusing (a declined card, no stock) votes no.
pub trait TpcWork: 'static {
    const PARTICIPANT: Participant;
    const PREPARE_OPERATION: &'static str;
    const COMMIT_OPERATION: &'static str;
    const ABORT_OPERATION: &'static str;
    /// What the coordinator sends with prepare.
    type Payload: serde::de::DeserializeOwned + utoipa::ToSchema;
    /// What the participant says it prepared (the `detail` of its yes vote).
    type Detail: Serialize + utoipa::ToSchema + Send + 'static;

    fn prepare(
        &self,
        conn: &mut PgConnection,
        transaction_id: Uuid,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::Detail, Problem>>;

    /// The keys of the rows the prepared transaction `xid` holds locked (for
    /// inventory, the SKUs), read from the rows' lock holder (`xmax`); none by default.
    fn held_rows(conn: &mut PgConnection, xid: &str) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> {
        let _ = (conn, xid);
        async { Ok(Vec::new()) }
    }
}

/// The routes, for a service whose work is `W` (registered as `web::Data<W>`).
pub fn routes<W: TpcWork>(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tpc/{gid}/prepare")
            .route(web::post().to(prepare::<W>))
            .wrap(FaultPoint::new(W::PREPARE_OPERATION)),
    )
    .service(
        web::resource("/tpc/{gid}/commit")
            .route(web::post().to(commit::<W>))
            .wrap(FaultPoint::new(W::COMMIT_OPERATION)),
    )
    .service(
        web::resource("/tpc/{gid}/abort")
            .route(web::post().to(abort::<W>))
            .wrap(FaultPoint::new(W::ABORT_OPERATION)),
    )
    .service(web::resource("/tpc/prepared").route(web::get().to(list_prepared::<W>)));
}

fn parse_gid<W: TpcWork>(raw: &str) -> Result<Gid, Problem> {
    let gid = Gid::parse(raw).map_err(Problem::invalid)?;
    if gid.participant != W::PARTICIPANT {
        return Err(Problem::invalid(format!(
            "{raw} belongs to participant {}, this is {}",
            gid.participant,
            W::PARTICIPANT
        )));
    }
    Ok(gid)
}

#[tracing::instrument(name = "db.is_prepared", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
async fn is_prepared(conn: &mut PgConnection, gid: &Gid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database())",
    )
    .bind(gid.as_string())
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.is_aborted", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
async fn is_aborted(conn: &mut PgConnection, gid: &Gid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tpc_aborted WHERE gid = $1)")
        .bind(gid.as_string())
        .fetch_one(conn)
        .await
}

/// Claims `gid` in `tpc_log` inside the current transaction; false if a committed
/// row has it already. Waits (up to `lock_timeout`) while another transaction that
/// claimed it is open or prepared: that wait is the barrier between a prepare and an
/// abort of the same id.
#[tracing::instrument(name = "db.insert_claim", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
async fn insert_claim(conn: &mut PgConnection, gid: &Gid) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO tpc_log (gid, transaction_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(gid.as_string())
        .bind(gid.transaction_id)
        .execute(conn)
        .await?;
    Ok(inserted.rows_affected() == 1)
}

#[tracing::instrument(name = "db.is_committed", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
async fn is_committed(conn: &mut PgConnection, gid: &Gid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = $1)")
        .bind(gid.as_string())
        .fetch_one(conn)
        .await
}

fn vote_yes<D: Serialize>(gid: &Gid, detail: Prepared<D>) -> Result<HttpResponse, Problem> {
    ok(&PrepareAnswer {
        gid: gid.as_string(),
        vote: Vote::Yes,
        detail,
    })
}

/// Phase one: do the work and prepare it, holding its locks. It runs in a task of
/// its own: a caller that hangs up must not leave a pooled connection half-way
/// through a transaction. The body is read as `W::Payload` only once the id is
/// claimed: a repeated prepare is answered by the id alone (`already`), whatever it
/// carries.
async fn prepare<W: TpcWork>(
    req: HttpRequest,
    work: web::Data<W>,
    pool: web::Data<PgPool>,
    gid: web::Path<String>,
    payload: web::Json<serde_json::Value>,
) -> Result<HttpResponse, Problem> {
    let gid = parse_gid::<W>(&gid)?;
    let fence = fence_of::<W>(&req)?;
    detached(
        "prepare",
        prepare_detached(work, pool, gid, fence, payload.into_inner()),
    )
    .await
}

/// A call's fencing token, with the scope its holder's highest epoch is kept under
/// (the service): `None` without one, or with `FENCING=off`.
struct Fenced {
    scope: &'static str,
    token: FencingToken,
}

fn fence_of<W: TpcWork>(req: &HttpRequest) -> Result<Option<Fenced>, Problem> {
    let fencing = req
        .app_data::<web::Data<IdempotencyStore>>()
        .is_some_and(|store| store.fencing);
    Ok(fencing_token(req.headers(), fencing)?.map(|token| Fenced {
        scope: W::PARTICIPANT.name(),
        token,
    }))
}

/// Runs a 2PC step in a task of its own, in the current span: the task outlives a
/// caller that gives up (so no pooled connection is left half-way through a step),
/// but not the caller's deadline: it takes the deadline along, and the database
/// enforces it (`bound_by_deadline`).
async fn detached(
    step: &'static str,
    work: impl Future<Output = Result<HttpResponse, Problem>> + 'static,
) -> Result<HttpResponse, Problem> {
    let work = work.instrument(tracing::Span::current());
    let task = match deadline::current() {
        Some(deadline) => actix_rt::spawn(deadline::within(deadline, work)),
        None => actix_rt::spawn(work),
    };
    task.await
        .map_err(|e| Problem::internal(anyhow::anyhow!("{step} task failed: {e}")))?
}

#[tracing::instrument(name = "tpc.prepare", skip_all, fields(tx.id, tx.phase = "prepare", tx.participant = W::PARTICIPANT.name(), tx.vote))]
async fn prepare_detached<W: TpcWork>(
    work: web::Data<W>,
    pool: web::Data<PgPool>,
    gid: Gid,
    fence: Option<Fenced>,
    payload: serde_json::Value,
) -> Result<HttpResponse, Problem> {
    let span = tracing::Span::current();
    span.record("tx.id", tracing::field::display(gid.transaction_id));
    let mut conn = pool.acquire().await?;
    if is_prepared(&mut conn, &gid).await? {
        span.record("tx.vote", Vote::Yes.name());
        return vote_yes::<W::Detail>(
            &gid,
            Prepared::Again {
                already: Already::Prepared,
            },
        );
    }
    if is_committed(&mut conn, &gid).await? {
        span.record("tx.vote", Vote::Yes.name());
        return vote_yes::<W::Detail>(
            &gid,
            Prepared::Again {
                already: Already::Committed,
            },
        );
    }
    if is_aborted(&mut conn, &gid).await? {
        span.record("tx.vote", Vote::No.name());
        return Err(aborted_before_prepare(&gid));
    }
    // A plain BEGIN on a pooled connection: after PREPARE the session is outside any
    // transaction again, and the connection goes back to the pool clean.
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let outcome = prepare_in_transaction(work.get_ref(), &mut conn, &gid, fence.as_ref(), payload).await;
    match outcome {
        Ok(detail) => {
            // A PREPARE inside an aborted transaction "succeeds" by rolling back:
            // vote yes only if Postgres really holds it.
            if !is_prepared(&mut conn, &gid).await? {
                span.record("tx.vote", Vote::No.name());
                return Err(Problem::new(
                    ErrorCode::Conflict,
                    "the transaction could not be prepared; voting no",
                ));
            }
            span.record("tx.vote", Vote::Yes.name());
            tracing::info!(gid = %gid.as_string(), "prepared; locks held until the decision");
            vote_yes(&gid, Prepared::Work(detail))
        }
        Err(problem) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            span.record("tx.vote", Vote::No.name());
            Err(problem)
        }
    }
}

async fn prepare_in_transaction<W: TpcWork>(
    work: &W,
    conn: &mut PgConnection,
    gid: &Gid,
    fence: Option<&Fenced>,
    payload: serde_json::Value,
) -> Result<W::Detail, Problem> {
    // Waiting behind another prepared transaction's locks is the point of the demo,
    // but not forever: after 2 s the vote is no.
    sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *conn).await?;
    bound_by_deadline(conn).await?;
    // The barrier against an abort that overtakes this prepare (its caller gave up
    // waiting): the id is claimed first, so an abort from now on waits for this
    // transaction to end (see `wait_for_prepare`), and a tombstone committed before
    // the claim is seen just after it. No prepared transaction outlives its abort.
    if !insert_claim(conn, gid).await.map_err(|e| timed_out(Problem::from(e)))? {
        // Committed since the checks before BEGIN, by a request with the same id.
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("{} was prepared and committed by another request", gid.as_string()),
        ));
    }
    if is_aborted(conn, gid).await? {
        return Err(aborted_before_prepare(gid));
    }
    // The coordinator's epoch, checked and raised with the work it prepares.
    if let Some(Fenced { scope, token }) = fence
        && let Fence::Stale { highest } = check_fence(conn, scope, &token.holder, token.epoch)
            .await
            .map_err(|e| timed_out(Problem::from(e)))?
    {
        return Err(stale_token(token, highest));
    }
    let payload: W::Payload =
        serde_json::from_value(payload).map_err(|e| Problem::new(ErrorCode::InvalidJson, e.to_string()))?;
    bound_by_deadline(conn).await?;
    let detail = work
        .prepare(conn, gid.transaction_id, payload)
        .await
        .map_err(timed_out)?;
    bound_by_deadline(conn).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE TRANSACTION {}", gid.literal())))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if base::db::is_out_of_prepared_slots(&e) {
                no_prepared_slot()
            } else {
                Problem::from(e)
            }
        })?;
    Ok(detail)
}

/// Bounds the statements from here on by what is left of the caller's deadline, if it
/// sent one: a statement that would run past it is cancelled (`statement_timeout`,
/// set again before each step, so a prepare waiting on locks stops about when its
/// caller gives up) and the transaction is rolled back; nothing is prepared once
/// the deadline has passed.
async fn bound_by_deadline(conn: &mut PgConnection) -> Result<(), Problem> {
    let Some(left) = deadline::remaining() else {
        return Ok(());
    };
    if left.is_zero() {
        return Err(past_deadline());
    }
    let millis = left.as_millis().clamp(1, i32::MAX as u128);
    let sql = format!("SET LOCAL statement_timeout = {millis}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

fn past_deadline() -> Problem {
    Problem::new(
        ErrorCode::DeadlineExceeded,
        "the caller's deadline passed before the prepare; nothing is prepared",
    )
}

/// A lock wait that gave up becomes 423 (a no vote); a statement cancelled at the
/// caller's deadline (57014) becomes 504.
fn timed_out(problem: Problem) -> Problem {
    match problem.source.as_ref().and_then(|e| e.downcast_ref::<sqlx::Error>()) {
        Some(e) if base::db::is_lock_timeout(e) => locked(),
        Some(e) if base::db::is_statement_timeout(e) => past_deadline(),
        _ => problem,
    }
}

fn aborted_before_prepare(gid: &Gid) -> Problem {
    Problem::new(
        ErrorCode::ActionAfterCompensation,
        format!("{} was aborted before this prepare arrived; voting no", gid.as_string()),
    )
}

/// The cluster holds as many prepared transactions as `max_prepared_transactions`
/// allows, all awaiting their decisions: 2PC's blocking, reaching the database's limit.
fn no_prepared_slot() -> Problem {
    Problem::new(
        ErrorCode::ServiceUnavailable,
        "every prepared-transaction slot of the database (max_prepared_transactions) is held by a \
         transaction awaiting its decision; voting no",
    )
    .with_retry_after(1)
}

fn locked() -> Problem {
    Problem::new(
        ErrorCode::RowsLocked,
        "rows this transaction needs are locked by another (possibly in-doubt) transaction; voting no",
    )
    .with_retry_after(1)
}

/// Phase two, commit. Repeating it is harmless.
#[tracing::instrument(name = "tpc.commit", skip_all, fields(tx.id, tx.phase = "commit", tx.participant = W::PARTICIPANT.name()))]
async fn commit<W: TpcWork>(
    req: HttpRequest,
    _: OptionalJson<NoFields>,
    pool: web::Data<PgPool>,
    gid: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let gid = parse_gid::<W>(&gid)?;
    tracing::Span::current().record("tx.id", tracing::field::display(gid.transaction_id));
    refuse_stale(&pool, fence_of::<W>(&req)?).await?;
    finish_detached(pool, gid, Decision::Commit).await
}

/// Phase two cannot share a transaction with the fencing check (`COMMIT PREPARED`
/// runs outside any; the prepared transaction itself holds its holder's row): a
/// lower epoch than the highest seen is refused, none is raised. Phase two only
/// ever carries a decision written once in the coordinator's log.
async fn refuse_stale(pool: &PgPool, fence: Option<Fenced>) -> Result<(), Problem> {
    let Some(Fenced { scope, token }) = fence else {
        return Ok(());
    };
    match highest_epoch(&mut *pool.acquire().await?, scope, &token.holder).await? {
        Some(highest) if highest > token.epoch => Err(stale_token(&token, highest)),
        _ => Ok(()),
    }
}

/// Phase two, abort. Repeating it, or aborting what was never prepared, is harmless.
#[tracing::instrument(name = "tpc.abort", skip_all, fields(tx.id, tx.phase = "abort", tx.participant = W::PARTICIPANT.name()))]
async fn abort<W: TpcWork>(
    req: HttpRequest,
    _: OptionalJson<NoFields>,
    pool: web::Data<PgPool>,
    gid: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let gid = parse_gid::<W>(&gid)?;
    tracing::Span::current().record("tx.id", tracing::field::display(gid.transaction_id));
    refuse_stale(&pool, fence_of::<W>(&req)?).await?;
    finish_detached(pool, gid, Decision::Abort).await
}

/// Phase two runs [`detached`], as prepare does: a caller cut off at its deadline
/// must not leave a pooled connection half-way through a step (inside the abort's
/// probe transaction, say).
async fn finish_detached(pool: web::Data<PgPool>, gid: Gid, decision: Decision) -> Result<HttpResponse, Problem> {
    detached(decision.name(), async move {
        let mut conn = pool.acquire().await?;
        finish(&mut conn, &gid, decision).await
    })
    .await
}

async fn finish(conn: &mut PgConnection, gid: &Gid, decision: Decision) -> Result<HttpResponse, Problem> {
    let outcome = |outcome| {
        ok(&FinishAnswer {
            gid: gid.as_string(),
            outcome,
        })
    };
    if decision == Decision::Abort {
        // First, so that a prepare still on its way votes no when it arrives.
        sqlx::query("INSERT INTO tpc_aborted (gid) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(gid.as_string())
            .execute(&mut *conn)
            .await?;
        if !is_prepared(conn, gid).await? {
            wait_for_prepare(conn, gid).await?;
        }
    }
    finish_prepared(conn, gid, decision).await?;
    let committed = is_committed(conn, gid).await?;
    match (decision, committed) {
        (Decision::Commit, true) => outcome(FinishOutcome::Committed),
        (Decision::Abort, false) => outcome(FinishOutcome::Aborted),
        (Decision::Commit, false) => Err(Problem::new(
            ErrorCode::Conflict,
            format!(
                "{} was never prepared here, or was rolled back; it cannot commit",
                gid.as_string()
            ),
        )),
        (Decision::Abort, true) => Err(Problem::new(
            ErrorCode::Conflict,
            format!("{} is already committed; it cannot abort", gid.as_string()),
        )),
    }
}

/// `COMMIT PREPARED` or `ROLLBACK PREPARED`, if `gid` is prepared here. Another
/// session may finish the same id at the same moment (the coordinator telling it
/// again while this participant's in-doubt resolver acts, say): PostgreSQL then
/// answers "does not exist" — finished meanwhile, and what `tpc_log` says tells how —
/// or "is busy" — being finished right now: looked at again shortly, and answered 423
/// (try again) if it is still busy. Neither is an error of this request.
async fn finish_prepared(conn: &mut PgConnection, gid: &Gid, decision: Decision) -> Result<(), Problem> {
    let sql = match decision {
        Decision::Commit => format!("COMMIT PREPARED {}", gid.literal()),
        Decision::Abort => format!("ROLLBACK PREPARED {}", gid.literal()),
    };
    for wait_ms in [10, 20, 40, 80, 160, 320, 0] {
        match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut *conn).await {
            Ok(_) => {
                tracing::info!(gid = %gid.as_string(), %decision, "prepared transaction finished");
                return Ok(());
            }
            Err(e) if base::db::is_no_such_prepared(&e) => return Ok(()),
            Err(e) if base::db::is_prepared_busy(&e) && wait_ms > 0 => {
                tracing::info!(gid = %gid.as_string(), "another session is finishing it; looking again");
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(e) if base::db::is_prepared_busy(&e) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Problem::new(
        ErrorCode::RowsLocked,
        format!("{} is being finished by another session; try again", gid.as_string()),
    )
    .with_retry_after(1))
}

/// An abort that found nothing prepared: if a prepare of the same id is still under
/// way (its caller gave up on it; the work runs on), waits for it to end by meeting
/// its claim on the id in `tpc_log`. It ends rolled back (nothing to do) or prepared
/// (the caller rolls it back); still running after a second, the abort is answered
/// 423 and retried.
async fn wait_for_prepare(conn: &mut PgConnection, gid: &Gid) -> Result<(), Problem> {
    let mut probe = conn.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '1s'")
        .execute(&mut *probe)
        .await?;
    let met = insert_claim(&mut probe, gid).await;
    // A probe only: the row must not stay, it would mean "committed".
    probe.rollback().await?;
    match met {
        Ok(_) => Ok(()),
        Err(e) if base::db::is_lock_timeout(&e) && !is_prepared(conn, gid).await? => Err(Problem::new(
            ErrorCode::RowsLocked,
            format!(
                "a prepare of {} is still under way; try the abort again",
                gid.as_string()
            ),
        )
        .with_retry_after(1)),
        Err(e) if base::db::is_lock_timeout(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A `pg_prepared_xacts` row of this database.
#[derive(sqlx::FromRow)]
struct PreparedRow {
    gid: String,
    prepared_at: DateTime<Utc>,
    age_seconds: f64,
    xid: String,
}

/// This database's transactions prepared at least `older_than` ago, oldest first
/// (what they hold is left empty; see [`fetch_prepared_holding`]).
#[tracing::instrument(name = "db.fetch_prepared", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_prepared(pool: &PgPool, older_than: Duration) -> Result<Vec<PreparedTransaction>, sqlx::Error> {
    Ok(prepared_rows(pool, older_than)
        .await?
        .into_iter()
        .map(|row| PreparedTransaction {
            gid: row.gid,
            prepared_at: row.prepared_at,
            age_seconds: row.age_seconds,
            locks: Vec::new(),
            rows: Vec::new(),
        })
        .collect())
}

async fn prepared_rows(pool: &PgPool, older_than: Duration) -> Result<Vec<PreparedRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT gid, prepared AS prepared_at, extract(epoch FROM now() - prepared)::float8 AS age_seconds,
                transaction::text AS xid
         FROM pg_prepared_xacts
         WHERE database = current_database() AND gid LIKE 'txlab\\_%' AND prepared <= now() - make_interval(secs => $1)
         ORDER BY prepared",
    )
    .bind(older_than.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Every prepared transaction of this database with what it holds: its table and
/// advisory locks from `pg_locks` (held, with no process, by the virtual transaction
/// that holds the lock on its own xid), and the rows it holds as `W` names them.
#[tracing::instrument(name = "db.fetch_prepared_holding", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn fetch_prepared_holding<W: TpcWork>(pool: &PgPool) -> Result<Vec<PreparedTransaction>, sqlx::Error> {
    let rows = prepared_rows(pool, Duration::ZERO).await?;
    let mut conn = pool.acquire().await?;
    let mut prepared = Vec::with_capacity(rows.len());
    for row in rows {
        let locks: Vec<HeldLock> = sqlx::query_as(
            "SELECT l.locktype AS kind, c.relname::text AS relation, l.mode
             FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
             WHERE l.pid IS NULL
               AND l.virtualtransaction = (SELECT t.virtualtransaction FROM pg_locks t
                                           WHERE t.locktype = 'transactionid' AND t.pid IS NULL
                                             AND t.transactionid::text = $1)
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND (l.locktype = 'advisory' OR (l.locktype = 'relation' AND c.relkind IN ('r', 'p')))
             ORDER BY l.locktype, c.relname, l.mode",
        )
        .bind(&row.xid)
        .fetch_all(&mut *conn)
        .await?;
        let held = W::held_rows(&mut conn, &row.xid).await?;
        prepared.push(PreparedTransaction {
            gid: row.gid,
            prepared_at: row.prepared_at,
            age_seconds: row.age_seconds,
            locks,
            rows: held,
        });
    }
    Ok(prepared)
}

async fn list_prepared<W: TpcWork>(pool: web::Data<PgPool>) -> Result<HttpResponse, Problem> {
    let prepared = fetch_prepared_holding::<W>(&pool).await?;
    ok(&PreparedList { prepared })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_have_exactly_one_shape() {
        let id = Uuid::new_v4();
        let gid = Gid::new(id, Participant::Inventory);
        assert_eq!(Gid::parse(&gid.as_string()), Ok(gid));
        for bad in [
            format!("txlab_{}_warehouse", id.simple()),
            "txlab_x_inventory".to_owned(),
            format!("txlab_{}_", id.simple()),
            format!("txlab_{}_Inventory", id.simple()),
            format!("txlab_{}_inv'; DROP TABLE x; --", id.simple()),
            format!("other_{}_inventory", id.simple()),
        ] {
            assert!(Gid::parse(&bad).is_err(), "{bad}");
        }
    }
}
