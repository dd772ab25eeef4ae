//! RFC 9457 problem details: every error response is `application/problem+json` with
//! `type`, `title`, `status`, `detail` and `trace_id`.
//!
//! [`ErrorCode`] is the one table of error kinds; [`Problem`] carries a code and a
//! detail and is rendered by the single `ResponseError` impl below.

use actix_web::{HttpResponse, ResponseError, http::StatusCode, http::header};
use serde_json::{Map, Value};

use crate::telemetry::current_trace_id;

/// Every kind of error txlab answers with: slug (the end of the `type` URI), status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or fails validation.
    InvalidRequest,
    /// The body is not valid JSON or has the wrong shape.
    InvalidJson,
    /// The body exceeds 64 KiB.
    PayloadTooLarge,
    /// The media type is not `application/json`.
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    /// `Idempotency-Key` missing where it is required.
    IdempotencyKeyMissing,
    /// `Idempotency-Key` longer than 255 characters or not printable ASCII.
    IdempotencyKeyInvalid,
    /// The key was used before with a different request.
    IdempotencyKeyReused,
    /// The first request with this key is still being processed.
    IdempotencyKeyInFlight,
    /// A SKU that the catalogue does not have.
    UnknownSku,
    /// Not enough stock for a reservation.
    InsufficientStock,
    /// A card declined by the payment service.
    PaymentDeclined,
    /// A payment token the payment service does not know.
    InvalidPaymentToken,
    /// The resource is in a state that does not allow the operation.
    Conflict,
    /// An action that arrived after its compensation; it is not executed.
    ActionAfterCompensation,
    /// A fault injected on purpose (`FAULT_INJECTION=on`).
    FaultInjected,
    /// A business decline injected on purpose.
    FaultDeclined,
    /// The rows the work needs are locked by another transaction (an in-doubt 2PC,
    /// say) and the lock wait timed out; nothing was done, retry after `Retry-After`.
    /// Contention on some rows, not a sign the service is unwell: breakers ignore it.
    RowsLocked,
    /// A dependency is unavailable; retry later.
    ServiceUnavailable,
    /// Load shedding: the service is saturated and refused the request at once,
    /// writing nothing; retry after `Retry-After`.
    Overloaded,
    /// The caller's deadline (`Request-Timeout-Ms`) passed before the work was done.
    DeadlineExceeded,
    /// Anything unexpected; details are in the logs under the trace id.
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidJson | IdempotencyKeyMissing | IdempotencyKeyInvalid => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IdempotencyKeyInFlight | Conflict | ActionAfterCompensation => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IdempotencyKeyReused | UnknownSku | InsufficientStock | InvalidPaymentToken | FaultDeclined => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RowsLocked => StatusCode::LOCKED,
            FaultInjected | Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn slug(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid-request",
            InvalidJson => "invalid-json",
            PayloadTooLarge => "payload-too-large",
            UnsupportedMediaType => "unsupported-media-type",
            NotFound => "not-found",
            MethodNotAllowed => "method-not-allowed",
            Unauthorized => "unauthorized",
            IdempotencyKeyMissing => "idempotency-key-missing",
            IdempotencyKeyInvalid => "idempotency-key-invalid",
            IdempotencyKeyReused => "idempotency-key-reused",
            IdempotencyKeyInFlight => "idempotency-key-in-flight",
            UnknownSku => "unknown-sku",
            InsufficientStock => "insufficient-stock",
            PaymentDeclined => "payment-declined",
            InvalidPaymentToken => "invalid-payment-token",
            Conflict => "conflict",
            ActionAfterCompensation => "action-after-compensation",
            FaultInjected => "fault-injected",
            FaultDeclined => "fault-declined",
            RowsLocked => "rows-locked",
            ServiceUnavailable => "service-unavailable",
            Overloaded => "overloaded",
            DeadlineExceeded => "deadline-exceeded",
            Internal => "internal",
        }
    }

    /// The `type` member: a URN, stable and documented in the README's error table.
    pub fn type_uri(self) -> String {
        format!("urn:txlab:problem:{}", self.slug())
    }

    pub fn title(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "The request is invalid",
            InvalidJson => "The body is not valid JSON for this endpoint",
            PayloadTooLarge => "The body is larger than 64 KiB",
            UnsupportedMediaType => "The body must be application/json",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            Unauthorized => "Missing or wrong admin token",
            IdempotencyKeyMissing => "Idempotency-Key header is required",
            IdempotencyKeyInvalid => "Idempotency-Key must be 1-255 printable ASCII characters",
            IdempotencyKeyReused => "Idempotency-Key was already used with a different request",
            IdempotencyKeyInFlight => "A request with this Idempotency-Key is still in progress",
            UnknownSku => "Unknown SKU",
            InsufficientStock => "Insufficient stock",
            PaymentDeclined => "The payment was declined",
            InvalidPaymentToken => "Unknown payment token",
            Conflict => "The resource's state does not allow this operation",
            ActionAfterCompensation => "The action arrived after its compensation and was not executed",
            FaultInjected => "Fault injected",
            FaultDeclined => "Declined by fault injection",
            RowsLocked => "The rows are locked by another transaction; retry later",
            ServiceUnavailable => "Service unavailable",
            Overloaded => "The service is saturated; nothing was done",
            DeadlineExceeded => "The caller's deadline passed",
            Internal => "Internal error",
        }
    }

    /// Looks a code up from its `type` URI (used by callers classifying answers).
    pub fn from_type_uri(uri: &str) -> Option<ErrorCode> {
        let slug = uri.strip_prefix("urn:txlab:problem:")?;
        ErrorCode::ALL.into_iter().find(|c| c.slug() == slug)
    }

    pub const ALL: [ErrorCode; 24] = {
        use ErrorCode::*;
        [
            InvalidRequest,
            InvalidJson,
            PayloadTooLarge,
            UnsupportedMediaType,
            NotFound,
            MethodNotAllowed,
            Unauthorized,
            IdempotencyKeyMissing,
            IdempotencyKeyInvalid,
            IdempotencyKeyReused,
            IdempotencyKeyInFlight,
            UnknownSku,
            InsufficientStock,
            PaymentDeclined,
            InvalidPaymentToken,
            Conflict,
            ActionAfterCompensation,
            FaultInjected,
            FaultDeclined,
            RowsLocked,
            ServiceUnavailable,
            Overloaded,
            DeadlineExceeded,
            Internal,
        ]
    };
}

/// An error answer. Build with [`Problem::new`] or the `From` impls; render once.
pub struct Problem {
    pub code: ErrorCode,
    pub detail: String,
    /// Seconds, for `Retry-After` (409 in flight, 503).
    pub retry_after: Option<u64>,
    /// Extra members (RFC 9457 extensions), e.g. `errors` for field validation.
    pub extensions: Map<String, Value>,
    /// The cause of an internal error; logged, never sent.
    pub source: Option<anyhow::Error>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            retry_after: None,
            extensions: Map::new(),
            source: None,
        }
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Problem {
            source: Some(source.into()),
            ..Problem::new(
                ErrorCode::Internal,
                "an unexpected error occurred; look up the trace id",
            )
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(ErrorCode::InvalidRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(ErrorCode::NotFound, detail)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body, with the current trace id.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), self.code.type_uri().into());
        body.insert("title".into(), self.code.title().into());
        body.insert("status".into(), self.code.status().as_u16().into());
        body.insert("detail".into(), self.detail.clone().into());
        body.insert(
            "trace_id".into(),
            current_trace_id().map(Value::from).unwrap_or(Value::Null),
        );
        for (k, v) in &self.extensions {
            body.insert(k.clone(), v.clone());
        }
        // Every validation problem lists what was wrong, one item at least.
        if self.code == ErrorCode::InvalidRequest && !body.contains_key("errors") {
            body.insert("errors".into(), Value::from(vec![self.detail.clone()]));
        }
        Value::Object(body)
    }
}

/// An error and its causes on one line, leaving out causes that only repeat what the
/// line already says (database errors wrap themselves). For start-up failures and
/// for failed calls' spans: never a backtrace, never a second line.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let text = error.to_string().replace('\n', " ");
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = error.source();
    }
    line
}

/// The source as its chain of causes, never as anyhow's `Debug`: that renders (and
/// first resolves) a backtrace whenever `RUST_BACKTRACE` is set, and tracing-actix-web
/// writes every error answer's `Debug` into its log line and the span.
impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Problem")
            .field("code", &self.code)
            .field("detail", &self.detail)
            .field("retry_after", &self.retry_after)
            .field("extensions", &self.extensions)
            .field("source", &self.source.as_ref().map(|source| one_line(&**source)))
            .finish()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.slug(), self.detail)?;
        if let Some(source) = &self.source {
            write!(f, ": {source:#}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            tracing::error!(error = %format!("{source:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(self.body().to_string())
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Problem::internal(e)
    }
}

impl From<anyhow::Error> for Problem {
    fn from(e: anyhow::Error) -> Self {
        Problem::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_uris_round_trip() {
        for code in [
            ErrorCode::InsufficientStock,
            ErrorCode::IdempotencyKeyInFlight,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_type_uri(&code.type_uri()), Some(code));
        }
        assert_eq!(ErrorCode::from_type_uri("about:blank"), None);
    }

    #[test]
    fn body_has_the_rfc_9457_members() {
        let body = Problem::new(ErrorCode::UnknownSku, "SKU-999")
            .with_extension("sku", "SKU-999")
            .body();
        assert_eq!(body["type"], "urn:txlab:problem:unknown-sku");
        assert_eq!(body["status"], 422);
        assert_eq!(body["detail"], "SKU-999");
        assert_eq!(body["sku"], "SKU-999");
        assert!(body.get("title").is_some());
        assert!(body.get("trace_id").is_some());
    }

    #[test]
    fn debug_shows_the_source_as_one_line_of_causes() {
        let source = anyhow::anyhow!("connection reset").context("fetching the order");
        let debug = format!("{:?}", Problem::internal(source));
        assert!(debug.contains("\"fetching the order: connection reset\""), "{debug}");
        assert!(!debug.contains("Caused by") && !debug.contains("backtrace"), "{debug}");
    }
}
