//! The traced HTTP client every service uses for its peers: built once at start-up,
//! cloned cheaply, each call creating an OpenTelemetry client span and injecting
//! `traceparent`, `tracestate` and `baggage` (which carries fault injection), and
//! going through the process's circuit breakers, retry budgets and bulkheads
//! ([`crate::resilience`]).

use std::{sync::Arc, time::Duration};

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_tracing::{ReqwestOtelSpanBackend, TracingMiddleware};

use api::{ErrorCode, ProblemBody, headers::IDEMPOTENCY_KEY};

use crate::resilience::{Rejection, Resilience, ResilienceMiddleware};

/// The header carrying an idempotency key.

#[derive(Clone, Debug)]
pub struct HttpClient {
    client: ClientWithMiddleware,
    resilience: Arc<Resilience>,
}

impl HttpClient {
    /// A client sharing the process's resilience state (one breaker per downstream
    /// whichever client calls it).
    pub fn new(resilience: Arc<Resilience>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(HttpClient {
            client: ClientBuilder::new(client)
                .with(TracingMiddleware::<ClientSpan>::new())
                .with(ResilienceMiddleware(Arc::clone(&resilience)))
                .build(),
            resilience,
        })
    }

    pub fn resilience(&self) -> &Arc<Resilience> {
        &self.resilience
    }

    /// A POST with a JSON body, an idempotency key and a deadline for the whole call.
    pub fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
        idempotency_key: &str,
        timeout: Duration,
    ) -> reqwest_middleware::RequestBuilder {
        self.client
            .post(url)
            .header(IDEMPOTENCY_KEY, idempotency_key)
            .json(body)
            .timeout(timeout)
    }

    pub fn get(&self, url: &str, timeout: Duration) -> reqwest_middleware::RequestBuilder {
        self.client.get(url).timeout(timeout)
    }

    pub fn inner(&self) -> &ClientWithMiddleware {
        &self.client
    }
}

/// The client span of every call: reqwest-tracing's own, except that a failed call's
/// cause chain is written with `Display`. Its default writes the error with `Debug`,
/// which for a middleware's error (an `anyhow::Error`: a call the resilience checks
/// did not send) resolves a backtrace whenever `RUST_BACKTRACE` is set — a symbol
/// cache of tens of MiB and milliseconds of CPU on every short-circuited call.
struct ClientSpan;

impl ReqwestOtelSpanBackend for ClientSpan {
    fn on_request_start(request: &reqwest::Request, extensions: &mut http::Extensions) -> tracing::Span {
        reqwest_tracing::DefaultSpanBackend::on_request_start(request, extensions)
    }

    fn on_request_end(
        span: &tracing::Span,
        outcome: &reqwest_middleware::Result<reqwest::Response>,
        _: &mut http::Extensions,
    ) {
        let error = match outcome {
            Ok(response) => return reqwest_tracing::default_on_request_success(span, response),
            Err(error) => error,
        };
        span.record(reqwest_tracing::OTEL_STATUS_CODE, "ERROR");
        span.record(reqwest_tracing::ERROR_MESSAGE, error.to_string());
        span.record(reqwest_tracing::ERROR_CAUSE_CHAIN, base::problem::one_line(error));
        if let reqwest_middleware::Error::Reqwest(e) = error
            && let Some(status) = e.status()
        {
            span.record(reqwest_tracing::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
        }
    }
}

/// What a call to a participant established. Only a definite answer ends retrying:
/// a timeout, a lost connection, a 5xx or a 423 "rows locked" leave the outcome
/// unknown, and the same call (same idempotency key) is made again; a 409 "still in
/// flight" says an earlier call with this key is being worked on, and when its
/// lease ends.
///
/// `T` is the body a 2xx answer carries, read as the contract type the caller expects
/// (`serde::de::IgnoredAny` when only success matters); a 2xx whose body is not a `T`
/// is no definite answer.
#[derive(Debug, Clone)]
pub enum CallOutcome<T> {
    /// 2xx, with the body.
    Succeeded(T),
    /// A definite business refusal (4xx other than 408, 429 and in-flight 409), with
    /// its problem body (`None` if the answer had none).
    Refused { status: u16, problem: Option<ProblemBody> },
    /// No definite answer.
    Unknown(String),
    /// An earlier call with the same idempotency key is still being worked on (its
    /// claim holds a lease, held by a caller that may have crashed): this call did
    /// nothing, and the earlier one ends, or its lease does, within `retry_after`.
    InFlight { retry_after: Duration },
    /// Never sent: refused on this side by a breaker, a bulkhead, the retry budget
    /// or the deadline. The work was certainly not done by this call.
    NotSent(Rejection),
}

impl<T: serde::de::DeserializeOwned> CallOutcome<T> {
    pub async fn of(result: Result<reqwest::Response, reqwest_middleware::Error>) -> CallOutcome<T> {
        let response = match result {
            Ok(response) => response,
            Err(reqwest_middleware::Error::Middleware(e)) if e.downcast_ref::<Rejection>().is_some() => {
                return match e.downcast::<Rejection>() {
                    Ok(rejection) => CallOutcome::NotSent(rejection),
                    Err(e) => CallOutcome::Unknown(format!("{e}")),
                };
            }
            Err(e) if is_timeout(&e) => return CallOutcome::Unknown(format!("timed out: {e}")),
            Err(e) => return CallOutcome::Unknown(format!("no answer: {e}")),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            Err(e) => return CallOutcome::Unknown(format!("answer {status} lost while reading: {e}")),
        };
        if (200..=299).contains(&status) {
            return match serde_json::from_value(body) {
                Ok(body) => CallOutcome::Succeeded(body),
                Err(e) => CallOutcome::Unknown(format!("answer {status} unreadable: {e}")),
            };
        }
        // Only an error answer is read as a problem: a success is not copied for it.
        let problem: Option<ProblemBody> = serde_json::from_value(body.clone()).ok();
        let problem_type = problem.as_ref().and_then(ProblemBody::code);
        match status {
            // Timed out, locked rows, too many requests: nothing definite, try again.
            408 | 423 | 429 => CallOutcome::Unknown(format!("{status}: {}", detail(problem.as_ref(), &body))),
            409 if problem_type == Some(ErrorCode::IdempotencyKeyInFlight) => CallOutcome::InFlight {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            400..=499 => CallOutcome::Refused { status, problem },
            _ => CallOutcome::Unknown(format!("{status}: {}", detail(problem.as_ref(), &body))),
        }
    }
}

impl<T> CallOutcome<T> {
    /// A one-line account, for logs and the saga's `reason`.
    pub fn describe(&self) -> String {
        match self {
            CallOutcome::Succeeded(_) => "succeeded".into(),
            CallOutcome::Refused { status, problem } => match problem {
                Some(problem) => {
                    let slug = problem.code().map_or("refused", ErrorCode::slug);
                    format!("{status} {slug}: {}", problem.detail)
                }
                None => format!("{status} refused"),
            },
            CallOutcome::Unknown(reason) => format!("outcome unknown: {reason}"),
            CallOutcome::InFlight { retry_after } => format!(
                "outcome unknown: the previous attempt is still in flight (its lease ends within {} s)",
                retry_after.as_secs()
            ),
            CallOutcome::NotSent(rejection) => format!("not sent: {rejection}"),
        }
    }
}

/// What an answer says went wrong: its problem's detail, or the body itself.
fn detail(problem: Option<&ProblemBody>, body: &serde_json::Value) -> String {
    problem.map_or_else(|| body.to_string(), |p| p.detail.clone())
}

fn is_timeout(e: &reqwest_middleware::Error) -> bool {
    match e {
        reqwest_middleware::Error::Reqwest(e) => e.is_timeout(),
        reqwest_middleware::Error::Middleware(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use base::problem::one_line;

    #[test]
    fn a_middleware_error_is_its_causes_on_one_line_without_a_backtrace() {
        let rejected = anyhow::anyhow!("bulkhead full").context("not sent to payment");
        let error = reqwest_middleware::Error::Middleware(rejected);
        assert_eq!(one_line(&error), "not sent to payment: bulkhead full");
    }
}
