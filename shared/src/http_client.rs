//! The traced HTTP client every service uses for its peers: built once at start-up,
//! cloned cheaply, each call creating an OpenTelemetry client span and injecting
//! `traceparent`, `tracestate` and `baggage` (which carries fault injection).

use std::time::Duration;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_tracing::TracingMiddleware;

/// The header carrying an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

#[derive(Clone, Debug)]
pub struct HttpClient {
    client: ClientWithMiddleware,
}

impl HttpClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(HttpClient {
            client: ClientBuilder::new(client).with(TracingMiddleware::default()).build(),
        })
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
