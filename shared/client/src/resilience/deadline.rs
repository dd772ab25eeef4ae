//! Deadlines across hops. A caller sends what is left of its time as
//! `Request-Timeout-Ms`; the callee stops at that deadline (answering 504, which
//! nobody waits for) and cuts its own outgoing calls to what is left of it, so no
//! service works for a caller that has already given up.
//!
//! Stopping means dropping the handler's future before its unit of work commits:
//! the idempotency middleware runs the work under the same deadline and, when it
//! passes, rolls the transaction back and releases the key (a 5xx is never stored),
//! so a later retry with the same key runs afresh. The `timeout` fault models a
//! callee that ignores deadlines: its work runs detached and still happens.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use actix_web::{
    Error,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

use api::headers::REQUEST_TIMEOUT_MS;
use base::{ErrorCode, Problem};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// What is left of the current request's deadline, if its caller sent one.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The current request's deadline, if its caller sent one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `work` under `deadline`: outgoing calls inside it are cut to what is left.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Middleware honouring an incoming `Request-Timeout-Ms`.
pub async fn honour_deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(raw) = req.headers().get(REQUEST_TIMEOUT_MS) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let Some(budget) = raw
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
    else {
        return Ok(req.error_response(Problem::new(
            ErrorCode::InvalidRequest,
            "Request-Timeout-Ms must be a whole number of milliseconds",
        )));
    };
    if budget.is_zero() {
        super::span_event("deadline_exceeded", Vec::new());
        tracing::warn!(
            resilience.decision = "deadline_exceeded",
            "request arrived with no time left before its caller's deadline; nothing was done"
        );
        return Ok(req.error_response(Problem::new(
            ErrorCode::DeadlineExceeded,
            "the request arrived with no time left (Request-Timeout-Ms: 0); nothing was done",
        )));
    }
    let deadline = Instant::now() + budget;
    match tokio::time::timeout(budget, within(deadline, next.call(req))).await {
        Ok(outcome) => outcome.map(ServiceResponse::map_into_boxed_body),
        // The request went into routing and cannot be had back; the answer is
        // rendered here, inside the request's span, so it carries its trace id.
        Err(_) => {
            let response = actix_web::ResponseError::error_response(&exceeded(budget));
            Err(actix_web::error::InternalError::from_response("deadline exceeded", response).into())
        }
    }
}

/// The answer for work stopped at its deadline; also a span event and a log line.
pub fn exceeded(budget: Duration) -> Problem {
    super::span_event(
        "deadline_exceeded",
        vec![opentelemetry::KeyValue::new(
            "resilience.deadline_ms",
            budget.as_millis() as i64,
        )],
    );
    tracing::warn!(
        resilience.decision = "deadline_exceeded",
        deadline_ms = budget.as_millis() as u64,
        "stopped at the caller's deadline; the unfinished work was rolled back"
    );
    Problem::new(
        ErrorCode::DeadlineExceeded,
        format!(
            "stopped at the caller's deadline ({} ms); nothing was committed",
            budget.as_millis()
        ),
    )
}
