//! The one HTTP client every txlab service calls its peers with, and the resilience
//! it applies per downstream. Above `txlab-base` (settings, telemetry, problem+json);
//! below the service platform, which builds it once per process.
//!
//! - [`http_client`]: the traced client (W3C `traceparent` + `baggage` on every
//!   call), and [`http_client::CallOutcome`], the typed answer of a call: succeeded
//!   with the contract body, refused with a problem, in flight, not sent, or unknown.
//! - [`resilience`]: circuit breakers, retry budgets and bulkheads per downstream
//!   (the client's middleware), deadlines propagated across hops
//!   ([`resilience::deadline`]), and the views `GET /admin/resilience` shows.
//!
//! `http_client` builds on `resilience`; `resilience` knows nothing of the client.

pub mod http_client;
pub mod resilience;
