//! The saga as a pure state machine: what to do next, and what an outcome changes.
//! No I/O here; the engine persists every change to the saga log.

use serde::Serialize;

use super::steps::{COMPENSATION, STEPS, is_before_or_at_pivot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "saga_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
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

impl SagaStatus {
    pub fn is_final(self) -> bool {
        matches!(self, SagaStatus::Confirmed | SagaStatus::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "step_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Attempted; the outcome of the latest attempt is not known yet.
    Running,
    Succeeded,
    /// Refused definitely.
    Failed,
    Compensating,
    Compensated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepState {
    pub status: StepStatus,
    pub attempts: u32,
    pub compensation_attempts: u32,
    pub last_error: Option<String>,
}

impl StepState {
    pub fn new() -> Self {
        StepState {
            status: StepStatus::Pending,
            attempts: 0,
            compensation_attempts: 0,
            last_error: None,
        }
    }
}

impl Default for StepState {
    fn default() -> Self {
        Self::new()
    }
}

/// What a call established (see `shared::http_client::CallOutcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Refused(String),
    Unknown(String),
    /// Not sent: refused on the orchestrator's side (an open breaker, a full
    /// bulkhead, the retry budget). This attempt certainly did nothing.
    NotSent(String),
}

/// What the engine does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Act(usize),
    Compensate(usize),
    /// The saga stops here for now: final, or parked.
    Stop(SagaStatus),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    pub status: SagaStatus,
    /// Why it is compensating, or was cancelled: the first refusal (or running out of
    /// attempts), kept through every parking and resumption.
    pub reason: Option<String>,
    /// Why it is parked; cleared when it resumes.
    pub parked_reason: Option<String>,
    /// Parked while compensating: resumes compensating.
    pub parked_compensating: bool,
    pub steps: Vec<StepState>,
    /// Attempts already spent per step when the saga was last resumed; a resumed
    /// saga gets a fresh budget (not persisted: a restart also resumes).
    budget_start: Vec<(u32, u32)>,
}

impl SagaState {
    pub fn new() -> Self {
        Self::from_parts(
            SagaStatus::Running,
            None,
            None,
            false,
            vec![StepState::new(); STEPS.len()],
        )
    }

    pub fn from_parts(
        status: SagaStatus,
        reason: Option<String>,
        parked_reason: Option<String>,
        parked_compensating: bool,
        steps: Vec<StepState>,
    ) -> Self {
        let budget_start = steps.iter().map(|s| (s.attempts, s.compensation_attempts)).collect();
        SagaState {
            status,
            reason,
            parked_reason,
            parked_compensating,
            steps,
            budget_start,
        }
    }

    /// A parked saga goes back to work, with a fresh attempt budget. Why it is
    /// compensating (`reason`) stays.
    pub fn resume(&mut self) {
        if self.status == SagaStatus::Parked {
            self.status = if self.parked_compensating {
                SagaStatus::Compensating
            } else {
                SagaStatus::Running
            };
            self.parked_compensating = false;
            self.parked_reason = None;
        }
        self.budget_start = self
            .steps
            .iter()
            .map(|s| (s.attempts, s.compensation_attempts))
            .collect();
    }

    /// Decides the next move; may itself change the saga's status (to compensating
    /// when a step up to the pivot is out of attempts, to parked, to final).
    pub fn decide(&mut self) -> Next {
        match self.status {
            SagaStatus::Confirmed | SagaStatus::Cancelled | SagaStatus::Parked => Next::Stop(self.status),
            SagaStatus::Running => self.next_forward(),
            SagaStatus::Compensating => self.next_backward(),
        }
    }

    fn next_forward(&mut self) -> Next {
        let Some(i) = self.steps.iter().position(|s| s.status != StepStatus::Succeeded) else {
            self.status = SagaStatus::Confirmed;
            return Next::Stop(SagaStatus::Confirmed);
        };
        let spent = self.steps[i].attempts - self.budget_start[i].0;
        if spent < STEPS[i].retry.max_attempts {
            return Next::Act(i);
        }
        let why = format!(
            "{}: no definite answer after {spent} attempts ({})",
            STEPS[i].name,
            self.steps[i].last_error.as_deref().unwrap_or("no error recorded")
        );
        if is_before_or_at_pivot(i) {
            self.start_compensating(why);
            self.next_backward()
        } else {
            self.park(why, false)
        }
    }

    fn next_backward(&mut self) -> Next {
        let pending = (0..self.steps.len()).rev().find(|&j| {
            let step = &self.steps[j];
            STEPS[j].compensation.is_some()
                && step.attempts > 0
                && !matches!(step.status, StepStatus::Pending | StepStatus::Compensated)
        });
        let Some(j) = pending else {
            self.status = SagaStatus::Cancelled;
            return Next::Stop(SagaStatus::Cancelled);
        };
        let spent = self.steps[j].compensation_attempts - self.budget_start[j].1;
        if spent < COMPENSATION.max_attempts {
            return Next::Compensate(j);
        }
        let why = format!(
            "compensating {}: no success after {spent} attempts ({})",
            STEPS[j].name,
            self.steps[j].last_error.as_deref().unwrap_or("no error recorded")
        );
        self.park(why, true)
    }

    fn start_compensating(&mut self, reason: String) {
        self.status = SagaStatus::Compensating;
        self.reason = Some(reason);
    }

    fn park(&mut self, reason: String, compensating: bool) -> Next {
        self.status = SagaStatus::Parked;
        self.parked_reason = Some(reason);
        self.parked_compensating = compensating;
        Next::Stop(SagaStatus::Parked)
    }

    /// Written to the log before the call: the attempt is counted even if the
    /// orchestrator dies during it. Returns the attempt's number.
    pub fn begin_action(&mut self, i: usize) -> u32 {
        let step = &mut self.steps[i];
        step.status = StepStatus::Running;
        step.attempts += 1;
        step.attempts
    }

    pub fn record_action(&mut self, i: usize, outcome: Outcome) {
        let step = &mut self.steps[i];
        match outcome {
            Outcome::Succeeded => {
                step.status = StepStatus::Succeeded;
                step.last_error = None;
            }
            Outcome::Unknown(error) => {
                step.status = StepStatus::Running;
                step.last_error = Some(error);
            }
            Outcome::Refused(error) => {
                step.status = StepStatus::Failed;
                step.last_error = Some(error.clone());
                let why = format!("{}: {error}", STEPS[i].name);
                if is_before_or_at_pivot(i) {
                    self.start_compensating(why);
                } else {
                    // Past the pivot nothing is undone: an operator has to look.
                    self.park(why, false);
                }
            }
            // Up to the pivot, fail fast. If this was the step's only attempt the
            // participant never heard of it, so it is not compensated either (an
            // earlier attempt whose outcome is unknown still is).
            Outcome::NotSent(error) if is_before_or_at_pivot(i) => {
                let why = format!("{}: {error}", STEPS[i].name);
                step.last_error = Some(error);
                if step.attempts == 1 && self.budget_start[i].0 == 0 {
                    step.attempts = 0;
                    step.status = StepStatus::Pending;
                } else {
                    step.status = StepStatus::Failed;
                }
                self.start_compensating(why);
            }
            // Past the pivot the saga must go on: like an unknown outcome, retried.
            Outcome::NotSent(error) => {
                step.status = StepStatus::Running;
                step.last_error = Some(error);
            }
        }
    }

    pub fn begin_compensation(&mut self, j: usize) -> u32 {
        let step = &mut self.steps[j];
        step.status = StepStatus::Compensating;
        step.compensation_attempts += 1;
        step.compensation_attempts
    }

    pub fn record_compensation(&mut self, j: usize, outcome: Outcome) {
        let step = &mut self.steps[j];
        match outcome {
            Outcome::Succeeded => step.status = StepStatus::Compensated,
            Outcome::Unknown(error) | Outcome::NotSent(error) => step.last_error = Some(error),
            Outcome::Refused(error) => {
                step.last_error = Some(error.clone());
                let why = format!("compensating {} was refused: {error}", STEPS[j].name);
                self.park(why, true);
            }
        }
    }
}

impl Default for SagaState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Next::*, SagaStatus::*, *};

    fn drive(saga: &mut SagaState, outcomes: impl Fn(Next, u32) -> Outcome) -> Vec<Next> {
        let mut trail = Vec::new();
        loop {
            let next = saga.decide();
            trail.push(next);
            match next {
                Act(i) => {
                    let attempt = saga.begin_action(i);
                    saga.record_action(i, outcomes(next, attempt));
                }
                Compensate(j) => {
                    let attempt = saga.begin_compensation(j);
                    saga.record_compensation(j, outcomes(next, attempt));
                }
                Stop(_) => return trail,
            }
            assert!(trail.len() < 200, "the saga does not terminate: {trail:?}");
        }
    }

    #[test]
    fn every_step_succeeding_confirms() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |_, _| Outcome::Succeeded);
        assert_eq!(
            trail,
            vec![Act(0), Act(1), Act(2), Act(3), Act(4), Act(5), Stop(Confirmed)]
        );
    }

    #[test]
    fn a_declined_charge_compensates_newest_first() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, _| match next {
            Act(2) => Outcome::Refused("402 payment-declined".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(
            trail,
            vec![
                Act(0),
                Act(1),
                Act(2),
                Compensate(2),
                Compensate(1),
                Compensate(0),
                Stop(Cancelled)
            ]
        );
        assert!(saga.reason.as_deref().unwrap().starts_with("charge_payment: 402"));
        assert_eq!(saga.steps[2].status, StepStatus::Compensated);
        assert_eq!(saga.steps[3].status, StepStatus::Pending);
    }

    #[test]
    fn a_charge_never_sent_fails_fast_and_is_not_refunded() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, _| match next {
            Act(2) => Outcome::NotSent("not sent: circuit open for payment".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(
            trail,
            vec![Act(0), Act(1), Act(2), Compensate(1), Compensate(0), Stop(Cancelled)]
        );
        assert_eq!(saga.steps[2].status, StepStatus::Pending);
        assert_eq!(saga.steps[2].attempts, 0, "the participant never heard of it");
        assert!(saga.reason.as_deref().unwrap().contains("circuit open"));
    }

    #[test]
    fn a_charge_not_sent_after_an_unknown_attempt_is_still_refunded() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, attempt| match (next, attempt) {
            (Act(2), 1) => Outcome::Unknown("timed out".into()),
            (Act(2), _) => Outcome::NotSent("not sent: retry denied by the retry budget".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(
            trail,
            vec![
                Act(0),
                Act(1),
                Act(2),
                Act(2),
                Compensate(2),
                Compensate(1),
                Compensate(0),
                Stop(Cancelled)
            ]
        );
        assert_eq!(saga.steps[2].status, StepStatus::Compensated);
    }

    #[test]
    fn past_the_pivot_a_call_not_sent_is_retried() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, attempt| match (next, attempt) {
            (Act(5), 1 | 2) => Outcome::NotSent("not sent: circuit open for email".into()),
            (Compensate(_), _) => panic!("nothing is compensated past the pivot"),
            _ => Outcome::Succeeded,
        });
        assert_eq!(trail.last(), Some(&Stop(Confirmed)));
        assert_eq!(saga.steps[5].attempts, 3);
    }

    #[test]
    fn out_of_stock_never_reaches_the_charge() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, _| match next {
            Act(1) => Outcome::Refused("422 insufficient-stock".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(
            trail,
            vec![Act(0), Act(1), Compensate(1), Compensate(0), Stop(Cancelled)]
        );
        assert_eq!(saga.steps[2].attempts, 0);
    }

    #[test]
    fn an_unknown_outcome_is_retried_until_a_definite_one() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, attempt| match next {
            Act(2) if attempt < 3 => Outcome::Unknown("timed out".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(trail.iter().filter(|n| **n == Act(2)).count(), 3);
        assert_eq!(saga.status, Confirmed);
        assert_eq!(saga.steps[2].attempts, 3);
    }

    #[test]
    fn running_out_of_attempts_before_the_pivot_compensates() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, _| match next {
            Act(1) => Outcome::Unknown("503".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Cancelled);
        assert_eq!(saga.steps[1].attempts, STEPS[1].retry.max_attempts);
        assert_eq!(
            saga.steps[1].status,
            StepStatus::Compensated,
            "released, maybe as a null compensation"
        );
        assert!(saga.reason.as_deref().unwrap().contains("no definite answer"));
    }

    #[test]
    fn after_the_pivot_a_failing_step_parks_and_never_compensates() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, _| match next {
            Act(5) => Outcome::Unknown("email down".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(*trail.last().unwrap(), Stop(Parked));
        assert!(!trail.iter().any(|n| matches!(n, Compensate(_))));
        assert_eq!(saga.steps[2].status, StepStatus::Succeeded, "the charge stands");

        saga.resume();
        assert_eq!(saga.status, Running);
        let trail = drive(&mut saga, |_, _| Outcome::Succeeded);
        assert_eq!(trail, vec![Act(5), Stop(Confirmed)]);
    }

    #[test]
    fn a_resumed_parked_saga_gets_a_fresh_budget_and_parks_again_if_still_failing() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, _| match next {
            Act(4) => Outcome::Unknown("order confirm down".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        let spent = saga.steps[4].attempts;
        saga.resume();
        drive(&mut saga, |_, _| Outcome::Unknown("still down".into()));
        assert_eq!(saga.status, Parked);
        assert_eq!(saga.steps[4].attempts, spent * 2);
    }

    #[test]
    fn a_step_in_flight_at_a_crash_is_attempted_again() {
        let mut saga = SagaState::new();
        saga.begin_action(0);
        saga.record_action(0, Outcome::Succeeded);
        saga.begin_action(1);
        // ...the orchestrator dies here; the log says step 1 is running.
        let mut reloaded = SagaState::from_parts(saga.status, None, None, false, saga.steps.clone());
        assert_eq!(reloaded.decide(), Act(1));
    }

    #[test]
    fn a_refused_compensation_parks_and_resumes_compensating() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, attempt| match next {
            Act(2) => Outcome::Refused("402".into()),
            Compensate(1) if attempt == 1 => Outcome::Refused("409 conflict".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        assert!(saga.parked_compensating);
        saga.resume();
        assert_eq!(saga.status, Compensating);
        drive(&mut saga, |_, _| Outcome::Succeeded);
        assert_eq!(saga.status, Cancelled);
    }

    #[test]
    fn the_first_refusal_stays_the_reason_through_parking_and_resumption() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, attempt| match next {
            Act(2) => Outcome::Refused("402 payment-declined: card_declined".into()),
            Compensate(1) if attempt == 1 => Outcome::Refused("409 conflict".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        assert!(saga.parked_reason.as_deref().unwrap().contains("409 conflict"));
        assert!(saga.reason.as_deref().unwrap().contains("402 payment-declined"));
        saga.resume();
        assert_eq!(saga.parked_reason, None);
        drive(&mut saga, |_, _| Outcome::Succeeded);
        assert_eq!(saga.status, Cancelled);
        assert_eq!(
            saga.reason.as_deref(),
            Some("charge_payment: 402 payment-declined: card_declined")
        );
    }

    #[test]
    fn a_definite_refusal_after_the_pivot_parks_for_an_operator() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, _| match next {
            Act(4) => Outcome::Refused("409 conflict".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        assert_eq!(saga.steps[2].status, StepStatus::Succeeded);
    }
}
