//! A two-phase-commit transaction as a pure state machine.
//!
//! ```text
//! preparing ──all voted yes──► committing ──every participant acknowledged──► committed
//!     │                            (decision logged first: the commit point)
//!     └──any no / timeout, or found undecided after a restart──► aborting ──► aborted
//! ```

pub use api::{Decision, ParticipantOutcome, ParticipantVote, TransactionState};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "tx_outcome", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    Pending,
    Committed,
    Aborted,
}

impl std::fmt::Display for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        base::telemetry::write_api_name(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub name: api::Participant,
    pub vote: ParticipantVote,
    pub ack: Ack,
    pub detail: Option<String>,
}

impl Participant {
    pub fn outcome(&self) -> ParticipantOutcome {
        match (self.ack, self.vote) {
            (Ack::Committed, _) => ParticipantOutcome::Committed,
            (Ack::Aborted, _) => ParticipantOutcome::Aborted,
            (Ack::Pending, ParticipantVote::Yes | ParticipantVote::Timeout) => ParticipantOutcome::InDoubt,
            (Ack::Pending, ParticipantVote::No | ParticipantVote::Pending) => ParticipantOutcome::Aborted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub state: TransactionState,
    pub decision: Option<Decision>,
    pub reason: Option<String>,
    pub participants: Vec<Participant>,
}

impl Transaction {
    pub fn new(names: &[api::Participant]) -> Self {
        Transaction {
            state: TransactionState::Preparing,
            decision: None,
            reason: None,
            participants: names
                .iter()
                .map(|name| Participant {
                    name: *name,
                    vote: ParticipantVote::Pending,
                    ack: Ack::Pending,
                    detail: None,
                })
                .collect(),
        }
    }

    pub fn record_vote(&mut self, i: usize, vote: ParticipantVote, detail: Option<String>) {
        self.participants[i].vote = vote;
        self.participants[i].detail = detail;
    }

    /// The decision from the votes: commit only if every participant voted yes.
    pub fn decide(&mut self) -> Decision {
        let refusal = self
            .participants
            .iter()
            .find(|p| p.vote != ParticipantVote::Yes)
            .map(|p| {
                format!(
                    "{} voted {}: {}",
                    p.name,
                    p.vote,
                    p.detail.as_deref().unwrap_or("no detail")
                )
                .to_lowercase()
            });
        let decision = if refusal.is_none() {
            Decision::Commit
        } else {
            Decision::Abort
        };
        self.decided(decision, refusal);
        decision
    }

    /// Found undecided by a coordinator that did not start it: no logged decision
    /// means abort.
    pub fn presume_abort(&mut self) {
        self.decided(
            Decision::Abort,
            Some(
                "presumed abort: the coordinator that began it logged no decision (it stopped, or lost its lease)"
                    .into(),
            ),
        );
    }

    fn decided(&mut self, decision: Decision, reason: Option<String>) {
        self.decision = Some(decision);
        self.reason = reason;
        self.state = match decision {
            Decision::Commit => TransactionState::Committing,
            Decision::Abort => TransactionState::Aborting,
        };
    }

    /// Participants that have not acknowledged the decision yet.
    pub fn unacknowledged(&self) -> Vec<usize> {
        (0..self.participants.len())
            .filter(|&i| self.participants[i].ack == Ack::Pending)
            .collect()
    }

    pub fn record_ack(&mut self, i: usize) {
        let Some(decision) = self.decision else { return };
        self.participants[i].ack = match decision {
            Decision::Commit => Ack::Committed,
            Decision::Abort => Ack::Aborted,
        };
        self.conclude();
    }

    /// Decided and acknowledged by every participant: final. Also what a transaction
    /// reloaded after a crash needs when the crash came between the last
    /// acknowledgement and the write of the final state.
    pub fn conclude(&mut self) {
        let Some(decision) = self.decision else { return };
        if self.unacknowledged().is_empty() {
            self.state = match decision {
                Decision::Commit => TransactionState::Committed,
                Decision::Abort => TransactionState::Aborted,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [api::Participant; 4] = api::Participant::ALL;

    #[test]
    fn states_votes_and_decisions_display_as_the_api_spells_them() {
        assert_eq!(TransactionState::Committing.to_string(), "committing");
        assert_eq!(Decision::Abort.to_string(), "abort");
        assert_eq!(ParticipantVote::Timeout.to_string(), "timeout");
        assert_eq!(Ack::Committed.to_string(), "committed");
        let mut tx = Transaction::new(&NAMES);
        tx.record_vote(0, ParticipantVote::Yes, None);
        tx.record_vote(1, ParticipantVote::No, Some("out of stock".into()));
        tx.decide();
        assert_eq!(tx.reason.as_deref(), Some("inventory voted no: out of stock"));
    }

    #[test]
    fn every_yes_commits_once_everyone_acknowledges() {
        let mut tx = Transaction::new(&NAMES);
        for i in 0..4 {
            tx.record_vote(i, ParticipantVote::Yes, None);
        }
        assert_eq!(tx.decide(), Decision::Commit);
        assert_eq!(tx.state, TransactionState::Committing);
        assert_eq!(tx.participants[2].outcome(), ParticipantOutcome::InDoubt);
        for i in 0..3 {
            tx.record_ack(i);
        }
        assert_eq!(tx.state, TransactionState::Committing);
        tx.record_ack(3);
        assert_eq!(tx.state, TransactionState::Committed);
        assert!(
            tx.participants
                .iter()
                .all(|p| p.outcome() == ParticipantOutcome::Committed)
        );
    }

    #[test]
    fn one_no_aborts_everyone() {
        let mut tx = Transaction::new(&NAMES);
        tx.record_vote(0, ParticipantVote::Yes, None);
        tx.record_vote(1, ParticipantVote::No, Some("422 insufficient-stock".into()));
        tx.record_vote(2, ParticipantVote::Yes, None);
        tx.record_vote(3, ParticipantVote::Yes, None);
        assert_eq!(tx.decide(), Decision::Abort);
        assert!(tx.reason.as_deref().unwrap().contains("inventory voted no"));
        assert_eq!(tx.participants[1].outcome(), ParticipantOutcome::Aborted);
        assert_eq!(
            tx.participants[0].outcome(),
            ParticipantOutcome::InDoubt,
            "prepared, not yet told"
        );
    }

    #[test]
    fn a_timeout_aborts_and_the_silent_participant_stays_in_doubt_until_told() {
        let mut tx = Transaction::new(&NAMES);
        for i in 0..3 {
            tx.record_vote(i, ParticipantVote::Yes, None);
        }
        tx.record_vote(3, ParticipantVote::Timeout, None);
        assert_eq!(tx.decide(), Decision::Abort);
        assert_eq!(tx.participants[3].outcome(), ParticipantOutcome::InDoubt);
        for i in 0..4 {
            tx.record_ack(i);
        }
        assert_eq!(tx.state, TransactionState::Aborted);
    }

    #[test]
    fn a_reloaded_transaction_every_participant_acknowledged_concludes() {
        let mut tx = Transaction::new(&NAMES);
        for i in 0..4 {
            tx.record_vote(i, ParticipantVote::Yes, None);
        }
        tx.decide();
        for i in 0..4 {
            tx.record_ack(i);
        }
        // The crash came before the final state was written: the log says committing.
        let mut reloaded = Transaction {
            state: TransactionState::Committing,
            ..tx
        };
        assert!(reloaded.unacknowledged().is_empty());
        reloaded.conclude();
        assert_eq!(reloaded.state, TransactionState::Committed);
    }

    #[test]
    fn an_undecided_transaction_does_not_conclude() {
        let mut tx = Transaction::new(&NAMES);
        for i in 0..4 {
            tx.participants[i].ack = Ack::Aborted;
        }
        tx.conclude();
        assert_eq!(tx.state, TransactionState::Preparing);
    }

    #[test]
    fn an_undecided_transaction_found_after_a_restart_aborts() {
        let mut tx = Transaction::new(&NAMES);
        tx.record_vote(0, ParticipantVote::Yes, None);
        tx.presume_abort();
        assert_eq!(tx.decision, Some(Decision::Abort));
        assert_eq!(tx.state, TransactionState::Aborting);
        assert_eq!(tx.unacknowledged().len(), 4, "everyone is told, prepared or not");
    }
}
