//! Resilience patterns, each switchable and each visible: what a caller does so that
//! one slow or failing downstream cannot take the rest of the platform with it.
//!
//! On the calling side, in the shared HTTP client ([`ResilienceMiddleware`]), per
//! downstream, in this order:
//!
//! 1. **deadline**: the call's timeout is cut to what is left of the caller's own
//!    deadline and sent on as `Request-Timeout-Ms`, so a callee never works past it;
//! 2. **retry budget** ([`budget`]): a retry is made only while retries stay under a
//!    fraction of first calls;
//! 3. **bulkhead**: at most `max_concurrent` calls in flight to one downstream, a
//!    short bounded wait for a slot, then refused;
//! 4. **circuit breaker** ([`breaker`]): after N consecutive failures, calls are
//!    refused at once until a cool-down has passed and a trial call succeeds.
//!
//! A call marked [`ReleasesLocks`] (2PC's phase two) skips 2–4: it frees what the
//! others wait for. A call marked [`MustHappen`] (a saga's compensation, a step past
//! its pivot) skips 2: the breaker and the bulkhead pace it by the downstream's
//! health, and every breaker that closes again is announced
//! ([`Resilience::recoveries`]) so that work waiting for that downstream resumes.
//!
//! A refused call is never sent: the caller gets [`Rejection`] (as
//! [`crate::http_client::CallOutcome::NotSent`]) and treats it like any failure
//! whose outcome is known to be "not done".
//!
//! On the serving side, [`deadline`] honours an incoming `Request-Timeout-Ms` (load
//! shedding is the service platform's). Every decision is a tracing event (a span
//! event in the trace and a log line), and [`Resilience::snapshot`] is what
//! `GET /admin/resilience` shows ([`view`]).

pub mod breaker;
pub mod budget;
pub mod deadline;

/// The views of `GET /admin/resilience`, in the contract.
pub use api::resilience as view;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use base::config::{
    PeerSettings, Service,
    resilience::{BulkheadSettings, ResilienceSettings},
};

use self::{
    breaker::{Admission, BreakerState, CallResult, CircuitBreaker, Transition},
    budget::RetryBudget,
};

/// Why a call was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("circuit open for {downstream}; next trial in {} ms", retry_after.as_millis())]
    CircuitOpen { downstream: String, retry_after: Duration },
    #[error("bulkhead full for {downstream}: {max} calls in flight")]
    BulkheadFull { downstream: String, max: usize },
    #[error("retry to {downstream} denied by the retry budget")]
    RetryBudgetExhausted { downstream: String },
    #[error("the caller's deadline has passed")]
    DeadlineExceeded,
}

impl Rejection {
    /// For span events and logs: one word per kind of decision.
    pub fn decision(&self) -> &'static str {
        match self {
            Rejection::CircuitOpen { .. } => "short_circuited",
            Rejection::BulkheadFull { .. } => "bulkhead_full",
            Rejection::RetryBudgetExhausted { .. } => "retry_denied",
            Rejection::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

/// A decision as a span event on the current span, named `resilience.<decision>`
/// (the log line is the caller's `tracing` event).
pub fn span_event(decision: &'static str, attributes: Vec<opentelemetry::KeyValue>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    tracing::Span::current().add_event(format!("resilience.{decision}"), attributes);
}

fn downstream_event(decision: &'static str, downstream: &str) {
    span_event(
        decision,
        vec![opentelemetry::KeyValue::new(
            "resilience.downstream",
            downstream.to_owned(),
        )],
    );
}

/// Which attempt a call is (1 = first); set by callers that retry, with
/// `RequestBuilder::with_extension`. Anything above 1 spends from the retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(pub u32);

/// Marks a call that releases what other calls are waiting for: two-phase commit's
/// phase two, whose `COMMIT PREPARED` / `ROLLBACK PREPARED` frees the rows a prepared
/// transaction holds. It skips the retry budget, the bulkhead and the breaker (and
/// does not move the breaker): otherwise the calls queued behind its locks fill the
/// bulkhead and trip the breaker, and keep out the one call that would free them.
/// Its deadline still applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasesLocks;

/// Marks a call whose work must eventually happen whatever the load: a saga's
/// compensation, or a step past its pivot. The retry budget is there to keep
/// optional retries from piling onto a sick downstream; denying these would only
/// starve work that has to be done anyway (after an outage, parked work drained at
/// the budget's floor of about one call a second). It skips the budget, and goes
/// through the bulkhead and the breaker, which pace it by the downstream's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MustHappen;

/// One downstream's breaker, budget and bulkhead.
struct Downstream {
    name: String,
    /// Where a breaker that closes again is announced.
    recovered: tokio::sync::broadcast::Sender<String>,
    breaker: Option<Mutex<CircuitBreaker>>,
    budget: Option<Mutex<RetryBudget>>,
    bulkhead: Option<(Arc<Semaphore>, BulkheadSettings)>,
    bulkhead_rejected: AtomicU64,
    calls: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Downstream {
    fn new(name: String, settings: &ResilienceSettings, recovered: tokio::sync::broadcast::Sender<String>) -> Self {
        Downstream {
            name,
            recovered,
            breaker: settings.breaker.map(|s| Mutex::new(CircuitBreaker::new(s))),
            budget: settings
                .retry_budget
                .map(|s| Mutex::new(RetryBudget::new(s, Instant::now()))),
            bulkhead: settings
                .bulkhead
                .map(|s| (Arc::new(Semaphore::new(s.max_concurrent)), s)),
            bulkhead_rejected: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// `attempt` is `None` for a call the budget does not apply to ([`MustHappen`]).
    fn spend(&self, attempt: Option<u32>) -> Result<(), Rejection> {
        let (Some(budget), Some(attempt)) = (&self.budget, attempt) else {
            return Ok(());
        };
        let mut budget = lock(budget);
        let now = Instant::now();
        if attempt <= 1 {
            budget.record_call(now);
            return Ok(());
        }
        if budget.try_retry(now) {
            return Ok(());
        }
        let window = budget.window(now);
        let rejection = Rejection::RetryBudgetExhausted {
            downstream: self.name.clone(),
        };
        downstream_event(rejection.decision(), &self.name);
        tracing::warn!(
            resilience.decision = rejection.decision(),
            resilience.downstream = %self.name,
            attempt,
            window.calls = window.calls,
            window.retries = window.retries,
            "retry denied by the retry budget"
        );
        Err(rejection)
    }

    async fn enter(&self, timeout: Option<Duration>) -> Result<Option<OwnedSemaphorePermit>, Rejection> {
        let Some((slots, settings)) = &self.bulkhead else {
            return Ok(None);
        };
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Ok(Some(permit));
        }
        let wait = timeout.map_or(settings.max_wait, |t| t.min(settings.max_wait));
        match tokio::time::timeout(wait, Arc::clone(slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => {
                self.bulkhead_rejected.fetch_add(1, Ordering::Relaxed);
                let rejection = Rejection::BulkheadFull {
                    downstream: self.name.clone(),
                    max: settings.max_concurrent,
                };
                downstream_event(rejection.decision(), &self.name);
                tracing::warn!(
                    resilience.decision = rejection.decision(),
                    resilience.downstream = %self.name,
                    bulkhead.max_concurrent = settings.max_concurrent,
                    bulkhead.waited_ms = wait.as_millis() as u64,
                    "call refused: bulkhead full"
                );
                Err(rejection)
            }
        }
    }

    /// The retry budget, the bulkhead and the breaker, in that order: the bulkhead slot
    /// the call holds while it runs, and whether it is the breaker's trial.
    async fn pass(
        &self,
        attempt: Option<u32>,
        timeout: Option<Duration>,
    ) -> Result<(Option<OwnedSemaphorePermit>, bool), Rejection> {
        self.spend(attempt)?;
        let slot = self.enter(timeout).await?;
        let trial = self.admit()?;
        Ok((slot, trial))
    }

    /// Whether the breaker lets the call through (and whether it is a trial).
    fn admit(&self) -> Result<bool, Rejection> {
        let Some(breaker) = &self.breaker else {
            return Ok(false);
        };
        let (admission, transition) = lock(breaker).admit(Instant::now());
        if let Some(transition) = transition {
            self.report(transition);
        }
        match admission {
            Admission::Allowed { trial } => Ok(trial),
            Admission::ShortCircuited { retry_after } => {
                let rejection = Rejection::CircuitOpen {
                    downstream: self.name.clone(),
                    retry_after,
                };
                downstream_event(rejection.decision(), &self.name);
                tracing::warn!(
                    resilience.decision = rejection.decision(),
                    resilience.downstream = %self.name,
                    breaker.retry_in_ms = retry_after.as_millis() as u64,
                    "call short-circuited: circuit open"
                );
                Err(rejection)
            }
        }
    }

    fn record(&self, result: CallResult, trial: bool) {
        if let Some(breaker) = &self.breaker {
            let transition = lock(breaker).record(result, trial, Instant::now());
            if let Some(transition) = transition {
                self.report(transition);
            }
        }
    }

    fn report(&self, transition: Transition) {
        let name = &self.name;
        let decision = match transition {
            Transition::Opened => "breaker_opened",
            Transition::Reopened => "breaker_reopened",
            Transition::HalfOpened => "breaker_half_opened",
            Transition::Closed => "breaker_closed",
        };
        downstream_event(decision, name);
        match transition {
            Transition::Opened => tracing::warn!(
                resilience.decision = "breaker_opened",
                resilience.downstream = %name,
                "circuit breaker opened: calls to {name} fail fast until the cool-down ends"
            ),
            Transition::Reopened => tracing::warn!(
                resilience.decision = "breaker_reopened",
                resilience.downstream = %name,
                "circuit breaker reopened: the trial call to {name} failed"
            ),
            Transition::HalfOpened => tracing::info!(
                resilience.decision = "breaker_half_opened",
                resilience.downstream = %name,
                "circuit breaker half-open: a trial call goes to {name}"
            ),
            Transition::Closed => {
                tracing::info!(
                    resilience.decision = "breaker_closed",
                    resilience.downstream = %name,
                    "circuit breaker closed: the trial call to {name} succeeded"
                );
                // Nobody listening is fine.
                let _ = self.recovered.send(name.clone());
            }
        }
    }

    /// How long the breaker stays open from now, if it is open.
    fn open_for(&self, now: Instant) -> Option<Duration> {
        match lock(self.breaker.as_ref()?).state() {
            BreakerState::Open { until } if until > now => Some(until - now),
            _ => None,
        }
    }

    fn snapshot(&self) -> view::DownstreamView {
        let now = Instant::now();
        let breaker = self.breaker.as_ref().map(|b| {
            let b = lock(b);
            let mut breaker = view::BreakerView {
                state: view::BreakerStateName::Closed,
                opened: b.opened,
                short_circuited: b.short_circuited,
                consecutive_failures: None,
                half_open_in_ms: None,
                trials_in_flight: None,
            };
            match b.state() {
                BreakerState::Closed { consecutive_failures } => {
                    breaker.consecutive_failures = Some(consecutive_failures);
                }
                BreakerState::Open { until } => {
                    breaker.state = view::BreakerStateName::Open;
                    breaker.half_open_in_ms = Some(until.saturating_duration_since(now).as_millis() as u64);
                }
                BreakerState::HalfOpen { trials_in_flight, .. } => {
                    breaker.state = view::BreakerStateName::HalfOpen;
                    breaker.trials_in_flight = Some(trials_in_flight);
                }
            }
            breaker
        });
        let retry_budget = self.budget.as_ref().map(|b| {
            let mut b = lock(b);
            let window = b.window(now);
            view::BudgetView {
                window_calls: window.calls,
                window_retries: window.retries,
                window_allowed: window.allowed,
                denied: b.denied,
            }
        });
        let bulkhead = self.bulkhead.as_ref().map(|(slots, s)| view::BulkheadView {
            in_flight: s.max_concurrent - slots.available_permits(),
            max_concurrent: s.max_concurrent,
            rejected: self.bulkhead_rejected.load(Ordering::Relaxed),
        });
        view::DownstreamView {
            name: self.name.clone(),
            calls: self.calls.load(Ordering::Relaxed),
            breaker,
            retry_budget,
            bulkhead,
        }
    }
}

/// The resilience state of one process: a [`Downstream`] per peer, created on
/// first use and named after the peer's service.
pub struct Resilience {
    settings: ResilienceSettings,
    names: RwLock<HashMap<String, String>>,
    downstreams: RwLock<HashMap<String, Arc<Downstream>>>,
    /// The name of every downstream whose breaker closes again.
    recovered: tokio::sync::broadcast::Sender<String>,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Resilience {
    pub fn new(settings: ResilienceSettings, peers: &PeerSettings) -> Self {
        let names = Service::ALL
            .into_iter()
            .filter_map(|s| Some((origin_of(peers.url(s))?, s.name().to_owned())))
            .collect();
        Resilience {
            settings,
            names: RwLock::new(names),
            downstreams: RwLock::new(HashMap::new()),
            recovered: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// The downstreams that recover, as they do: the name of each one whose breaker
    /// closes after a good trial call. A receiver that falls behind misses names
    /// (and is told how many); work waiting for a downstream also retries on its own.
    pub fn recoveries(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.recovered.subscribe()
    }

    /// The first of `names` whose breaker is open, and for how long yet: a request
    /// that needs it can be refused before anything is done.
    pub fn open_breaker(&self, services: &[Service]) -> Option<(Service, Duration)> {
        let now = Instant::now();
        let all = self.downstreams.read().unwrap_or_else(PoisonError::into_inner);
        services
            .iter()
            .find_map(|service| Some((*service, all.get(service.name())?.open_for(now)?)))
    }

    pub fn settings(&self) -> &ResilienceSettings {
        &self.settings
    }

    /// Names a base URL that is not one of the configured peers (the orchestrator
    /// reaching its own endpoints over loopback).
    pub fn name(&self, base_url: &str, name: &str) {
        if let Some(origin) = origin_of(base_url) {
            self.names
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(origin, name.to_owned());
        }
    }

    fn downstream(&self, url: &reqwest::Url) -> Arc<Downstream> {
        let origin = origin_of(url.as_str()).unwrap_or_default();
        let name = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&origin)
            .cloned()
            .unwrap_or(origin);
        if let Some(found) = self
            .downstreams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
        {
            return Arc::clone(found);
        }
        let mut all = self.downstreams.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            all.entry(name.clone())
                .or_insert_with(|| Arc::new(Downstream::new(name, &self.settings, self.recovered.clone()))),
        )
    }

    /// The state of every downstream called so far, for `GET /admin/resilience`.
    pub fn snapshot(&self, load_shedding: Option<view::SheddingView>) -> view::ResilienceView {
        let all = self.downstreams.read().unwrap_or_else(PoisonError::into_inner);
        let mut downstreams: Vec<&Arc<Downstream>> = all.values().collect();
        downstreams.sort_by(|a, b| a.name.cmp(&b.name));
        let s = &self.settings;
        view::ResilienceView {
            patterns: view::PatternsView {
                circuit_breaker: s.breaker.map(|b| view::BreakerSettingsView {
                    failure_threshold: b.failure_threshold,
                    cool_down_ms: b.cool_down.as_millis() as u64,
                    half_open_trials: b.half_open_trials,
                }),
                bulkhead: s.bulkhead.map(|b| view::BulkheadSettingsView {
                    max_concurrent: b.max_concurrent,
                    max_wait_ms: b.max_wait.as_millis() as u64,
                }),
                retry_budget: s.retry_budget.map(|b| view::BudgetSettingsView {
                    ratio: b.ratio,
                    min_per_second: b.min_per_second,
                    window_secs: b.window.as_secs(),
                }),
                load_shedding: s.shedding.map(|l| view::SheddingSettingsView {
                    max_in_flight: l.max_in_flight,
                    max_running: l.max_running,
                    retry_after_secs: l.retry_after.as_secs(),
                }),
            },
            downstreams: downstreams.iter().map(|d| d.snapshot()).collect(),
            load_shedding,
        }
    }
}

fn origin_of(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// The client side of every pattern, as a `reqwest` middleware (inside the tracing
/// middleware, so its decisions are events on the call's client span).
pub struct ResilienceMiddleware(pub Arc<Resilience>);

#[async_trait::async_trait]
impl Middleware for ResilienceMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let started = Instant::now();
        let downstream = self.0.downstream(req.url());
        let attempt = match extensions.get::<MustHappen>() {
            Some(MustHappen) => None,
            None => Some(extensions.get::<Attempt>().map_or(1, |a| a.0)),
        };
        let reject = |rejection: Rejection| Err(reqwest_middleware::Error::middleware(rejection));
        let timeout = match (req.timeout().copied(), deadline::remaining()) {
            (_, Some(left)) if left.is_zero() => {
                downstream_event("deadline_exceeded", &downstream.name);
                tracing::warn!(
                    resilience.decision = "deadline_exceeded",
                    resilience.downstream = %downstream.name,
                    "call not made: the caller's deadline has passed"
                );
                return reject(Rejection::DeadlineExceeded);
            }
            (Some(own), Some(left)) => Some(own.min(left)),
            (own, left) => own.or(left),
        };
        // Let through by budget, bulkhead and breaker: its bulkhead slot, and whether it
        // is the breaker's trial. A call that releases locks skips all three.
        let passed = match extensions.get::<ReleasesLocks>() {
            Some(ReleasesLocks) => None,
            None => match downstream.pass(attempt, timeout).await {
                Ok(passed) => Some(passed),
                Err(rejection) => return reject(rejection),
            },
        };
        if let Some(timeout) = timeout {
            let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
            *req.timeout_mut() = Some(left);
            req.headers_mut().insert(
                api::headers::REQUEST_TIMEOUT_MS,
                http::HeaderValue::from(left.as_millis() as u64),
            );
        }
        downstream.calls.fetch_add(1, Ordering::Relaxed);
        let result = next.run(req, extensions).await;
        if let Some((_slot, trial)) = passed {
            let verdict = match &result {
                Err(_) => CallResult::Failure,
                Ok(response) => verdict(response.status().as_u16()),
            };
            downstream.record(verdict, trial);
        }
        result
    }
}

/// What an answer says about the downstream's health, for its breaker. A conflict
/// (409) or rows locked by another transaction (423) is contention on some rows —
/// one hot SKU held by an in-doubt 2PC — and says nothing either way; counting it
/// would let one hot row cut every caller off from the whole service.
fn verdict(status: u16) -> CallResult {
    match status {
        408 | 429 | 500..=599 => CallResult::Failure,
        409 | 423 => CallResult::Neutral,
        _ => CallResult::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_about_the_downstream_itself_move_its_breaker() {
        for failure in [408, 429, 500, 503, 504] {
            assert_eq!(verdict(failure), CallResult::Failure, "{failure}");
        }
        for contention in [409, 423] {
            assert_eq!(verdict(contention), CallResult::Neutral, "{contention}");
        }
        for fine in [200, 201, 402, 404, 422] {
            assert_eq!(verdict(fine), CallResult::Success, "{fine}");
        }
    }

    #[test]
    fn origins_name_the_peers() {
        assert_eq!(
            origin_of("http://127.0.0.1:8082/charges").as_deref(),
            Some("http://127.0.0.1:8082")
        );
        assert_eq!(
            origin_of("http://payment/charges").as_deref(),
            Some("http://payment:80")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
