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
    log::{self, ParticipantEvent, TxRecord},
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

impl Job for Coordinator {
    const KIND: &'static str = "2pc";

    type Outcome = TransactionState;

    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<TransactionState>> {
        Box::pin(async move { self.run_transaction(id).await })
    }
}

pub fn find_unfinished(pool: PgPool, reoffer_after: Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> {
    Box::pin(async move { log::offer_unfinished(&pool, 100, reoffer_after).await })
}

impl Coordinator {
    async fn run_transaction(&self, id: Uuid) -> anyhow::Result<TransactionState> {
        let record = log::fetch_transaction(&mut *self.pool.acquire().await?, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no transaction {id}"))?;
        let span = tracing::info_span!(
            "tpc.transaction",
            otel.name = "tpc.checkout",
            tx.id = %record.id,
            order.id = %record.order_id,
            tx.resumed = record.started_by != self.boot_id,
            tx.decision = Empty,
            tx.state = Empty,
        );
        if let Some(traceparent) = &record.traceparent {
            base::telemetry::continue_trace(&span, traceparent);
        }
        let state = self.drive(record).instrument(span.clone()).await?;
        span.record("tx.state", tracing::field::display(state));
        Ok(state)
    }

    async fn drive(&self, mut record: TxRecord) -> anyhow::Result<TransactionState> {
        if record.tx.state.is_final() {
            return Ok(record.tx.state);
        }
        let ours = record.started_by == self.boot_id;
        if !ours || record.tx.state != TransactionState::Preparing {
            log::insert_resumed(&self.pool, record.id, record.tx.state).await?;
        }
        let mut never_asked = Vec::new();
        if record.tx.state == TransactionState::Preparing {
            if ours {
                never_asked = self.prepare_all(&mut record).await?;
                self.fault_point(&record, "coordinator.vote").await;
                record.tx.decide();
            } else {
                tracing::warn!("found undecided after a restart: presumed abort");
                record.tx.presume_abort();
            }
            let decision = record.tx.decision;
            let span = tracing::info_span!("tpc.decision", tx.id = %record.id, tx.phase = "decide", tx.decision = decision.map(tracing::field::display), tx.reason = record.tx.reason.as_deref());
            async {
                if !log::log_decision(&self.pool, record.id, &record.tx).await? {
                    // Someone logged a decision first; theirs stands.
                    record = log::fetch_transaction(&mut *self.pool.acquire().await?, record.id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("transaction vanished"))?;
                }
                tracing::info!(
                    decision = record.tx.decision.map(tracing::field::display),
                    reason = record.tx.reason.as_deref(),
                    "decision logged"
                );
                anyhow::Ok(())
            }
            .instrument(span)
            .await?;
            if ours {
                self.fault_point(&record, "coordinator.decide").await;
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
                log::update_participant(&self.pool, record.id, i, &record.tx.participants[i], event).await?;
            }
        }
        self.finish_all(&mut record, ours).await?;
        Ok(record.tx.state)
    }

    /// Phase one: every participant prepares, or fails to within the vote timeout.
    /// Returns the participants whose prepare was never sent.
    async fn prepare_all(&self, record: &mut TxRecord) -> anyhow::Result<Vec<usize>> {
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
        let mut never_asked = Vec::new();
        for (i, vote, detail, asked, took) in join_all(calls).await {
            record.tx.record_vote(i, vote, detail);
            let event = ParticipantEvent::Vote { took };
            log::update_participant(&self.pool, record.id, i, &record.tx.participants[i], event).await?;
            if !asked {
                never_asked.push(i);
            }
        }
        Ok(never_asked)
    }

    /// Phase two: tell every participant the decision until each acknowledges, then
    /// write the final state (also when every acknowledgement was logged before a
    /// crash and only that write is left).
    async fn finish_all(&self, record: &mut TxRecord, ours: bool) -> anyhow::Result<()> {
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
                    self.fault_point(record, "coordinator.finish").await;
                }
                log::update_state(&self.pool, record.id, record.tx.state).await?;
                return Ok(());
            }
            if round > 0 {
                tokio::time::sleep(PHASE_TWO.backoff(round)).await;
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
            for (i, error, took) in join_all(calls).await {
                if error.is_none() {
                    record.tx.record_ack(i);
                }
                let event = ParticipantEvent::PhaseTwo {
                    attempt: round,
                    acknowledged: error.is_none(),
                    error: error.as_deref(),
                    took,
                };
                log::update_participant(&self.pool, record.id, i, &record.tx.participants[i], event).await?;
            }
            if round == 1 && !record.tx.unacknowledged().is_empty() {
                // Everyone has been told once; the checkout need not wait for the rest.
                self.answers.ready(record.id);
            }
        }
    }

    /// A fault point inside the protocol: `crash` aborts the process here, a delay
    /// holds the transaction (and the participants' locks) here.
    async fn fault_point(&self, record: &TxRecord, operation: &'static str) {
        let Some(kind) = self.faults.decide(operation, record.baggage.as_deref()) else {
            return;
        };
        record_injected(operation, kind);
        match kind {
            FaultKind::Crash => {
                tracing::error!(operation, "fault crash: aborting the coordinator");
                std::process::abort();
            }
            FaultKind::DelayMs(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            other => tracing::warn!(operation, kind = %other, "only crash and delay_ms apply inside the protocol"),
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
