//! The two-phase-commit exchange between the coordinator and a participant:
//! `POST /tpc/{gid}/prepare` with the participant's own request (see
//! [`crate::participants`]) answered by a [`PrepareAnswer`]; then
//! `POST /tpc/{gid}/commit` or `…/abort` with `{}`, answered by a [`FinishAnswer`].

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{LineItemRequest, OrderStatus};

/// A participant's answer to prepare. Only a `yes` is sent as a vote: a participant
/// that cannot prepare answers with a problem, which the coordinator counts as no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Vote {
    Yes,
    No,
}

api_names!("a vote", Vote { Yes => "yes", No => "no" });

/// The body of a successful prepare: the vote, and what the participant prepared
/// (its own view of the work, e.g. the charge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrepareAnswer<Detail> {
    pub gid: String,
    pub vote: Vote,
    pub detail: Detail,
}

/// What a repeated prepare finds: the transaction prepared, or committed, already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Already {
    Prepared,
    Committed,
}

/// The detail of a yes vote: the participant's own view of the work it prepared
/// (`D`), or, when the prepare is a repeat, `{ "already": "prepared" | "committed" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prepared<D> {
    Again { already: Already },
    Work(D),
}

/// The coordinator's decision, logged before anyone is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    Commit,
    Abort,
}

impl Decision {
    pub const fn name(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Decision {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Decision::Commit, Decision::Abort]
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| format!("{name:?} is not a decision (commit, abort)"))
    }
}

/// Where a participant's part of a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FinishOutcome {
    Committed,
    Aborted,
}

/// The body of a commit or abort that a participant acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishAnswer {
    pub gid: String,
    pub outcome: FinishOutcome,
}

// What each participant prepared: the `detail` of its yes vote.

/// The order, created and confirmed in the prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderPrepared {
    pub order_id: Uuid,
    pub status: OrderStatus,
}

/// The order's stock, sold in the prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockSold {
    pub order_id: Uuid,
    pub sold: Vec<LineItemRequest>,
}

/// The charge made in the prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChargePrepared {
    pub charge_id: Uuid,
    pub amount_cents: i64,
}

/// The confirmation, in the outbox in the prepared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailPrepared {
    pub email_id: Uuid,
}

/// A transaction this participant's database holds prepared, for how long, and what
/// it holds locked meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreparedTransaction {
    pub gid: String,
    pub prepared_at: DateTime<Utc>,
    pub age_seconds: f64,
    /// Its locks on tables and its advisory locks, as `pg_locks` shows them.
    #[serde(default)]
    pub locks: Vec<HeldLock>,
    /// The keys of the rows it holds (for inventory, the SKUs), read from the rows'
    /// lock holder (`xmax`): what other transactions wait for.
    #[serde(default)]
    pub rows: Vec<String>,
}

/// A lock a prepared transaction holds, from `pg_locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "db", derive(sqlx::FromRow))]
pub struct HeldLock {
    /// `relation` (a table) or `advisory`.
    pub kind: String,
    /// The table, for a `relation` lock.
    pub relation: Option<String>,
    /// e.g. `RowExclusiveLock`, `ExclusiveLock`.
    pub mode: String,
}

/// `GET /tpc/prepared`: the transactions prepared here, oldest first; each holds its
/// locks until the decision arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreparedList {
    pub prepared: Vec<PreparedTransaction>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decisions_go_by_their_api_names() {
        for d in [Decision::Commit, Decision::Abort] {
            assert_eq!(d.name().parse::<Decision>(), Ok(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
            assert_eq!(d.to_string(), d.name());
        }
        assert!("Some(Commit)".parse::<Decision>().is_err());
    }

    #[test]
    fn a_vote_is_read_whatever_the_detail() {
        let answer: PrepareAnswer<serde::de::IgnoredAny> =
            serde_json::from_str(r#"{"gid":"g","vote":"yes","detail":{"charge_id":1},"trace_id":"t"}"#).unwrap();
        assert_eq!(answer.vote, Vote::Yes);
    }
}
