//! The headers of the contract, by name. Header names are case-insensitive on the
//! wire; these are the spellings the documents use.

/// The identity of a write: the same key and body are answered the same, once done.
/// 1–255 printable ASCII characters; required on `POST /checkout`.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What is left of the caller's deadline, in milliseconds: the callee never works
/// past it, and passes what is left on.
pub const REQUEST_TIMEOUT_MS: &str = "Request-Timeout-Ms";

/// W3C trace context: the caller's span.
pub const TRACEPARENT: &str = "traceparent";

/// W3C trace context, vendor part.
pub const TRACESTATE: &str = "tracestate";

/// W3C baggage; fault injection rides on it (`fault.<operation>=<kind>`).
pub const BAGGAGE: &str = "baggage";

/// On every answer: the trace the request was served in (W3C Trace Context level 2).
pub const TRACERESPONSE: &str = "traceresponse";

/// RFC 7240 preferences; `POST /checkout` honours `respond-async`: it answers 202
/// with `Location` as soon as the checkout is logged, without waiting for it.
pub const PREFER: &str = "Prefer";
