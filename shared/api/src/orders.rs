//! Orders as the order service shows them (`GET /orders/{id}`, `GET /orders`, the
//! saga's `POST /checkout`), with the saga that runs a checkout and its steps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Participant;

/// Where an order stands. `pending` until its checkout is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "order_status", rename_all = "snake_case")
)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

api_names!("an order status", OrderStatus { Pending => "pending", Confirmed => "confirmed", Cancelled => "cancelled" });

impl OrderStatus {
    /// Confirmed or cancelled: the order changes no more.
    pub fn is_final(self) -> bool {
        self != OrderStatus::Pending
    }
}

/// One line of an order, at the price it was bought for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

/// An order, with its saga's steps when it came from a checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub total_cents: i64,
    /// The checkout's trace (paste it into Jaeger).
    pub trace_id: Option<String>,
    pub customer_email: String,
    pub items: Vec<OrderLine>,
    /// The saga's steps, in order (empty for an order not made by a checkout).
    pub steps: Vec<StepView>,
    pub saga: Option<SagaView>,
    pub created_at: Option<DateTime<Utc>>,
}

impl OrderView {
    /// The step of this name, if the order's saga has it.
    pub fn step(&self, name: &str) -> Option<&StepView> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Where a step of the saga stands. A step being attempted is `pending` until its
/// outcome is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepStatus {
    Pending,
    Succeeded,
    Failed,
    Compensating,
    Compensated,
}

api_names!("a step status", StepStatus {
    Pending => "pending",
    Succeeded => "succeeded",
    Failed => "failed",
    Compensating => "compensating",
    Compensated => "compensated",
});

/// One step of the saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    #[cfg_attr(feature = "openapi", schema(example = "reserve_inventory"))]
    pub name: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub compensation_attempts: u32,
    pub last_error: Option<String>,
    /// The pivot: up to it a failure compensates; after it the saga only goes forward.
    #[serde(default)]
    pub pivot: bool,
}

/// Where a saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "saga_status", rename_all = "snake_case")
)]
pub enum SagaStatus {
    /// Going forward through the steps.
    Running,
    /// Undoing the steps attempted so far, newest first.
    Compensating,
    /// A step or compensation ran out of attempts; the recovery actor retries it later.
    Parked,
    Confirmed,
    Cancelled,
}

api_names!("a saga status", SagaStatus {
    Running => "running",
    Compensating => "compensating",
    Parked => "parked",
    Confirmed => "confirmed",
    Cancelled => "cancelled",
});

impl SagaStatus {
    /// Confirmed or cancelled: the saga runs no more.
    pub fn is_final(self) -> bool {
        matches!(self, SagaStatus::Confirmed | SagaStatus::Cancelled)
    }
}

/// The saga that runs the checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaView {
    pub saga_id: Uuid,
    pub status: SagaStatus,
    /// Why it is parked, when it is; otherwise why it is compensating or was cancelled.
    pub reason: Option<String>,
    /// Why it is compensating or was cancelled (the first refusal), also while parked.
    pub cancel_reason: Option<String>,
    /// The checkout's `Idempotency-Key` as the saga was logged under it:
    /// `<scope>:<key>`, the scope being the service (and a hash of the client's
    /// `Authorization`, when it sent one).
    #[serde(default)]
    pub checkout_key: Option<String>,
    /// The orchestrator replica that holds (or last held) the saga's lease.
    #[serde(default)]
    pub owner: Option<String>,
    /// Raised by every replica that takes the saga; its participant calls carry it
    /// as their fencing token.
    #[serde(default)]
    pub epoch: i64,
    /// When the lease runs out unless its holder writes or beats first; released
    /// (set to the time it stopped) when the saga parks or ends.
    #[serde(default)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// A saga in a list (`GET /sagas`): where it stands, and how hard it is trying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaSummary {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub status: SagaStatus,
    /// Why it is parked, when it is; otherwise why it is compensating or was cancelled.
    pub reason: Option<String>,
    /// The participant a parked saga waits for, when it waits for one to recover.
    pub parked_on: Option<Participant>,
    /// The most attempts any of its steps or compensations has taken so far.
    pub max_attempts: u32,
    /// Unfinished, with a step or a compensation past its first attempt.
    pub retrying: bool,
    /// The checkout's trace.
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When its log last changed.
    pub updated_at: DateTime<Utc>,
}

/// `GET /sagas`: a page of sagas, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaList {
    pub sagas: Vec<SagaSummary>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<Uuid>,
}

/// What happened to a saga: the kinds of its history's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "saga_event_kind", rename_all = "snake_case")
)]
pub enum SagaEventKind {
    /// The checkout was accepted and its saga logged.
    SagaStarted,
    /// An unfinished saga was taken up again: after a restart of the orchestrator, or
    /// out of parking (`status` is the one it was resumed from).
    Resumed,
    /// An attempt of a step's action was logged, before its call.
    StepStarted,
    /// What the attempt established (`outcome`, `status_code`, `detail`, `duration_ms`).
    StepEnded,
    /// An attempt of a step's compensation was logged, before its call.
    CompensationStarted,
    CompensationEnded,
    /// The saga's status changed (`status`; `detail` says why; `participant` is the one
    /// a parked saga waits for).
    StatusChanged,
    /// A replica found its lease taken over — a write refused, or a participant
    /// refusing its fencing token — and stopped driving the saga (`epoch`, `owner`:
    /// the one that stood down; `detail`: what told it).
    LeaseLost,
}

api_names!("a saga event kind", SagaEventKind {
    SagaStarted => "saga_started",
    Resumed => "resumed",
    StepStarted => "step_started",
    StepEnded => "step_ended",
    CompensationStarted => "compensation_started",
    CompensationEnded => "compensation_ended",
    StatusChanged => "status_changed",
    LeaseLost => "lease_lost",
});

/// What one call of a step (or of its compensation) established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "attempt_outcome", rename_all = "snake_case")
)]
pub enum AttemptOutcome {
    /// A 2xx answer: the step is done.
    Succeeded,
    /// A definite refusal (a 4xx with its problem).
    Refused,
    /// No definite answer (a timeout, a 5xx, a lost connection): retried with the same key.
    Unknown,
    /// Refused on the orchestrator's side (an open breaker, a full bulkhead, the retry
    /// budget): certainly not done.
    NotSent,
    /// An earlier call with the same key was still being worked on.
    InFlight,
}

api_names!("an attempt outcome", AttemptOutcome {
    Succeeded => "succeeded",
    Refused => "refused",
    Unknown => "unknown",
    NotSent => "not_sent",
    InFlight => "in_flight",
});

/// One event of a saga's history. Which fields are set depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaEvent {
    /// Increases with every event of the saga; pass the last one as `cursor` for more.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: SagaEventKind,
    #[cfg_attr(feature = "openapi", schema(example = "charge_payment"))]
    pub step: Option<String>,
    /// The attempt's number for its step (or its compensation), from 1.
    pub attempt: Option<u32>,
    pub outcome: Option<AttemptOutcome>,
    /// The participant's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// An attempt's error, or why the status changed.
    pub detail: Option<String>,
    /// How long the attempt's call took.
    pub duration_ms: Option<f64>,
    /// `status_changed`: the new status; `resumed`: the one it was resumed from.
    pub status: Option<SagaStatus>,
    /// The participant a parked saga waits for.
    pub participant: Option<Participant>,
    /// The epoch of the lease it was written under; a `resumed` event at a new epoch
    /// by another replica is a takeover (`detail` names the previous holder).
    #[serde(default)]
    pub epoch: Option<i64>,
    /// The replica that wrote it.
    #[serde(default)]
    pub owner: Option<String>,
}

/// `GET /sagas/{id}/history`: a saga's log as events, oldest first, a page at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaHistory {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub events: Vec<SagaEvent>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<i64>,
}

/// `GET /sagas/counts`: how many sagas are in each status, and how many unfinished
/// ones are retrying (a step or compensation past its first attempt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct SagaCounts {
    pub running: i64,
    pub compensating: i64,
    pub parked: i64,
    pub confirmed: i64,
    pub cancelled: i64,
    pub retrying: i64,
}

/// An order in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct OrderSummary {
    #[cfg_attr(feature = "db", sqlx(rename = "id"))]
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub customer_email: String,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
}

/// `GET /orders`: a page of orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderList {
    pub orders: Vec<OrderSummary>,
}

/// The null compensation: an order cancelled before it was ever created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeverCreated {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub null_compensation: bool,
}

/// What `POST /orders/{id}/cancel` answers: the order, or, for an order never
/// created, the record that it was cancelled first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CancelAnswer {
    Order(Box<OrderView>),
    NeverCreated(NeverCreated),
}

/// A replica of the orchestrator (or of the coordinator), as `GET /admin/replicas`
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaView {
    /// `<service>-<pid>-<random>`: new at every process start.
    #[cfg_attr(feature = "openapi", schema(example = "order-4242-3fa2c1"))]
    pub id: String,
    /// Where it serves.
    pub url: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (each recovery sweep writes one).
    pub last_seen_at: DateTime<Utc>,
    /// Seen within the last three lease TTLs.
    pub live: bool,
    /// Unfinished sagas (transactions) whose live lease it holds.
    pub holding: i64,
    /// Some of them (at most 20).
    pub job_ids: Vec<Uuid>,
}

/// `GET /admin/replicas`: the replicas on this database, live ones first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaList {
    /// The replica that answered.
    pub this: String,
    pub replicas: Vec<ReplicaView>,
}
