//! Load shedding on `POST /checkout`: when the service already has as many
//! checkouts in flight, or as many sagas / transactions running, as it is allowed —
//! or when a downstream the checkout cannot do without is behind an open circuit
//! breaker — a new checkout is refused at once with 503 + `Retry-After`, before its
//! idempotency key is claimed, so nothing is written and the same request can
//! simply be sent again later. Refused here, it is not started only to be stopped
//! half-way by the same protections.
//!
//! `GET /admin/resilience` ([`admin_routes`]) shows the shedder beside the HTTP
//! client's breakers, budgets and bulkheads.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_web::{
    Error, HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use base::{
    ErrorCode, Problem,
    config::{Service, resilience::SheddingSettings},
};
use client::resilience::{Resilience, span_event, view};

use crate::supervisor::RunningGauge;

pub struct LoadShedder {
    settings: Option<SheddingSettings>,
    in_flight: Arc<Semaphore>,
    running: RunningGauge,
    /// The downstreams a checkout needs before it can no longer simply be refused
    /// (a saga's steps up to its pivot), with the breakers that guard them.
    needs: Option<(Arc<Resilience>, &'static [Service])>,
    shed: AtomicU64,
}

impl LoadShedder {
    /// `running` counts the jobs the checkout starts (the supervisor's gauge).
    pub fn new(settings: Option<SheddingSettings>, running: RunningGauge) -> Self {
        let slots = settings.map_or(Semaphore::MAX_PERMITS, |s| s.max_in_flight);
        LoadShedder {
            settings,
            in_flight: Arc::new(Semaphore::new(slots)),
            running,
            needs: None,
            shed: AtomicU64::new(0),
        }
    }

    /// Also refuses checkouts while the breaker of any of `downstreams` is open
    /// (`Retry-After`: until it lets a trial call through).
    pub fn needing(mut self, resilience: Arc<Resilience>, downstreams: &'static [Service]) -> Self {
        self.needs = Some((resilience, downstreams));
        self
    }

    fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, (String, Duration)> {
        let Some(settings) = self.settings else {
            return Ok(None);
        };
        if let Some((name, open_for)) = self.needs.as_ref().and_then(|(r, names)| r.open_breaker(names)) {
            return Err((
                format!(
                    "the circuit breaker for {name} is open for {} ms more; a checkout started now could not get past it",
                    open_for.as_millis()
                ),
                open_for.max(settings.retry_after),
            ));
        }
        let running = self.running.get();
        if running >= settings.max_running {
            return Err((
                format!(
                    "{running} checkouts are still running here (at most {})",
                    settings.max_running
                ),
                settings.retry_after,
            ));
        }
        match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err((
                format!(
                    "{} checkout requests are in flight here (at most that many)",
                    settings.max_in_flight
                ),
                settings.retry_after,
            )),
        }
    }

    pub fn snapshot(&self) -> view::SheddingView {
        let running = self.running.get();
        match self.settings {
            None => view::SheddingView {
                enabled: false,
                running,
                in_flight: None,
                max_in_flight: None,
                max_running: None,
                shed: None,
            },
            Some(settings) => view::SheddingView {
                enabled: true,
                running,
                in_flight: Some(settings.max_in_flight - self.in_flight.available_permits()),
                max_in_flight: Some(settings.max_in_flight),
                max_running: Some(settings.max_running),
                shed: Some(self.shed.load(Ordering::Relaxed)),
            },
        }
    }
}

/// Middleware for the checkout endpoint; outermost, so a shed request touches
/// nothing (no fault point, no idempotency claim, no database).
pub async fn shed_load(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let shedder = req.app_data::<web::Data<LoadShedder>>().cloned();
    let Some(shedder) = shedder.filter(|_| crate::web::is_mutating(req.method())) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    match shedder.admit() {
        Ok(_permit) => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
        Err((why, retry_after)) => {
            shedder.shed.fetch_add(1, Ordering::Relaxed);
            span_event(
                "shed",
                vec![opentelemetry::KeyValue::new("resilience.reason", why.clone())],
            );
            tracing::warn!(
                resilience.decision = "shed",
                reason = %why,
                retry_after_secs = retry_after.as_secs(),
                "checkout shed: {why}"
            );
            let problem = Problem::new(
                ErrorCode::Overloaded,
                format!("checkout refused at once: {why}; nothing was done"),
            )
            .with_retry_after(retry_after.as_secs_f64().ceil() as u64);
            Ok(req.error_response(problem))
        }
    }
}

/// `GET /admin/resilience`: breakers, budgets and bulkheads per downstream, and the
/// load shedder's counts where the service sheds load.
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/resilience").route(web::get().to(show)));
}

/// The breakers, retry budgets, bulkheads and load shedding of this service's calls,
/// as they stand.
#[utoipa::path(get, path = "/admin/resilience", tag = "resilience",
    responses((status = 200, description = "Each downstream's breaker, budget and bulkhead; `load_shedding`", body = view::ResilienceView)))]
pub(crate) async fn show(
    resilience: web::Data<Arc<Resilience>>,
    shedder: Option<web::Data<LoadShedder>>,
) -> Result<HttpResponse, Problem> {
    crate::web::ok(&resilience.snapshot(shedder.map(|s| s.snapshot())))
}
