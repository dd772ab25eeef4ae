//! Walks a saga through the steps table: decides with `state.rs`, logs every change
//! to the saga log before and after each call, calls the participants with the
//! step's idempotency key and timeout, and backs off between attempts.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::web;
use api::{CancelOrder, ErrorCode, NoFields, RefundRequest, Request, SagaEventKind};
use base::config::PeerSettings;
use client::{
    http_client::{CallOutcome, HttpClient},
    resilience::{Attempt, MustHappen, Rejection},
};
use shared::{
    fault::{FaultInjector, FaultKind},
    supervisor::{Job, LocalBoxFuture},
};
use sqlx::PgPool;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use super::{
    log::{self, AttemptEvent, Ended, Lease, Replica, SagaRecord, Taken},
    state::{Next, Outcome, SagaState, SagaStatus},
    steps::{COMPENSATION, Call, STEP_FAULT_POINTS, STEPS, is_before_or_at_pivot},
};

pub struct Engine {
    pub pool: PgPool,
    pub client: HttpClient,
    /// Where the participants are (the peers' settings). The orchestrator reaches its
    /// own order endpoints over loopback like any other participant's, so they are
    /// fault points too.
    pub participants: PeerSettings,
    /// How long a parked saga waits before the recovery actor retries it.
    pub park_retry: Duration,
    /// This replica: its id, lease TTL and fencing switch.
    pub replica: Replica,
    /// The step fault points (`order.step.<step>`): `pause_ms` and `delay_ms`.
    pub faults: web::Data<FaultInjector>,
}

/// Where a run of a saga left it.
pub type RunOutcome = shared::lease::RunOutcome<SagaStatus>;

/// The lease was taken over: the runner stands down (`why` goes to the history).
struct LeaseLost(String);

impl Engine {
    /// Takes the saga (unless another replica holds it) and runs or resumes it until
    /// it is final, parked, or its lease is lost. The work joins the checkout's
    /// trace, also after a restart or a takeover.
    pub async fn run(&self, saga_id: Uuid) -> anyhow::Result<RunOutcome> {
        let taken = log::take_saga(&mut *self.pool.acquire().await?, saga_id, &self.replica)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no saga {saga_id}"))?;
        let (saga, lease, taken_from) = match taken {
            Taken::Final(saga) => return Ok(RunOutcome::Stopped(saga.state.status)),
            Taken::HeldElsewhere { owner } => return Ok(RunOutcome::HeldElsewhere { owner }),
            Taken::Held { saga, lease, from } => (saga, lease, from),
        };
        let span = tracing::info_span!(
            "saga",
            otel.name = "saga.checkout",
            saga.id = %saga.id,
            order.id = %saga.order_id,
            saga.owner = %lease.owner,
            saga.epoch = lease.epoch,
            saga.taken_over_from = Empty,
            saga.resumed_from = Empty,
            saga.outcome = Empty,
        );
        let resumed = !saga.state.is_new() || taken_from.is_some();
        if resumed {
            span.record("saga.resumed_from", tracing::field::display(saga.state.status));
        }
        if let Some(previous) = &taken_from {
            span.record("saga.taken_over_from", previous.as_str());
        }
        if let Some(traceparent) = &saga.traceparent {
            base::telemetry::continue_trace(&span, traceparent);
        }
        if resumed {
            log::insert_resumed(&self.pool, &lease, saga.state.status, taken_from.as_deref())
                .instrument(span.clone())
                .await?;
            if let Some(previous) = &taken_from {
                tracing::info!(parent: &span, taken_over_from = %previous, epoch = lease.epoch, "saga taken over");
            }
        }
        let outcome = match self.drive(saga, &lease).instrument(span.clone()).await? {
            Ok(status) => RunOutcome::Stopped(status),
            Err(LeaseLost(why)) => {
                self.stand_down(&lease, &why).instrument(span.clone()).await;
                RunOutcome::LeaseLost { epoch: lease.epoch }
            }
        };
        span.record("saga.outcome", tracing::field::display(&outcome));
        Ok(outcome)
    }

    /// The lease is gone: says so in the trace, the log and the saga's history, and
    /// drives the saga no further.
    async fn stand_down(&self, lease: &Lease, why: &str) {
        lease.lost("saga.lease_lost", why);
        if let Err(e) = log::insert_lease_lost(&self.pool, lease, why).await {
            tracing::warn!(error = %e, "recording the lost lease failed");
        }
    }

    async fn drive(&self, mut saga: SagaRecord, lease: &Lease) -> anyhow::Result<Result<SagaStatus, LeaseLost>> {
        let refused = |what: &str| {
            LeaseLost(format!(
                "{what} was refused: the saga's epoch is no longer {}",
                lease.epoch
            ))
        };
        saga.state.resume();
        let shown = |s: &SagaState| (s.status, s.reason.clone(), s.parked_reason.clone());
        let mut saved = shown(&saga.state);
        // After a call without a definite answer: how long to wait before the same
        // call is made again (a backoff, an open breaker's cool-down, an in-flight
        // call's lease).
        let mut wait: Option<(Next, Duration)> = None;
        loop {
            let next = saga.state.decide();
            if shown(&saga.state) != saved {
                if !log::update_saga(&self.pool, lease, &saga.state, self.park_retry).await? {
                    return Ok(Err(refused("a status write")));
                }
                saved = shown(&saga.state);
                tracing::info!(
                    status = %saga.state.status,
                    reason = saga.state.reason.as_deref(),
                    parked_reason = saga.state.parked_reason.as_deref(),
                    parked_on = saga.state.parked_on.map(api::Participant::name),
                    "saga.status_changed"
                );
            }
            if let Some((again, pause)) = wait.take()
                && again == next
                && self.holding(lease, tokio::time::sleep(pause)).await.is_none()
            {
                return Ok(Err(refused("a heartbeat")));
            }
            match next {
                Next::Stop(status) => return Ok(Ok(status)),
                Next::Act(i) | Next::Compensate(i) => {
                    let compensation = matches!(next, Next::Compensate(_));
                    let (attempt, started, ended) = if compensation {
                        let attempt = saga.state.begin_compensation(i);
                        (
                            attempt,
                            SagaEventKind::CompensationStarted,
                            SagaEventKind::CompensationEnded,
                        )
                    } else {
                        (
                            saga.state.begin_action(i),
                            SagaEventKind::StepStarted,
                            SagaEventKind::StepEnded,
                        )
                    };
                    let event = AttemptEvent {
                        kind: started,
                        attempt,
                        ended: None,
                    };
                    if !log::update_step(&self.pool, lease, i, &saga.state.steps[i], event).await? {
                        return Ok(Err(refused("a step write")));
                    }
                    let Some(done) = self
                        .holding(lease, self.attempt(&saga, lease, i, compensation, attempt))
                        .await
                    else {
                        return Ok(Err(refused("a heartbeat")));
                    };
                    if let Some(stale) = &done.stale {
                        return Ok(Err(LeaseLost(stale.clone())));
                    }
                    self.step_fault_point(&saga, lease, i, attempt).await;
                    if compensation {
                        saga.state.record_compensation(i, done.outcome.clone());
                    } else {
                        saga.state.record_action(i, done.outcome.clone());
                    }
                    let event = AttemptEvent {
                        kind: ended,
                        attempt,
                        ended: Some(done.ended()),
                    };
                    if !log::update_step(&self.pool, lease, i, &saga.state.steps[i], event).await? {
                        return Ok(Err(refused("a step write")));
                    }
                    wait = Some((next, done.pause));
                }
            }
        }
    }

    /// Runs `work` while renewing the lease (see [`Lease::holding`]). `None`: the
    /// lease was taken over meanwhile.
    async fn holding<T>(&self, lease: &Lease, work: impl Future<Output = T>) -> Option<T> {
        lease
            .holding(|| shared::lease::renew(&self.pool, shared::lease::SAGAS, lease), work)
            .await
    }

    /// The step's fault point, between a call's answer and the write of its outcome:
    /// `pause_ms` stops the runner without renewing its lease, as a GC pause or a
    /// `SIGSTOP` would, then carries on from where it was; `delay_ms` waits holding
    /// the lease. Like every baggage fault, on the step's first attempt only.
    async fn step_fault_point(&self, saga: &SagaRecord, lease: &Lease, i: usize, attempt: u32) {
        let operation = STEP_FAULT_POINTS[i];
        let baggage = baggage_for_attempt(saga.baggage.as_deref(), attempt);
        match self.faults.decide(operation, baggage.as_deref()) {
            Some(kind @ FaultKind::PauseMs(ms)) => {
                shared::fault::record_injected(operation, kind);
                tracing::warn!(
                    saga.epoch = lease.epoch,
                    pause_ms = ms,
                    "runner paused; its lease is not renewed meanwhile"
                );
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Some(kind @ FaultKind::DelayMs(ms)) => {
                shared::fault::record_injected(operation, kind);
                // A lease lost meanwhile shows at the next write.
                let _ = self.holding(lease, tokio::time::sleep(Duration::from_millis(ms))).await;
            }
            Some(other) => {
                tracing::debug!(operation, kind = %other, "only pause_ms and delay_ms act at a step's fault point")
            }
            None => {}
        }
    }

    /// One call of step `i` (or of its compensation): what it established, and how
    /// long to wait before making the same call again if it comes to that.
    async fn attempt(&self, saga: &SagaRecord, lease: &Lease, i: usize, compensation: bool, attempt: u32) -> Attempted {
        let step = &STEPS[i];
        let (call, key, verb) = match (compensation, step.compensation) {
            (true, Some(call)) => (
                call,
                format!("{}:{}:compensation", saga.id, step.name),
                "saga.compensate",
            ),
            _ => (step.action, format!("{}:{}", saga.id, step.name), "saga.step"),
        };
        let span = tracing::info_span!(
            "saga.step",
            otel.name = %format!("{verb} {}", step.name),
            saga.id = %saga.id,
            order.id = %saga.order_id,
            saga.step = step.name,
            saga.compensation = compensation,
            saga.attempt = attempt,
            idempotency.key = %key,
            saga.step.outcome = Empty,
        );
        // Up to the pivot a step may still be given up on (and compensated); its
        // compensation, and every step past the pivot, must happen: they skip the
        // retry budget and are paced by the participant's breaker instead.
        let must_happen = compensation || !is_before_or_at_pivot(i);
        let policy = if compensation { COMPENSATION } else { step.retry };
        let (url, body) = self.request(call, saga);
        let mut request = self
            .client
            .post_json(&url, &body, &key, step.timeout)
            .with_extension(Attempt(attempt));
        if must_happen {
            request = request.with_extension(MustHappen);
        }
        if let Some(baggage) = baggage_for_attempt(saga.baggage.as_deref(), attempt) {
            request = request.header(api::headers::BAGGAGE, baggage);
        }
        if let Some(token) = lease.fencing_token() {
            request = request.header(api::headers::FENCING_TOKEN, token.header_value());
        }
        let held_back = saga.state.held_back_count(i) + 1;
        async {
            let started = Instant::now();
            let sent = request.send().await;
            let status_code = sent.as_ref().ok().map(|response| response.status().as_u16());
            // Any 2xx means the step is done: its body is not needed.
            let outcome: CallOutcome<serde::de::IgnoredAny> = CallOutcome::of(sent).await;
            let took = started.elapsed();
            let described = outcome.describe();
            tracing::Span::current().record("saga.step.outcome", described.as_str());
            let stale = match &outcome {
                CallOutcome::Refused {
                    problem: Some(problem), ..
                } if problem.kind == ErrorCode::StaleFencingToken.type_uri() => Some(format!(
                    "{} refused epoch {}: {}",
                    call.participant().name(),
                    lease.epoch,
                    problem.detail
                )),
                _ => None,
            };
            let (outcome, pause) = match outcome {
                CallOutcome::Succeeded(_) => (Outcome::Succeeded, Duration::ZERO),
                CallOutcome::Refused { .. } => {
                    tracing::info!(outcome = %described, "step refused");
                    (Outcome::Refused(described), Duration::ZERO)
                }
                CallOutcome::Unknown(_) => {
                    tracing::warn!(outcome = %described, "step outcome unknown; it will be retried with the same key");
                    (Outcome::Unknown(described), policy.backoff(attempt))
                }
                // An earlier call with this key (before a crash, say) is still being
                // worked on: not a failed attempt. Called again once its lease ends.
                CallOutcome::InFlight { retry_after } => {
                    tracing::info!(outcome = %described, "an earlier call with this key is in flight; waiting for it");
                    (Outcome::InFlight(described), retry_after.max(policy.first_backoff))
                }
                // Refused on this side (breaker, bulkhead, retry budget): the call
                // certainly did nothing, and is made again after the breaker's
                // cool-down (when its trial call may go) or a backoff.
                CallOutcome::NotSent(rejection) => {
                    let pause = match rejection {
                        Rejection::CircuitOpen { retry_after, .. } => retry_after.max(policy.first_backoff),
                        _ => policy.backoff(held_back),
                    };
                    (Outcome::NotSent(described), pause)
                }
            };
            Attempted {
                outcome,
                status_code,
                took,
                pause,
                stale,
            }
        }
        .instrument(span)
        .await
    }

    /// Where a call goes and what it sends: the contract's own request types.
    fn request(&self, call: Call, saga: &SagaRecord) -> (String, Request) {
        let p = &self.participants;
        let (checkout, order_id) = (&saga.request, saga.order_id);
        match call {
            Call::CreateOrder => (
                format!("{}/orders", p.order),
                Request::CreateOrder(checkout.create_order(order_id)),
            ),
            Call::CancelOrder => {
                let reason = saga.state.reason.as_deref().unwrap_or("cancelled");
                let cancel = CancelOrder {
                    reason: Some(reason.chars().take(500).collect()),
                };
                (
                    format!("{}/orders/{order_id}/cancel", p.order),
                    Request::CancelOrder(cancel),
                )
            }
            Call::ReserveInventory => (
                format!("{}/reservations", p.inventory),
                Request::ReserveStock(checkout.reserve_stock(order_id)),
            ),
            Call::ReleaseInventory => (
                format!("{}/reservations/{order_id}/release", p.inventory),
                Request::Empty(NoFields {}),
            ),
            Call::ChargePayment => (
                format!("{}/charges", p.payment),
                Request::Charge(checkout.charge(order_id)),
            ),
            Call::RefundPayment => (
                format!("{}/refunds", p.payment),
                Request::Refund(RefundRequest {
                    order_id,
                    amount_cents: None,
                }),
            ),
            Call::CommitInventory => (
                format!("{}/reservations/{order_id}/commit", p.inventory),
                Request::Empty(NoFields {}),
            ),
            Call::ConfirmOrder => (
                format!("{}/orders/{order_id}/confirm", p.order),
                Request::Empty(NoFields {}),
            ),
            Call::SendEmail => (
                format!("{}/emails", p.email),
                Request::EnqueueEmail(checkout.confirmation_email(order_id)),
            ),
        }
    }
}

/// What one call established, and how long to wait before making it again if it
/// comes to that.
struct Attempted {
    outcome: Outcome,
    /// The participant's HTTP status, when it answered.
    status_code: Option<u16>,
    took: Duration,
    pause: Duration,
    /// The participant refused the call's fencing token: the lease was lost.
    stale: Option<String>,
}

impl Attempted {
    /// The attempt's end, as its history records it.
    fn ended(&self) -> Ended<'_> {
        Ended {
            outcome: self.outcome.kind(),
            status_code: self.status_code,
            detail: self.outcome.detail(),
            took: self.took,
        }
    }
}

impl Job for Engine {
    const KIND: &'static str = "saga";

    type Outcome = RunOutcome;

    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<RunOutcome>> {
        Box::pin(async move { Engine::run(&self, id).await })
    }
}

/// For this replica's sweeper: writes its heartbeat to the registry of replicas, then
/// finds the unfinished sagas that are due and that it may take.
pub fn find_due(
    replica: String,
    url: String,
) -> impl Fn(PgPool, Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> {
    move |pool, reoffer_after| {
        let (replica, url) = (replica.clone(), url.clone());
        Box::pin(async move {
            shared::lease::beat(&pool, &replica, &url).await?;
            log::offer_due_sagas(&pool, &replica, 100, reoffer_after).await
        })
    }
}

/// Listens for participants that recover (their circuit breaker closes after a good
/// trial call) and makes the sagas parked waiting for one due at once: work that
/// piled up during an outage drains as soon as the outage ends, not a park wait
/// later. Runs for as long as the process.
pub fn wake_parked_sagas_on_recovery(pool: PgPool, mut recoveries: tokio::sync::broadcast::Receiver<String>) {
    use tokio::sync::broadcast::error::RecvError;
    actix_rt::spawn(async move {
        loop {
            let participant = match recoveries.recv().await {
                Ok(participant) => participant,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "recoveries missed; parked sagas wait for their next retry");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let span = tracing::info_span!("saga.wake_parked", saga.parked_on = %participant, saga.woken = Empty);
            match log::wake_parked_on(&pool, &participant).instrument(span.clone()).await {
                Ok(woken) => {
                    span.record("saga.woken", woken);
                    if woken > 0 {
                        tracing::info!(parent: &span, participant, woken, "participant recovered; its parked sagas are due now");
                    }
                }
                Err(e) => tracing::warn!(parent: &span, participant, error = %e, "waking parked sagas failed"),
            }
        }
    });
}

/// The checkout's baggage for a call. Injected faults (`fault.*`) go with a step's
/// first attempt only: a baggage fault is one failure, the kind a retry is for.
/// Persistent failures are `/admin/faults` rules.
pub fn baggage_for_attempt(baggage: Option<&str>, attempt: u32) -> Option<String> {
    let baggage = baggage?;
    if attempt <= 1 {
        return Some(baggage.to_owned());
    }
    let kept: Vec<&str> = baggage
        .split(',')
        .map(str::trim)
        .filter(|member| !member.starts_with("fault."))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

#[cfg(test)]
mod tests {
    use super::baggage_for_attempt;

    #[test]
    fn faults_ride_on_the_first_attempt_only() {
        let baggage = Some("fault.payment.charge=error, tenant=acme");
        assert_eq!(
            baggage_for_attempt(baggage, 1).as_deref(),
            Some("fault.payment.charge=error, tenant=acme")
        );
        assert_eq!(baggage_for_attempt(baggage, 2).as_deref(), Some("tenant=acme"));
        assert_eq!(baggage_for_attempt(Some("fault.email.send=error"), 3), None);
        assert_eq!(baggage_for_attempt(None, 1), None);
    }
}
