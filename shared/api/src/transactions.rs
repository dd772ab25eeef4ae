//! 2PC transactions as the coordinator shows them (`POST /checkout`,
//! `GET /transactions/{id}`, `GET /transactions`): the checkout, the decision, and
//! each participant's vote and outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Decision, Participant, PricedLine};

/// What a transaction means for its checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TransactionStatus {
    Committed,
    Aborted,
    /// Not decided yet.
    Pending,
}

api_names!("a transaction status", TransactionStatus {
    Committed => "committed",
    Aborted => "aborted",
    Pending => "pending",
});

/// Where the protocol is.
///
/// ```text
/// preparing ──all voted yes──► committing ──every participant acknowledged──► committed
///     │                            (decision logged first: the commit point)
///     └──any no / timeout, or found undecided after a restart──► aborting ──► aborted
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "tx_state", rename_all = "snake_case")
)]
pub enum TransactionState {
    Preparing,
    Committing,
    Aborting,
    Committed,
    Aborted,
}

api_names!("a transaction state", TransactionState {
    Preparing => "preparing",
    Committing => "committing",
    Aborting => "aborting",
    Committed => "committed",
    Aborted => "aborted",
});

impl TransactionState {
    /// Committed or aborted: every participant has acknowledged the decision.
    pub fn is_final(self) -> bool {
        matches!(self, TransactionState::Committed | TransactionState::Aborted)
    }
}

/// Which transactions `GET /transactions?state=` lists: those in a state, or those in
/// doubt (unfinished, with a participant that has or may have prepared and not heard
/// the decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionFilter {
    InDoubt,
    State(TransactionState),
}

impl TransactionFilter {
    pub const ALL: [TransactionFilter; 6] = [
        TransactionFilter::InDoubt,
        TransactionFilter::State(TransactionState::Preparing),
        TransactionFilter::State(TransactionState::Committing),
        TransactionFilter::State(TransactionState::Aborting),
        TransactionFilter::State(TransactionState::Committed),
        TransactionFilter::State(TransactionState::Aborted),
    ];

    pub const fn name(self) -> &'static str {
        match self {
            TransactionFilter::InDoubt => "in_doubt",
            TransactionFilter::State(state) => state.name(),
        }
    }
    /// Whether the filter lets this transaction through.
    pub fn matches(self, view: &TransactionView) -> bool {
        match self {
            TransactionFilter::InDoubt => {
                !view.state.is_final()
                    && view
                        .participants
                        .iter()
                        .any(|p| p.outcome == ParticipantOutcome::InDoubt)
            }
            TransactionFilter::State(state) => view.state == state,
        }
    }
}

impl std::fmt::Display for TransactionFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TransactionFilter {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        TransactionFilter::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = TransactionFilter::ALL.iter().map(|f| f.name()).collect();
                format!("state must be one of {}, got {name:?}", names.join(", "))
            })
    }
}

/// A participant's vote as the coordinator recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "tx_vote", rename_all = "snake_case")
)]
pub enum ParticipantVote {
    /// Not answered yet.
    Pending,
    Yes,
    No,
    /// No answer in time: the participant may or may not have prepared.
    Timeout,
}

api_names!("a recorded vote", ParticipantVote { Pending => "pending", Yes => "yes", No => "no", Timeout => "timeout" });

/// Where a participant's part stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ParticipantOutcome {
    Committed,
    Aborted,
    /// Prepared, or maybe prepared, and not yet told the decision.
    InDoubt,
}

api_names!("a participant outcome", ParticipantOutcome {
    Committed => "committed",
    Aborted => "aborted",
    InDoubt => "in_doubt",
});

/// A 2PC transaction: the checkout, the decision, and each participant's vote and
/// outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionView {
    pub transaction_id: Uuid,
    pub order_id: Uuid,
    pub status: TransactionStatus,
    pub state: TransactionState,
    pub decision: Option<Decision>,
    pub reason: Option<String>,
    pub total_cents: i64,
    pub trace_id: Option<String>,
    pub customer_email: String,
    pub items: Vec<PricedLine>,
    pub participants: Vec<ParticipantView>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The checkout's `Idempotency-Key` as the transaction was logged under it:
    /// `<scope>:<key>` (see the saga's `checkout_key`).
    #[serde(default)]
    pub checkout_key: Option<String>,
    /// The coordinator replica that holds (or last held) the transaction's lease.
    #[serde(default)]
    pub owner: Option<String>,
    /// Raised by every replica that takes the transaction; its participant calls
    /// carry it as their fencing token.
    #[serde(default)]
    pub epoch: i64,
    /// When the lease runs out unless its holder writes or beats first; released
    /// (set to the time it finished) once the transaction is over.
    #[serde(default)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl TransactionView {
    /// The part of this participant.
    pub fn participant(&self, name: Participant) -> Option<&ParticipantView> {
        self.participants.iter().find(|p| p.name == name)
    }
}

/// One participant's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParticipantView {
    pub name: Participant,
    pub vote: ParticipantVote,
    pub outcome: ParticipantOutcome,
    pub detail: Option<String>,
}

/// `GET /transactions/counts`: how many transactions are in each state, and how many
/// unfinished ones are in doubt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct TransactionCounts {
    pub preparing: i64,
    pub committing: i64,
    pub aborting: i64,
    pub committed: i64,
    pub aborted: i64,
    pub in_doubt: i64,
}

/// `GET /transactions`: a page of transactions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionList {
    pub transactions: Vec<TransactionView>,
}

/// What happened to a 2PC transaction: the kinds of its history's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "db",
    derive(sqlx::Type),
    sqlx(type_name = "tx_event_kind", rename_all = "snake_case")
)]
pub enum TransactionEventKind {
    /// The checkout was accepted and its transaction logged, before anything was prepared.
    Logged,
    /// An unfinished transaction was taken up again, after a restart or by another
    /// replica (`state` is the one it was found in; `detail` names the replica it was
    /// taken over from).
    Resumed,
    /// A participant's vote (`vote`; `timeout` when it did not answer in time;
    /// `detail`, `duration_ms`).
    Vote,
    /// The decision, logged before anyone hears it: the commit point (`decision`,
    /// `detail` its reason).
    DecisionLogged,
    /// A participant told the decision (`attempt`, `acknowledged`, `detail`, `duration_ms`).
    PhaseTwoAttempt,
    /// Every participant acknowledged: the final state (`state`).
    Finished,
    /// A replica found its lease taken over — a write refused — and stopped driving
    /// the transaction (`epoch`, `owner`: the one that stood down; `detail`: why).
    LeaseLost,
}

api_names!("a transaction event kind", TransactionEventKind {
    Logged => "logged",
    Resumed => "resumed",
    Vote => "vote",
    DecisionLogged => "decision_logged",
    PhaseTwoAttempt => "phase_two_attempt",
    Finished => "finished",
    LeaseLost => "lease_lost",
});

/// One event of a transaction's history. Which fields are set depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionEvent {
    /// Increases with every event of the transaction; pass the last one as `cursor` for more.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: TransactionEventKind,
    pub participant: Option<Participant>,
    pub vote: Option<ParticipantVote>,
    /// A phase-two attempt's round, from 1.
    pub attempt: Option<u32>,
    pub acknowledged: Option<bool>,
    pub decision: Option<Decision>,
    pub state: Option<TransactionState>,
    pub detail: Option<String>,
    pub duration_ms: Option<f64>,
    /// The epoch of the lease it was written under.
    #[serde(default)]
    pub epoch: Option<i64>,
    /// The replica that wrote it.
    #[serde(default)]
    pub owner: Option<String>,
}

/// `GET /transactions/{id}/history`: the coordinator's log as events, oldest first,
/// a page at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionHistory {
    pub transaction_id: Uuid,
    pub order_id: Uuid,
    pub events: Vec<TransactionEvent>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<i64>,
}
