//! Walks a saga through the steps table: decides with `state.rs`, logs every change
//! to the saga log before and after each call, calls the participants with the
//! step's idempotency key and timeout, and backs off between attempts.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use api::{CancelOrder, NoFields, RefundRequest, Request, SagaEventKind};
use base::config::PeerSettings;
use client::{
    http_client::{CallOutcome, HttpClient},
    resilience::{Attempt, MustHappen, Rejection},
};
use shared::supervisor::{Job, LocalBoxFuture};
use sqlx::PgPool;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use super::{
    log::{self, AttemptEvent, Ended, SagaRecord},
    state::{Next, Outcome, SagaState, SagaStatus},
    steps::{COMPENSATION, Call, STEPS, is_before_or_at_pivot},
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
}

impl Engine {
    /// Runs (or resumes) a saga until it is final or parked. The work joins the
    /// checkout's trace, also after a restart.
    pub async fn run(&self, saga_id: Uuid) -> anyhow::Result<SagaStatus> {
        let saga = log::fetch_saga(&mut *self.pool.acquire().await?, saga_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no saga {saga_id}"))?;
        let span = tracing::info_span!(
            "saga",
            otel.name = "saga.checkout",
            saga.id = %saga.id,
            order.id = %saga.order_id,
            saga.resumed_from = Empty,
            saga.outcome = Empty,
        );
        let resumed = !saga.state.is_new();
        if resumed {
            span.record("saga.resumed_from", tracing::field::display(saga.state.status));
        }
        if let Some(traceparent) = &saga.traceparent {
            base::telemetry::continue_trace(&span, traceparent);
        }
        if resumed && !saga.state.status.is_final() {
            log::insert_resumed(&self.pool, saga.id, saga.state.status)
                .instrument(span.clone())
                .await?;
        }
        let outcome = self.drive(saga).instrument(span.clone()).await;
        if let Ok(status) = &outcome {
            span.record("saga.outcome", tracing::field::display(status));
        }
        outcome
    }

    async fn drive(&self, mut saga: SagaRecord) -> anyhow::Result<SagaStatus> {
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
                log::update_saga(&self.pool, saga.id, &saga.state, self.park_retry).await?;
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
            {
                tokio::time::sleep(pause).await;
            }
            match next {
                Next::Stop(status) => return Ok(status),
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
                    log::update_step(&self.pool, saga.id, i, &saga.state.steps[i], event).await?;
                    let done = self.attempt(&saga, i, compensation, attempt).await;
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
                    log::update_step(&self.pool, saga.id, i, &saga.state.steps[i], event).await?;
                    wait = Some((next, done.pause));
                }
            }
        }
    }

    /// One call of step `i` (or of its compensation): what it established, and how
    /// long to wait before making the same call again if it comes to that.
    async fn attempt(&self, saga: &SagaRecord, i: usize, compensation: bool, attempt: u32) -> Attempted {
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

    type Outcome = SagaStatus;

    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<SagaStatus>> {
        Box::pin(async move { Engine::run(&self, id).await })
    }
}

/// Unfinished sagas that are due, for the sweeper.
pub fn find_due(pool: PgPool, reoffer_after: Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> {
    Box::pin(async move { log::offer_due_sagas(&pool, 100, reoffer_after).await })
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
