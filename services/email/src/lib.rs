//! The email service: confirmation emails through an outbox.
//!
//! - [`startup`]: builds the server and reads `SMTP_URL`, `EMAIL_FROM`, the retry policy.
//! - [`outbox`]: an order's confirmation written into the outbox, once: what the
//!   routes and the 2PC adapter both call.
//! - [`routes`]: `POST /emails` enqueues (once per order), `GET /emails?order_id=` reads.
//! - [`dispatcher`]: the actor that delivers due emails over SMTP (or the log
//!   transport), retrying transient failures with exponential backoff and jitter.
//! - [`db`]: every query.
//! - [`tpc`]: its part in a two-phase-commit checkout (a prepared outbox row).
//!
//! Delivery is at least once; the `Message-ID` is derived from the email's id, so a
//! repeated delivery is recognisably the same message.

pub mod db;
pub mod dispatcher;
pub mod outbox;
pub mod routes;
pub mod startup;
pub mod tpc;
