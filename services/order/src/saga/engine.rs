//! Walks a saga through the steps table: decides with `state.rs`, logs every change
//! to the saga log before and after each call, calls the participants with the
//! step's idempotency key and timeout, and backs off between attempts.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use shared::{
    http_client::{CallOutcome, HttpClient},
    resilience::{Attempt, Rejection},
    supervisor::{Job, LocalBoxFuture},
};
use sqlx::PgPool;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use super::{
    log::{self, SagaRecord},
    state::{Next, Outcome, SagaState, SagaStatus},
    steps::{COMPENSATION, Call, STEPS, is_before_or_at_pivot},
};

/// Where the participants are. The orchestrator reaches its own order endpoints
/// over loopback like any other participant's, so they are fault points too.
#[derive(Debug, Clone)]
pub struct Participants {
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub email: String,
}

pub struct Engine {
    pub pool: PgPool,
    pub client: HttpClient,
    pub participants: Participants,
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
            saga.resumed_from = ?saga.state.status,
            saga.outcome = Empty,
        );
        if let Some(traceparent) = &saga.traceparent {
            shared::telemetry::continue_trace(&span, traceparent);
        }
        let outcome = self.drive(saga).instrument(span.clone()).await;
        if let Ok(status) = &outcome {
            span.record("saga.outcome", tracing::field::debug(status));
        }
        outcome
    }

    async fn drive(&self, mut saga: SagaRecord) -> anyhow::Result<SagaStatus> {
        saga.state.resume();
        let shown = |s: &SagaState| (s.status, s.reason.clone(), s.parked_reason.clone());
        let mut saved = shown(&saga.state);
        loop {
            let next = saga.state.decide();
            if shown(&saga.state) != saved {
                log::update_saga(&self.pool, saga.id, &saga.state, self.park_retry).await?;
                saved = shown(&saga.state);
                tracing::info!(
                    status = ?saga.state.status,
                    reason = saga.state.reason.as_deref(),
                    parked_reason = saga.state.parked_reason.as_deref(),
                    "saga.status_changed"
                );
            }
            match next {
                Next::Stop(status) => return Ok(status),
                Next::Act(i) => {
                    let failed_so_far = saga.state.steps[i].attempts;
                    if failed_so_far > 0 {
                        tokio::time::sleep(STEPS[i].retry.backoff(failed_so_far)).await;
                    }
                    let attempt = saga.state.begin_action(i);
                    log::update_step(&self.pool, saga.id, i, &saga.state.steps[i]).await?;
                    let outcome = self.attempt(&saga, i, false, attempt).await;
                    saga.state.record_action(i, outcome);
                    log::update_step(&self.pool, saga.id, i, &saga.state.steps[i]).await?;
                }
                Next::Compensate(j) => {
                    let failed_so_far = saga.state.steps[j].compensation_attempts;
                    if failed_so_far > 0 {
                        tokio::time::sleep(COMPENSATION.backoff(failed_so_far)).await;
                    }
                    let attempt = saga.state.begin_compensation(j);
                    log::update_step(&self.pool, saga.id, j, &saga.state.steps[j]).await?;
                    let outcome = self.attempt(&saga, j, true, attempt).await;
                    saga.state.record_compensation(j, outcome);
                    log::update_step(&self.pool, saga.id, j, &saga.state.steps[j]).await?;
                }
            }
        }
    }

    async fn attempt(&self, saga: &SagaRecord, i: usize, compensation: bool, attempt: u32) -> Outcome {
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
        let (url, body) = self.request(call, saga);
        let mut request = self
            .client
            .post_json(&url, &body, &key, step.timeout)
            .with_extension(Attempt(attempt));
        if let Some(baggage) = baggage_for_attempt(saga.baggage.as_deref(), attempt) {
            request = request.header("baggage", baggage);
        }
        async {
            let outcome = CallOutcome::of(request.send().await).await;
            let described = outcome.describe();
            tracing::Span::current().record("saga.step.outcome", described.as_str());
            match outcome {
                CallOutcome::Succeeded(_) => Outcome::Succeeded,
                CallOutcome::Refused { .. } => {
                    tracing::info!(outcome = %described, "step refused");
                    Outcome::Refused(described)
                }
                CallOutcome::Unknown(_) => {
                    tracing::warn!(outcome = %described, "step outcome unknown; it will be retried with the same key");
                    Outcome::Unknown(described)
                }
                // Refused on this side (breaker, bulkhead, retry budget): this call
                // certainly did nothing. Up to the pivot the saga fails fast (see
                // `SagaState::record_action`). Past the pivot and when compensating
                // it must go on: it waits until an open breaker lets a trial
                // through, then tries again.
                CallOutcome::NotSent(rejection) => {
                    if let Rejection::CircuitOpen { retry_after, .. } = rejection
                        && (compensation || !is_before_or_at_pivot(i))
                    {
                        tokio::time::sleep(retry_after).await;
                    }
                    Outcome::NotSent(described)
                }
            }
        }
        .instrument(span)
        .await
    }

    fn request(&self, call: Call, saga: &SagaRecord) -> (String, Value) {
        let p = &self.participants;
        let id = saga.order_id;
        let checkout = &saga.request;
        match call {
            Call::CreateOrder => (
                format!("{}/orders", p.order),
                json!({
                    "order_id": id,
                    "customer_email": checkout.customer_email,
                    "payment_token": checkout.payment_token,
                    "items": checkout.items,
                }),
            ),
            Call::CancelOrder => {
                let reason: String = saga
                    .state
                    .reason
                    .as_deref()
                    .unwrap_or("cancelled")
                    .chars()
                    .take(500)
                    .collect();
                (format!("{}/orders/{id}/cancel", p.order), json!({ "reason": reason }))
            }
            Call::ReserveInventory => {
                let items: Vec<Value> = checkout
                    .items
                    .iter()
                    .map(|i| json!({ "sku": i.sku, "quantity": i.quantity }))
                    .collect();
                (
                    format!("{}/reservations", p.inventory),
                    json!({ "order_id": id, "items": items }),
                )
            }
            Call::ReleaseInventory => (format!("{}/reservations/{id}/release", p.inventory), json!({})),
            Call::ChargePayment => (
                format!("{}/charges", p.payment),
                json!({ "order_id": id, "amount_cents": checkout.total_cents, "payment_token": checkout.payment_token }),
            ),
            Call::RefundPayment => (format!("{}/refunds", p.payment), json!({ "order_id": id })),
            Call::CommitInventory => (format!("{}/reservations/{id}/commit", p.inventory), json!({})),
            Call::ConfirmOrder => (format!("{}/orders/{id}/confirm", p.order), json!({})),
            Call::SendEmail => (
                format!("{}/emails", p.email),
                json!({ "order_id": id, "to": checkout.customer_email, "total_cents": checkout.total_cents }),
            ),
        }
    }
}

impl Job for Engine {
    const KIND: &'static str = "saga";

    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<String>> {
        Box::pin(async move { Ok(format!("{:?}", Engine::run(&self, id).await?)) })
    }
}

/// Unfinished sagas that are due, for the sweeper.
pub fn find_due(pool: PgPool, reoffer_after: Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> {
    Box::pin(async move { log::offer_due_sagas(&pool, 100, reoffer_after).await })
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
