//! `GET /admin/idempotency-keys` on every service: its idempotency keys with a prefix,
//! with their state and how often each stored response was replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum KeyState {
    /// Claimed by a request that has not finished (its lease guards it).
    InFlight,
    /// Finished: its response is stored and replayed to every retry.
    Completed,
}

api_names!("a key state", KeyState { InFlight => "in_flight", Completed => "completed" });

/// One idempotency key of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdempotencyKeyView {
    /// The service, plus a hash of the client's identity where the request had one.
    pub scope: String,
    #[cfg_attr(
        feature = "openapi",
        schema(example = "0193c0de-7d2a-7c4e-9a51-5e0f3b1d2c4a:charge_payment")
    )]
    pub key: String,
    pub state: KeyState,
    /// How many retries were answered with the stored response.
    pub replays: u32,
    /// The stored response's status, once completed.
    pub response_status: Option<u16>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// An in-flight key: until when its lease holds.
    pub locked_until: Option<DateTime<Utc>>,
}

/// `GET /admin/idempotency-keys`: a page of keys, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdempotencyKeyList {
    pub keys: Vec<IdempotencyKeyView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}
