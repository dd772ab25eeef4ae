//! RFC 9457 problem details: every error response is `application/problem+json` with
//! `type`, `title`, `status`, `detail` and `trace_id`.
//!
//! [`ErrorCode`] is the one table of error kinds; [`Problem`] carries a code and a
//! detail and is rendered by the single `ResponseError` impl below.

use actix_web::{HttpResponse, ResponseError, http::StatusCode, http::header};
use serde_json::{Map, Value};

pub use api::{ErrorCode, ProblemBody};

use crate::telemetry::current_trace_id;

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

    /// The body, with the current trace id.
    pub fn body(&self) -> ProblemBody {
        let mut extensions = self.extensions.clone();
        let errors = match extensions.remove("errors") {
            Some(errors) => serde_json::from_value(errors).ok(),
            // Every validation problem lists what was wrong, one item at least.
            None => (self.code == ErrorCode::InvalidRequest).then(|| vec![self.detail.clone()]),
        };
        ProblemBody {
            kind: self.code.type_uri(),
            title: self.code.title().to_owned(),
            status: self.code.status(),
            detail: self.detail.clone(),
            trace_id: current_trace_id(),
            errors,
            extensions,
        }
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
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
        response.body(serde_json::to_string(&self.body()).unwrap_or_default())
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
    fn body_has_the_rfc_9457_members() {
        let body = serde_json::to_value(
            Problem::new(ErrorCode::UnknownSku, "SKU-999")
                .with_extension("sku", "SKU-999")
                .body(),
        )
        .unwrap();
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
