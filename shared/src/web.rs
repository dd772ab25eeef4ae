//! What every actix app wires in, so services only add their routes: the root span,
//! `traceresponse`, the admin guard, extractor errors as problem+json, and the JSON
//! bodies handlers answer with. The app is assembled once, in
//! `startup::Prepared::serve`, with the route wiring of [`crate::routing`]:
//!
//! ```text
//! App::new()
//!     .wrap(from_fn(trace_response))                    // inner: sees the root span
//!     .wrap(TracingLogger::<QuietHealthRootSpan>::new()) // outer: extracts traceparent
//!     .service(scope("/admin").wrap(from_fn(require_admin)) …)
//!     .configure(<the service's routes>)                // mutations via `mutation(…)`
//!     .configure(common(admin_token))                   // limits, errors, health, 404
//! ```

use actix_web::{
    Error, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{
        StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use serde::Serialize;
use serde_json::Value;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use base::{
    ErrorCode, Problem,
    telemetry::{current_trace_id, current_traceparent},
};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The root span of every request: tracing-actix-web's (so `traceparent` and
/// `baggage` are extracted and the span is an OpenTelemetry server span named
/// `METHOD /route`), except for health checks without a `traceparent`: polled
/// constantly, they get a span of their own under an unsampled root, so their answers
/// name a trace like every other while nothing of them is exported.
pub struct QuietHealthRootSpan;

impl RootSpanBuilder for QuietHealthRootSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        if request.path().starts_with("/health/") && !request.headers().contains_key(api::headers::TRACEPARENT) {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let span = tracing::info_span!(
                "health",
                otel.name = %format!("{} {}", request.method(), request.path()),
                otel.kind = "server",
            );
            let _ = span.set_parent(base::telemetry::unsampled_root());
            return span;
        }
        let span = DefaultRootSpanBuilder::on_request_start(request);
        // The baggage that came with the request (fault injection rides on it), so a
        // trace shows what reached each hop.
        if let Some(baggage) = request
            .headers()
            .get(api::headers::BAGGAGE)
            .and_then(|v| v.to_str().ok())
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            span.set_attribute("http.request.header.baggage", baggage.to_owned());
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: tracing::Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome)
    }
}

/// Adds the W3C Trace Context Level 2 `traceresponse` header to every response, and
/// turns any error answer that is not problem+json yet (actix's own 405s, say) into
/// one.
pub async fn trace_response(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let traceparent = current_traceparent();
    let mut response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(e) => return Err(e),
    };
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if response.status().as_u16() >= 400 && !is_problem {
        response = problem_for(response);
    }
    if let Some(value) = traceparent.and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(api::headers::TRACERESPONSE), value);
    }
    Ok(response)
}

fn problem_for(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let code = match status.as_u16() {
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        401 => ErrorCode::Unauthorized,
        400..=499 => ErrorCode::InvalidRequest,
        503 => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::Internal,
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let (request, _) = response.into_parts();
    let detail = match &allow {
        Some(allow) => format!(
            "{} is not allowed on {}; allowed: {}",
            request.method(),
            request.path(),
            allow.to_str().unwrap_or_default()
        ),
        None => format!(
            "{} {}: {}",
            request.method(),
            request.path(),
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let mut rendered = Problem::new(code, detail).error_response();
    *rendered.status_mut() = status;
    if let Some(allow) = allow {
        rendered.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(request, rendered)
}

/// Settings that the shared handlers and middleware read from app data.
#[derive(Clone, Debug)]
pub struct AdminToken(pub Option<String>);

/// Guards `/admin/*`: with `ADMIN_TOKEN` set, requires `Authorization: Bearer <token>`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let expected = req.app_data::<web::Data<AdminToken>>().and_then(|t| t.0.clone());
    if let Some(expected) = expected {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
            let problem = Problem::new(ErrorCode::Unauthorized, "send Authorization: Bearer <ADMIN_TOKEN>");
            return Ok(req.error_response(problem));
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn json_error(e: JsonPayloadError) -> Problem {
    match e {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the body must be at most {limit} bytes"),
        ),
        JsonPayloadError::ContentType => {
            Problem::new(ErrorCode::UnsupportedMediaType, "send Content-Type: application/json")
        }
        JsonPayloadError::Deserialize(e) => Problem::new(ErrorCode::InvalidJson, e.to_string()),
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the body must be at most {BODY_LIMIT} bytes"),
        ),
        other => Problem::new(ErrorCode::InvalidJson, other.to_string()),
    }
}

pub(crate) fn path_error(e: PathError) -> Problem {
    Problem::invalid(format!("invalid path: {e}"))
}

pub(crate) fn query_error(e: QueryPayloadError) -> Problem {
    Problem::invalid(format!("invalid query string: {e}"))
}

pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// A JSON body that may be left out. No body (or an empty one) is `None`; a body that
/// is there must be `application/json` of `T`'s shape, or the request is refused —
/// 415 for another media type, 400 `invalid-json` for anything that does not parse as
/// a `T`, 413 past the size limit — before the handler runs, so nothing changes.
/// (`Option<web::Json<T>>` would take a malformed body for a missing one.)
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for OptionalJson<T> {
    type Error = Problem;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|essence| essence.trim().to_ascii_lowercase())
            .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                let status = e.as_response_error().status_code();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the body must be at most {BODY_LIMIT} bytes"),
                    )
                } else {
                    Problem::new(ErrorCode::InvalidJson, format!("the body could not be read: {e}"))
                }
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            if !is_json {
                return Err(Problem::new(
                    ErrorCode::UnsupportedMediaType,
                    "a body, when sent, must be Content-Type: application/json",
                ));
            }
            serde_json::from_slice(&bytes)
                .map(|body| OptionalJson(Some(body)))
                .map_err(|e| Problem::new(ErrorCode::InvalidJson, e.to_string()))
        })
    }
}

/// A JSON body with the request's `trace_id` added, as every txlab response has.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<HttpResponse, Problem> {
    let body = with_trace_id(body)?;
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string()))
}

pub fn ok<T: Serialize>(body: &T) -> Result<HttpResponse, Problem> {
    json(StatusCode::OK, body)
}

pub fn created<T: Serialize>(body: &T) -> Result<HttpResponse, Problem> {
    json(StatusCode::CREATED, body)
}

/// 202: still in progress; `Location` is where to follow it.
pub fn accepted<T: Serialize>(body: &T, location: &str) -> Result<HttpResponse, Problem> {
    let mut response = json(StatusCode::ACCEPTED, body)?;
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).map_err(Problem::internal)?,
    );
    Ok(response)
}

pub fn with_trace_id<T: Serialize>(body: &T) -> Result<Value, Problem> {
    let mut value = serde_json::to_value(body).map_err(Problem::internal)?;
    if let Value::Object(map) = &mut value {
        // A body that names its own trace (an order names its checkout's) keeps it.
        map.entry("trace_id")
            .or_insert_with(|| current_trace_id().map(Value::from).unwrap_or(Value::Null));
    }
    Ok(value)
}

/// Whether the request carries `Prefer: respond-async` (RFC 7240): answer as soon as
/// the work is accepted rather than when it is done.
pub fn prefers_async(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get_all(api::headers::PREFER)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|preference| {
            preference
                .split(';')
                .next()
                .is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async"))
        })
}

/// Whether a request may change state (idempotency and fault points apply).
pub fn is_mutating(method: &actix_web::http::Method) -> bool {
    !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS")
}
