//! The coordinator's protocol, run as a supervised job per transaction:
//!
//! 1. the transaction is logged (by `POST /checkout`, before anything else);
//! 2. **prepare**: every participant, in parallel, within the vote timeout;
//! 3. **decide** and log the decision durably — the commit point;
//! 4. **commit or abort** every participant, retried until each acknowledges. The
//!    checkout answers after the first round: a participant that has not
//!    acknowledged yet is `in_doubt` in the answer and is told again meanwhile.
//!
//! Run again after a crash, it picks up from the log: an undecided transaction it
//! did not start is aborted (presumed abort); a decided one is delivered again.
//! Fault points `coordinator.vote` (votes in, decision not logged),
//! `coordinator.decide` (decision logged, nobody told) and `coordinator.finish`
//! (every participant acknowledged, the final state not written) make each crash
//! one request away. They apply in the process that began the transaction only: the
//! one resuming it after the crash must not crash again.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use api::{FinishAnswer, NoFields, PrepareAnswer, Request};
use base::{config::PeerSettings, retry::RetryPolicy};
use client::{
    http_client::{CallOutcome, HttpClient},
    resilience::{Attempt, ReleasesLocks},
};
use futures_util::future::join_all;
use participant::Gid;
use shared::{
    fault::{FaultInjector, FaultKind, record_injected},
    supervisor::{Job, LocalBoxFuture},
};
use sqlx::PgPool;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use super::{
    log::{self, Lease, ParticipantEvent, Replica, Taken, TxRecord},
    state::{Decision, ParticipantVote, TransactionState},
};

pub struct Coordinator {
    pub pool: PgPool,
    pub client: HttpClient,
    /// Where the participants are.
    pub peers: PeerSettings,
    pub vote_timeout: Duration,
    pub faults: actix_web::web::Data<FaultInjector>,
    /// This process: a transaction started by another one and found undecided is
    /// presumed aborted.
    pub boot_id: Uuid,
    /// This replica: its id, lease TTL and fencing switch.
    pub replica: Replica,
    /// Checkouts waiting to answer for their transaction.
    pub answers: Answers,
}

/// `POST /checkout`s waiting for their transaction. One may answer once the decision
/// is logged and every participant has been told it once: a participant slow to
/// acknowledge (an open breaker, a crash) is told again until it does, without the
/// client waiting for that; its outcome shows `in_doubt` meanwhile.
#[derive(Debug, Default)]
pub struct Answers(std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Notify>>>);

impl Answers {
    /// Waits until transaction `id` may be answered; for as long as the future lives.
    pub async fn answerable(&self, id: Uuid) {
        let notify = match self.0.lock() {
            Ok(mut waiting) => Arc::clone(waiting.entry(id).or_default()),
            Err(_) => return std::future::pending().await,
        };
        let _forget = Forget(self, id);
        notify.notified().await;
    }

    fn ready(&self, id: Uuid) {
        if let Ok(waiting) = self.0.lock()
            && let Some(notify) = waiting.get(&id)
        {
            notify.notify_one();
        }
    }
}

/// Removes a waiter however its wait ends (answered, deadline, client gone).
struct Forget<'a>(&'a Answers, Uuid);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.0.0.lock() {
            waiting.remove(&self.1);
        }
    }
}

const PHASE_TWO: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    first_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(2),
};

/// Where a run of a transaction left it.
pub type RunOutcome = shared::lease::RunOutcome<TransactionState>;

impl Job for Coordinator {
    const KIND: &'static str = "2pc";

    type Outcome = RunOutcome;

    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<RunOutcome>> {
        Box::pin(async move { self.run_transaction(id).await })
    }
}

/// For this replica's sweeper: writes its heartbeat to the registry of replicas,
/// then finds the unfinished transactions that it may take.
pub fn find_unfinished(
    owner: String,
    url: String,
) -> impl Fn(PgPool, Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> {
    move |pool, reoffer_after| {
        let (owner, url) = (owner.clone(), url.clone());
        Box::pin(async move {
            shared::lease::beat(&pool, &owner, &url).await?;
            log::offer_unfinished(&pool, &owner, 100, reoffer_after).await
        })
    }
}

/// The lease was taken over: the coordinator stands down (`why` goes to the history).
struct LeaseLost(String);

impl Coordinator {
    async fn run_transaction(&self, id: Uuid) -> anyhow::Result<RunOutcome> {
        let taken = log::take_transaction(&mut *self.pool.acquire().await?, id, &self.replica)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no transaction {id}"))?;
        let (record, lease, taken_from) = match taken {
            Taken::Final(record) => return Ok(RunOutcome::Stopped(record.tx.state)),
            Taken::HeldElsewhere { owner } => return Ok(RunOutcome::HeldElsewhere { owner }),
            Taken::Held { record, lease, from } => (record, lease, from),
        };
        let span = tracing::info_span!(
            "tpc.transaction",
            otel.name = "tpc.checkout",
            tx.id = %record.id,
            order.id = %record.order_id,
            tx.resumed = record.started_by != self.boot_id || taken_from.is_some(),
            tx.owner = %lease.owner,
            tx.epoch = lease.epoch,
            tx.taken_over_from = taken_from.as_deref(),
            tx.decision = Empty,
            tx.state = Empty,
        );
        if let Some(traceparent) = &record.traceparent {
            base::telemetry::continue_trace(&span, traceparent);
        }
        let outcome = match self.drive(record, &lease, taken_from).instrument(span.clone()).await? {
            Ok(state) => RunOutcome::Stopped(state),
            Err(LeaseLost(why)) => {
                let _in = span.enter();
                lease.lost("tpc.lease_lost", &why);
                if let Err(e) = log::insert_lease_lost(&self.pool, &lease, &why).await {
                    tracing::warn!(error = %e, "recording the lost lease failed");
                }
                RunOutcome::LeaseLost { epoch: lease.epoch }
            }
        };
        span.record("tx.state", tracing::field::display(&outcome));
        Ok(outcome)
    }

    async fn drive(
        &self,
        mut record: TxRecord,
        lease: &Lease,
        taken_from: Option<String>,
    ) -> anyhow::Result<Result<TransactionState, LeaseLost>> {
        let refused = |what: &str| {
            LeaseLost(format!(
                "{what} was refused: the transaction's epoch is no longer {}",
                lease.epoch
            ))
        };
        // Begun here and never out of this replica's hands: run phase one. Anything
        // else (another process began it, or held it since) is resumed from the log.
        let ours = record.started_by == self.boot_id && taken_from.is_none() && lease.epoch == 1;
        if !ours {
            log::insert_resumed(&self.pool, lease, record.tx.state, taken_from.as_deref()).await?;
        }
        let mut never_asked = Vec::new();
        if record.tx.state == TransactionState::Preparing {
            if ours {
                match self.prepare_all(&mut record, lease).await? {
                    Ok(unasked) => never_asked = unasked,
                    Err(lost) => return Ok(Err(lost)),
                }
                self.fault_point(&record, lease, "coordinator.vote").await;
                record.tx.decide();
            } else {
                // Presumed abort, made final: logged before anyone is told, so the
                // holder that began it cannot log commit over it if it wakes up.
                tracing::warn!("found undecided, begun elsewhere or before a restart: presumed abort");
                record.tx.presume_abort();
            }
            let decision = record.tx.decision;
            let span = tracing::info_span!("tpc.decision", tx.id = %record.id, tx.phase = "decide", tx.decision = decision.map(tracing::field::display), tx.reason = record.tx.reason.as_deref());
            let logged = async {
                if !log::log_decision(&self.pool, lease, &record.tx).await? {
                    // A decision was logged first, or the lease was taken over: the
                    // log says which; a logged decision stands.
                    record = log::fetch_transaction(&mut *self.pool.acquire().await?, record.id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("transaction vanished"))?;
                    if lease.fenced && record.epoch != lease.epoch {
                        return anyhow::Ok(false);
                    }
                }
                tracing::info!(
                    decision = record.tx.decision.map(tracing::field::display),
                    reason = record.tx.reason.as_deref(),
                    "decision logged"
                );
                anyhow::Ok(true)
            }
            .instrument(span)
            .await?;
            if !logged {
                return Ok(Err(LeaseLost(format!(
                    "the decision write was refused: the transaction's epoch is no longer {} (its log says {})",
                    lease.epoch,
                    record.tx.decision.map_or("undecided", |d| d.name())
                ))));
            }
            if ours {
                self.fault_point(&record, lease, "coordinator.decide").await;
            }
        }
        if let Some(decision) = record.tx.decision {
            tracing::Span::current().record("tx.decision", tracing::field::display(decision));
        }
        if record.tx.decision == Some(Decision::Abort) {
            // A participant whose prepare was never sent (an open breaker, a full
            // bulkhead) has nothing to abort: telling it would only wait on the
            // same breaker.
            for i in never_asked {
                record.tx.record_ack(i);
                let event = ParticipantEvent::NeverAsked;
                if !log::update_participant(&self.pool, lease, i, &record.tx.participants[i], event).await? {
                    return Ok(Err(refused("a participant write")));
                }
            }
        }
        if let Err(lost) = self.finish_all(&mut record, lease, ours).await? {
            return Ok(Err(lost));
        }
        Ok(Ok(record.tx.state))
    }

    /// Runs `work` while renewing the lease (see [`Lease::holding`]). `None`: the
    /// lease was taken over meanwhile.
    async fn holding<T>(&self, lease: &Lease, work: impl std::future::Future<Output = T>) -> Option<T> {
        lease
            .holding(
                || shared::lease::renew(&self.pool, shared::lease::TRANSACTIONS, lease),
                work,
            )
            .await
    }

    /// Phase one: every participant prepares, or fails to within the vote timeout.
    /// Returns the participants whose prepare was never sent.
    async fn prepare_all(&self, record: &mut TxRecord, lease: &Lease) -> anyhow::Result<Result<Vec<usize>, LeaseLost>> {
        let baggage = record.baggage.clone();
        let calls = record.tx.participants.iter().enumerate().map(|(i, p)| {
            let name = p.name;
            let gid = Gid::new(record.id, name).as_string();
            let url = format!("{}/tpc/{gid}/prepare", self.peers.url(name.into()));
            let payload = payload(name, record);
            let mut request = self.client.post_json(&url, &payload, &gid, self.vote_timeout);
            if let Some(baggage) = &baggage {
                request = request.header(api::headers::BAGGAGE, baggage.clone());
            }
            if let Some(token) = lease.fencing_token() {
                request = request.header(api::headers::FENCING_TOKEN, token.header_value());
            }
            let span = tracing::info_span!(
                "tpc.prepare",
                otel.name = %format!("tpc.prepare {name}"),
                tx.id = %record.id,
                tx.phase = "prepare",
                tx.participant = %name,
                tx.vote = Empty,
            );
            async move {
                // Any answer but a yes is a no; only silence is a timeout.
                let started = Instant::now();
                let answered = request.send().await;
                let silent = answered.is_err();
                let outcome: CallOutcome<PrepareAnswer<serde::de::IgnoredAny>> = CallOutcome::of(answered).await;
                let asked = !matches!(outcome, CallOutcome::NotSent(_));
                let (vote, detail) = match outcome {
                    CallOutcome::Succeeded(answer) => match answer.vote {
                        api::Vote::Yes => (ParticipantVote::Yes, None),
                        api::Vote::No => (ParticipantVote::No, Some("voted no".to_owned())),
                    },
                    // Refused on this side (open breaker, full bulkhead): never asked.
                    refused @ CallOutcome::NotSent(_) => (ParticipantVote::No, Some(refused.describe())),
                    other if silent => (ParticipantVote::Timeout, Some(other.describe())),
                    other => (ParticipantVote::No, Some(other.describe())),
                };
                tracing::Span::current().record("tx.vote", tracing::field::display(vote));
                (i, vote, detail, asked, started.elapsed())
            }
            .instrument(span)
        });
        let Some(votes) = self.holding(lease, join_all(calls)).await else {
            return Ok(Err(LeaseLost("a heartbeat while the votes came in was refused".into())));
        };
        let mut never_asked = Vec::new();
        for (i, vote, detail, asked, took) in votes {
            record.tx.record_vote(i, vote, detail);
            let event = ParticipantEvent::Vote { took };
            if !log::update_participant(&self.pool, lease, i, &record.tx.participants[i], event).await? {
                return Ok(Err(LeaseLost(format!(
                    "a vote write was refused: the transaction's epoch is no longer {}",
                    lease.epoch
                ))));
            }
            if !asked {
                never_asked.push(i);
            }
        }
        Ok(Ok(never_asked))
    }

    /// Phase two: tell every participant the decision until each acknowledges, then
    /// write the final state (also when every acknowledgement was logged before a
    /// crash and only that write is left).
    async fn finish_all(
        &self,
        record: &mut TxRecord,
        lease: &Lease,
        ours: bool,
    ) -> anyhow::Result<Result<(), LeaseLost>> {
        let refused = |what: &str| {
            LeaseLost(format!(
                "{what} was refused: the transaction's epoch is no longer {}",
                lease.epoch
            ))
        };
        let Some(decision) = record.tx.decision else {
            anyhow::bail!("phase two without a decision");
        };
        let verb = decision.name();
        let mut round = 0;
        loop {
            let pending = record.tx.unacknowledged();
            if pending.is_empty() {
                record.tx.conclude();
                if ours {
                    self.fault_point(record, lease, "coordinator.finish").await;
                }
                if !log::update_state(&self.pool, lease, record.tx.state).await? {
                    return Ok(Err(refused("the final state's write")));
                }
                return Ok(Ok(()));
            }
            if round > 0
                && self
                    .holding(lease, tokio::time::sleep(PHASE_TWO.backoff(round)))
                    .await
                    .is_none()
            {
                return Ok(Err(refused("a heartbeat")));
            }
            round += 1;
            let calls = pending.into_iter().map(|i| {
                let name = record.tx.participants[i].name;
                let gid = Gid::new(record.id, name).as_string();
                let url = format!("{}/tpc/{gid}/{verb}", self.peers.url(name.into()));
                let mut request = self
                    .client
                    .post_json(&url, &NoFields {}, &gid, Duration::from_secs(3))
                    .with_extension(Attempt(round))
                    .with_extension(ReleasesLocks);
                if round == 1
                    && let Some(baggage) = &record.baggage
                {
                    request = request.header(api::headers::BAGGAGE, baggage.clone());
                }
                if let Some(token) = lease.fencing_token() {
                    request = request.header(api::headers::FENCING_TOKEN, token.header_value());
                }
                let span = tracing::info_span!(
                    "tpc.finish",
                    otel.name = %format!("tpc.{verb} {name}"),
                    tx.id = %record.id,
                    tx.phase = verb,
                    tx.participant = %name,
                    tx.attempt = round,
                    tx.outcome = Empty,
                );
                async move {
                    let started = Instant::now();
                    let outcome: CallOutcome<FinishAnswer> = CallOutcome::of(request.send().await).await;
                    let took = started.elapsed();
                    let described = outcome.describe();
                    tracing::Span::current().record("tx.outcome", described.as_str());
                    let acknowledged = matches!(outcome, CallOutcome::Succeeded(_));
                    if !acknowledged {
                        tracing::warn!(participant = %name, outcome = %described, "not acknowledged yet; retrying");
                    }
                    (i, (!acknowledged).then_some(described), took)
                }
                .instrument(span)
            });
            let Some(answers) = self.holding(lease, join_all(calls)).await else {
                return Ok(Err(refused("a heartbeat")));
            };
            for (i, error, took) in answers {
                if error.is_none() {
                    record.tx.record_ack(i);
                }
                let event = ParticipantEvent::PhaseTwo {
                    attempt: round,
                    acknowledged: error.is_none(),
                    error: error.as_deref(),
                    took,
                };
                if !log::update_participant(&self.pool, lease, i, &record.tx.participants[i], event).await? {
                    return Ok(Err(refused("a participant write")));
                }
            }
            if round == 1 && !record.tx.unacknowledged().is_empty() {
                // Everyone has been told once; the checkout need not wait for the rest.
                self.answers.ready(record.id);
            }
        }
    }

    /// A fault point inside the protocol: `crash` aborts the process here, a delay
    /// holds the transaction (and the participants' locks) here, holding its lease;
    /// `pause_ms` stops it here without renewing the lease, as a GC pause or a
    /// `SIGSTOP` would.
    async fn fault_point(&self, record: &TxRecord, lease: &Lease, operation: &'static str) {
        let Some(kind) = self.faults.decide(operation, record.baggage.as_deref()) else {
            return;
        };
        record_injected(operation, kind);
        match kind {
            FaultKind::Crash => {
                tracing::error!(operation, "fault crash: aborting the coordinator");
                std::process::abort();
            }
            FaultKind::DelayMs(ms) => {
                // A lease lost meanwhile shows at the next write.
                let _ = self.holding(lease, tokio::time::sleep(Duration::from_millis(ms))).await;
            }
            FaultKind::PauseMs(ms) => {
                tracing::warn!(
                    operation,
                    pause_ms = ms,
                    tx.epoch = lease.epoch,
                    "coordinator paused; its lease is not renewed meanwhile"
                );
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            other => {
                tracing::warn!(operation, kind = %other, "only crash, delay_ms and pause_ms apply inside the protocol")
            }
        }
    }
}

/// What each participant prepares: its own request, as the saga would send it.
fn payload(participant: api::Participant, record: &TxRecord) -> Request {
    let (checkout, order_id) = (&record.request, record.order_id);
    match participant {
        api::Participant::Order => Request::CreateOrder(checkout.create_order(order_id)),
        api::Participant::Inventory => Request::ReserveStock(checkout.reserve_stock(order_id)),
        api::Participant::Payment => Request::Charge(checkout.charge(order_id)),
        api::Participant::Email => Request::EnqueueEmail(checkout.confirmation_email(order_id)),
    }
}
