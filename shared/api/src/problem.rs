//! Errors: every error answer is `application/problem+json` (RFC 9457), its `type` one
//! of the [`ErrorCode`] table's URIs, read and written as a [`ProblemBody`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// A cross-site request to a state-changing page (the console's actions): no
    /// valid form token, or another site's `Origin`.
    Forbidden,
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
    /// A call whose `Fencing-Token` epoch is lower than one already seen for its saga
    /// or transaction: its sender lost the lease (a paused replica, say). Nothing
    /// was done; the sender stands down.
    StaleFencingToken,
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
    /// The HTTP status it is answered with.
    pub const fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidJson | IdempotencyKeyMissing | IdempotencyKeyInvalid => 400,
            Unauthorized => 401,
            Forbidden => 403,
            PaymentDeclined => 402,
            NotFound => 404,
            MethodNotAllowed => 405,
            IdempotencyKeyInFlight | Conflict | ActionAfterCompensation | StaleFencingToken => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            IdempotencyKeyReused | UnknownSku | InsufficientStock | InvalidPaymentToken | FaultDeclined => 422,
            RowsLocked => 423,
            FaultInjected | Internal => 500,
            ServiceUnavailable | Overloaded => 503,
            DeadlineExceeded => 504,
        }
    }

    /// The end of its `type` URI.
    pub const fn slug(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid-request",
            InvalidJson => "invalid-json",
            PayloadTooLarge => "payload-too-large",
            UnsupportedMediaType => "unsupported-media-type",
            NotFound => "not-found",
            MethodNotAllowed => "method-not-allowed",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
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
            StaleFencingToken => "stale-fencing-token",
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

    pub const fn title(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "The request is invalid",
            InvalidJson => "The body is not valid JSON for this endpoint",
            PayloadTooLarge => "The body is larger than 64 KiB",
            UnsupportedMediaType => "The body must be application/json",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            Unauthorized => "Missing or wrong admin token",
            Forbidden => "A cross-site request was refused",
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
            StaleFencingToken => "A newer holder of this saga or transaction has called; this call was not executed",
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

    pub const ALL: [ErrorCode; 26] = {
        use ErrorCode::*;
        [
            InvalidRequest,
            InvalidJson,
            PayloadTooLarge,
            UnsupportedMediaType,
            NotFound,
            MethodNotAllowed,
            Unauthorized,
            Forbidden,
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
            StaleFencingToken,
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

/// An error answer (RFC 9457): the body of every error. Some carry more members, the
/// problem's extensions (`errors` on `invalid-request`, `sku` on `unknown-sku`,
/// `shortages`, `decline_code`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Problem))]
pub struct ProblemBody {
    /// `urn:txlab:problem:<code>`: the error code, one of the README's table.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 400, maximum = 599))]
    pub status: u16,
    pub detail: String,
    /// The trace to look up in Jaeger.
    pub trace_id: Option<String>,
    /// Every reason a request was refused (`invalid-request`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    /// The problem's other extension members.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub extensions: Map<String, Value>,
}

impl ProblemBody {
    /// The error code its `type` names, if txlab's table has it.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_type_uri(&self.kind)
    }

    /// An extension member read as the type the contract gives it (`shortages` as
    /// `Vec<Shortage>`, `decline_code` as `DeclineCode`, …).
    pub fn extension<T: serde::de::DeserializeOwned>(&self, member: &str) -> Option<T> {
        serde_json::from_value(self.extensions.get(member)?.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn type_uris_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_type_uri(&code.type_uri()), Some(code));
            assert!((400..=599).contains(&code.status()), "{code:?}");
        }
        assert_eq!(ErrorCode::from_type_uri("about:blank"), None);
    }

    #[test]
    fn a_body_keeps_its_extensions() {
        let body: ProblemBody = serde_json::from_value(serde_json::json!({
            "type": "urn:txlab:problem:unknown-sku", "title": "Unknown SKU", "status": 422,
            "detail": "the catalogue has no SKU-999", "trace_id": null, "sku": "SKU-999"
        }))
        .unwrap();
        assert_eq!(body.code(), Some(ErrorCode::UnknownSku));
        assert_eq!(body.extensions["sku"], "SKU-999");
        assert_eq!(serde_json::to_value(&body).unwrap()["sku"], "SKU-999");
    }
}
