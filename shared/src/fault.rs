//! Fault injection, exactly as `contract.md` describes it: per request through W3C
//! baggage (`fault.<service>.<operation>=<kind>`), or by probabilistic rules set with
//! `PUT /admin/faults`. Active only with `FAULT_INJECTION=on`.
//!
//! Every mutating endpoint is a [`FaultPoint`] for its operation. The point wraps the
//! idempotency middleware, so `lost_response` and `crash` happen after the work and
//! its stored response have committed.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_web::{
    Error, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    web,
};
use futures_util::future::{Ready, ready};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use base::{ErrorCode, Problem, config::FaultSettings};

pub use api::faults::{FaultKind, FaultRule, FaultRules, FaultsView};

/// The service's fault switch, its operations and its current rules (app data).
#[derive(Debug)]
pub struct FaultInjector {
    settings: FaultSettings,
    operations: Vec<&'static str>,
    rules: RwLock<Vec<FaultRule>>,
    /// Faults injected per operation since start (same order as `operations`).
    injected: Vec<AtomicU64>,
}

impl FaultInjector {
    /// `operations` are this service's fault points, e.g. `["payment.charge"]`.
    pub fn new(settings: FaultSettings, operations: &[&'static str]) -> Self {
        FaultInjector {
            settings,
            operations: operations.to_vec(),
            rules: RwLock::new(Vec::new()),
            injected: operations.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The fault to inject for `operation`: the request's baggage first, then rules.
    pub fn decide(&self, operation: &str, baggage: Option<&str>) -> Option<FaultKind> {
        if !self.settings.enabled {
            return None;
        }
        let kind = baggage.and_then(|b| fault_from_baggage(b, operation)).or_else(|| {
            let rules = self.rules.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            rules
                .iter()
                .filter(|rule| rule.operation == operation)
                .find(|rule| rand::random::<f64>() < rule.probability)
                .map(|rule| rule.kind)
        })?;
        if let Some(i) = self.operations.iter().position(|op| *op == operation) {
            self.injected[i].fetch_add(1, Ordering::Relaxed);
        }
        Some(kind)
    }

    /// How many faults each operation has had injected since start.
    pub fn injected(&self) -> std::collections::BTreeMap<String, u64> {
        self.operations
            .iter()
            .zip(&self.injected)
            .map(|(op, n)| ((*op).to_owned(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace_rules(&self, rules: Vec<FaultRule>) -> Result<(), Problem> {
        for rule in &rules {
            if !self.operations.contains(&rule.operation.as_str()) {
                return Err(Problem::invalid(format!(
                    "unknown operation {:?}; this service has {:?}",
                    rule.operation, self.operations
                )));
            }
            if !(0.0..=1.0).contains(&rule.probability) || rule.probability.is_nan() {
                return Err(Problem::invalid(format!(
                    "probability must be between 0 and 1, got {}",
                    rule.probability
                )));
            }
        }
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
        Ok(())
    }
}

/// Finds `fault.<operation>` in a W3C baggage header value.
pub fn fault_from_baggage(baggage: &str, operation: &str) -> Option<FaultKind> {
    baggage.split(',').find_map(|member| {
        let member = member.split(';').next()?.trim();
        let (key, value) = member.split_once('=')?;
        let key = key.trim();
        (key.strip_prefix("fault.")? == operation)
            .then(|| percent_decode(value.trim()).parse().ok())
            .flatten()
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records an injected fault on the current span (attribute and event) and in the log.
pub fn record_injected(operation: &str, kind: FaultKind) {
    let value = format!("{operation}={kind}");
    let span = tracing::Span::current();
    span.set_attribute("fault.injected", value.clone());
    span.add_event(
        "fault.injected",
        vec![opentelemetry::KeyValue::new("fault", value.clone())],
    );
    tracing::warn!(fault.injected = %value, "fault injected");
}

/// `PUT/GET/DELETE /admin/faults`; mounted inside the `/admin` scope (and its guard).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/faults")
            .route(web::get().to(list_rules))
            .route(web::put().to(put_rules))
            .route(web::delete().to(delete_rules)),
    );
}

/// The fault switch, the rules, and the faults injected so far per point.
#[utoipa::path(get, path = "/admin/faults", tag = "faults",
    responses((status = 200, description = "The rules", body = FaultsView)))]
pub(crate) async fn list_rules(injector: web::Data<FaultInjector>) -> Result<HttpResponse, Problem> {
    crate::web::ok(&FaultsView {
        enabled: injector.enabled(),
        rules: injector.rules(),
        injected: Some(injector.injected()),
    })
}

/// Replaces the probabilistic fault rules (for load runs).
#[utoipa::path(put, path = "/admin/faults", tag = "faults", request_body = FaultRules,
    responses(
        (status = 200, description = "The rules now in force", body = FaultsView),
        (status = 400, description = "An unknown fault point, or a probability outside 0–1"),
        (status = 409, description = "Fault injection is off (`FAULT_INJECTION`)"),
    ))]
pub(crate) async fn put_rules(
    injector: web::Data<FaultInjector>,
    body: web::Json<FaultRules>,
) -> Result<HttpResponse, Problem> {
    if !injector.enabled() {
        return Err(Problem::new(
            ErrorCode::Conflict,
            "fault injection is off; start the service with FAULT_INJECTION=on",
        ));
    }
    injector.replace_rules(body.into_inner().rules)?;
    crate::web::ok(&FaultsView {
        enabled: true,
        rules: injector.rules(),
        injected: None,
    })
}

/// Removes every rule; the body, if any, is `{}`.
#[utoipa::path(delete, path = "/admin/faults", tag = "faults", request_body = Option<api::NoFields>,
    responses((status = 200, description = "No rules left", body = FaultsView)))]
pub(crate) async fn delete_rules(
    _: crate::web::OptionalJson<api::NoFields>,
    injector: web::Data<FaultInjector>,
) -> Result<HttpResponse, Problem> {
    injector.replace_rules(Vec::new())?;
    crate::web::ok(&FaultsView {
        enabled: injector.enabled(),
        rules: Vec::new(),
        injected: None,
    })
}

/// Middleware marking an endpoint as the fault point of `operation`.
#[derive(Debug, Clone, Copy)]
pub struct FaultPoint {
    operation: &'static str,
}

impl FaultPoint {
    pub fn new(operation: &'static str) -> Self {
        FaultPoint { operation }
    }
}

impl<S, B> Transform<S, ServiceRequest> for FaultPoint
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = FaultPointMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FaultPointMiddleware {
            service: Rc::new(service),
            operation: self.operation,
        }))
    }
}

pub struct FaultPointMiddleware<S> {
    service: Rc<S>,
    operation: &'static str,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for FaultPointMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let operation = self.operation;
        Box::pin(async move {
            if !crate::web::is_mutating(req.method()) {
                return service.call(req).await.map(ServiceResponse::map_into_boxed_body);
            }
            let injector = req.app_data::<web::Data<FaultInjector>>().cloned();
            let baggage = req.headers().get(api::headers::BAGGAGE).and_then(|v| v.to_str().ok());
            let Some(kind) = injector.and_then(|i| i.decide(operation, baggage).map(|k| (k, i))) else {
                return service.call(req).await.map(ServiceResponse::map_into_boxed_body);
            };
            let (kind, injector) = kind;
            record_injected(operation, kind);
            match kind {
                FaultKind::Error => Ok(req.error_response(Problem::new(
                    ErrorCode::FaultInjected,
                    format!("fault.{operation}=error: failed without doing the work"),
                ))),
                FaultKind::Decline => Ok(req.error_response(Problem::new(
                    ErrorCode::FaultDeclined,
                    format!("fault.{operation}=decline: declined without doing the work"),
                ))),
                // At an endpoint there is no lease to lose: a pause is a delay.
                FaultKind::DelayMs(ms) | FaultKind::PauseMs(ms) => {
                    actix_rt::time::sleep(Duration::from_millis(ms)).await;
                    service.call(req).await.map(ServiceResponse::map_into_boxed_body)
                }
                FaultKind::Timeout => {
                    // Detached: the caller gives up, the work still happens afterwards.
                    let wait = injector.settings.timeout_wait;
                    let work = async move {
                        actix_rt::time::sleep(wait).await;
                        service.call(req).await.map(ServiceResponse::map_into_boxed_body)
                    };
                    match actix_rt::spawn(work.instrument(tracing::Span::current())).await {
                        Ok(outcome) => outcome,
                        Err(e) => Err(Problem::internal(anyhow::anyhow!("timeout fault task: {e}")).into()),
                    }
                }
                FaultKind::LostResponse => {
                    let response = service.call(req).await?;
                    let (request, _lost) = response.into_parts();
                    let problem = Problem::new(
                        ErrorCode::ServiceUnavailable,
                        format!(
                            "fault.{operation}=lost_response: the work was done, this answer stands in for a lost one"
                        ),
                    );
                    Ok(ServiceResponse::new(request, problem.error_response()))
                }
                FaultKind::Crash => {
                    let _committed = service.call(req).await;
                    tracing::error!(operation, "fault crash: the work is committed; aborting the process");
                    std::process::abort();
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for raw in [
            "error",
            "decline",
            "delay_ms:250",
            "pause_ms:4000",
            "timeout",
            "lost_response",
            "crash",
        ] {
            let kind: FaultKind = raw.parse().unwrap();
            assert_eq!(kind.to_string(), raw);
        }
        assert!("delay_ms:soon".parse::<FaultKind>().is_err());
        assert!("pause_ms:".parse::<FaultKind>().is_err());
        assert!("explode".parse::<FaultKind>().is_err());
    }

    #[test]
    fn baggage_selects_the_operation() {
        let baggage = "fault.payment.charge=decline, fault.email.send=error;prop=1,other=x";
        assert_eq!(fault_from_baggage(baggage, "payment.charge"), Some(FaultKind::Decline));
        assert_eq!(fault_from_baggage(baggage, "email.send"), Some(FaultKind::Error));
        assert_eq!(fault_from_baggage(baggage, "inventory.reserve"), None);
        assert_eq!(
            fault_from_baggage("fault.order.confirm=delay_ms%3A20", "order.confirm"),
            Some(FaultKind::DelayMs(20))
        );
    }

    fn injector(enabled: bool) -> FaultInjector {
        FaultInjector::new(
            FaultSettings {
                enabled,
                timeout_wait: Duration::from_secs(1),
            },
            &["payment.charge", "payment.refund"],
        )
    }

    #[test]
    fn nothing_is_injected_when_off() {
        let off = injector(false);
        assert_eq!(off.decide("payment.charge", Some("fault.payment.charge=error")), None);
    }

    #[test]
    fn rules_apply_with_their_probability() {
        let on = injector(true);
        on.replace_rules(vec![FaultRule {
            operation: "payment.charge".into(),
            kind: FaultKind::Error,
            probability: 1.0,
        }])
        .unwrap();
        assert_eq!(on.decide("payment.charge", None), Some(FaultKind::Error));
        assert_eq!(on.decide("payment.refund", None), None);
        on.replace_rules(vec![FaultRule {
            operation: "payment.charge".into(),
            kind: FaultKind::Error,
            probability: 0.0,
        }])
        .unwrap();
        assert_eq!(on.decide("payment.charge", None), None);
    }

    #[test]
    fn bad_rules_are_refused_and_change_nothing() {
        let on = injector(true);
        let unknown = FaultRule {
            operation: "inventory.reserve".into(),
            kind: FaultKind::Error,
            probability: 1.0,
        };
        assert!(on.replace_rules(vec![unknown]).is_err());
        let improbable = FaultRule {
            operation: "payment.charge".into(),
            kind: FaultKind::Error,
            probability: 1.5,
        };
        assert!(on.replace_rules(vec![improbable]).is_err());
        assert!(on.rules().is_empty());
    }
}
