//! The saga as a pure state machine: what to do next, and what an outcome changes.
//! No I/O here; the engine persists every change to the saga log.

use serde::Serialize;

use super::steps::{
    COMPENSATION, HELD_BACK_BEFORE_PIVOT, HELD_BACK_MUST_HAPPEN, IN_FLIGHT_WAITS, OVERLOAD_PROTECTION, STEPS,
    is_before_or_at_pivot,
};

use api::Participant;
pub use api::SagaStatus;

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

/// What a call established (see `client::http_client::CallOutcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Refused(String),
    Unknown(String),
    /// Not sent: refused on the orchestrator's side (an open breaker, a full
    /// bulkhead, the retry budget). The call certainly did nothing: not an attempt.
    NotSent(String),
    /// An earlier call with the same key is still being worked on (a previous
    /// incarnation's, before a crash): this call did nothing, not an attempt; the
    /// earlier one's lease is known, and the call is made again after it.
    InFlight(String),
}

impl Outcome {
    /// Its kind, as the saga's history names it.
    pub fn kind(&self) -> api::AttemptOutcome {
        match self {
            Outcome::Succeeded => api::AttemptOutcome::Succeeded,
            Outcome::Refused(_) => api::AttemptOutcome::Refused,
            Outcome::Unknown(_) => api::AttemptOutcome::Unknown,
            Outcome::NotSent(_) => api::AttemptOutcome::NotSent,
            Outcome::InFlight(_) => api::AttemptOutcome::InFlight,
        }
    }

    /// What went wrong, when something did.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Succeeded => None,
            Outcome::Refused(detail)
            | Outcome::Unknown(detail)
            | Outcome::NotSent(detail)
            | Outcome::InFlight(detail) => Some(detail),
        }
    }
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
    /// The participant a parked saga waits for, when it is parked for lack of an
    /// answer from it (not for a refusal): it resumes as soon as that one recovers.
    pub parked_on: Option<Participant>,
    pub steps: Vec<StepState>,
    /// Attempts already spent per step when the saga was last resumed; a resumed
    /// saga gets a fresh budget (not persisted: a restart also resumes).
    budget_start: Vec<(u32, u32)>,
    /// Calls held back in a row, per step (not persisted either).
    held_back: Vec<u32>,
}

impl SagaState {
    pub fn new() -> Self {
        Self::from_parts(
            SagaStatus::Running,
            None,
            Parking::default(),
            vec![StepState::new(); STEPS.len()],
        )
    }

    pub fn from_parts(status: SagaStatus, reason: Option<String>, parking: Parking, steps: Vec<StepState>) -> Self {
        let budget_start = steps.iter().map(|s| (s.attempts, s.compensation_attempts)).collect();
        SagaState {
            status,
            reason,
            parked_reason: parking.reason,
            parked_compensating: parking.compensating,
            parked_on: parking.on,
            held_back: vec![0; steps.len()],
            steps,
            budget_start,
        }
    }

    /// Whether no call has been made yet: a run of a saga that is not new resumes it
    /// (after a restart, or out of parking).
    pub fn is_new(&self) -> bool {
        self.steps
            .iter()
            .all(|step| step.attempts == 0 && step.compensation_attempts == 0)
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
            self.parked_on = None;
        }
        self.held_back.fill(0);
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
            self.park_waiting(why, false, STEPS[i].action.participant())
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
        self.park_waiting(why, true, compensation_participant(j))
    }

    fn start_compensating(&mut self, reason: String) {
        self.status = SagaStatus::Compensating;
        self.reason = Some(reason);
    }

    /// Parked on a refusal: an operator's case.
    fn park(&mut self, reason: String, compensating: bool) -> Next {
        self.status = SagaStatus::Parked;
        self.parked_reason = Some(reason);
        self.parked_compensating = compensating;
        self.parked_on = None;
        Next::Stop(SagaStatus::Parked)
    }

    /// Parked for lack of an answer from `participant`: resumed when it recovers.
    fn park_waiting(&mut self, reason: String, compensating: bool, participant: Participant) -> Next {
        self.park(reason, compensating);
        self.parked_on = Some(participant);
        Next::Stop(SagaStatus::Parked)
    }

    /// A call that did nothing (`NotSent`, `InFlight`): not an attempt. Counts it
    /// as held back, and says why the saga gives up on the call if this was once
    /// too often in a row.
    fn held_back(&mut self, i: usize, must_happen: bool, error: &str, not_sent: bool) -> Option<String> {
        self.held_back[i] += 1;
        let limit = match (must_happen, not_sent) {
            (true, _) => HELD_BACK_MUST_HAPPEN,
            (false, true) => HELD_BACK_BEFORE_PIVOT,
            (false, false) => IN_FLIGHT_WAITS,
        };
        let n = self.held_back[i];
        if n < limit {
            return None;
        }
        self.held_back[i] = 0;
        // Compensations only run while compensating.
        let what = if self.status == SagaStatus::Compensating {
            format!("compensating {}", STEPS[i].name)
        } else {
            STEPS[i].name.to_owned()
        };
        Some(if not_sent {
            format!(
                "{OVERLOAD_PROTECTION}: {what} was held back {n} times in a row by the orchestrator's own \
                 protections and never sent (last: {error}); no participant refused it"
            )
        } else {
            format!("{what}: an earlier call is still in flight after {n} waits for it (last: {error})")
        })
    }

    /// Calls of step `i` (or its compensation) held back in a row so far.
    pub fn held_back_count(&self, i: usize) -> u32 {
        self.held_back[i]
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
        let (error, not_sent) = match outcome {
            Outcome::NotSent(error) => (error, true),
            Outcome::InFlight(error) => (error, false),
            sent => return self.record_sent_action(i, sent),
        };
        // Not an attempt: the call did nothing. A step never attempted stays pending
        // (so it is not compensated); one with an earlier attempt whose outcome is
        // unknown stays running (and is compensated if it comes to that). Called
        // again after a wait; so many times in a row, and the saga gives up on it:
        // compensates up to the pivot, parks past it.
        let step = &mut self.steps[i];
        step.attempts -= 1;
        step.status = if step.attempts == 0 {
            StepStatus::Pending
        } else {
            StepStatus::Running
        };
        step.last_error = Some(error.clone());
        let must_happen = !is_before_or_at_pivot(i);
        if let Some(why) = self.held_back(i, must_happen, &error, not_sent) {
            if must_happen {
                self.park_waiting(why, false, STEPS[i].action.participant());
            } else {
                self.start_compensating(why);
            }
        }
    }

    fn record_sent_action(&mut self, i: usize, outcome: Outcome) {
        self.held_back[i] = 0;
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
            Outcome::NotSent(_) | Outcome::InFlight(_) => unreachable!("held back calls are recorded apart"),
        }
    }

    pub fn begin_compensation(&mut self, j: usize) -> u32 {
        let step = &mut self.steps[j];
        step.status = StepStatus::Compensating;
        step.compensation_attempts += 1;
        step.compensation_attempts
    }

    pub fn record_compensation(&mut self, j: usize, outcome: Outcome) {
        let (error, not_sent) = match outcome {
            Outcome::Succeeded => {
                self.held_back[j] = 0;
                self.steps[j].status = StepStatus::Compensated;
                return;
            }
            Outcome::Unknown(error) => {
                self.held_back[j] = 0;
                self.steps[j].last_error = Some(error);
                return;
            }
            Outcome::Refused(error) => {
                self.held_back[j] = 0;
                self.steps[j].last_error = Some(error.clone());
                let why = format!("compensating {} was refused: {error}", STEPS[j].name);
                self.park(why, true);
                return;
            }
            Outcome::NotSent(error) => (error, true),
            Outcome::InFlight(error) => (error, false),
        };
        // Not an attempt (see `record_action`); a compensation must happen, so in
        // the end it parks, waiting for its participant.
        let step = &mut self.steps[j];
        step.compensation_attempts -= 1;
        step.last_error = Some(error.clone());
        if let Some(why) = self.held_back(j, true, &error, not_sent) {
            self.park_waiting(why, true, compensation_participant(j));
        }
    }
}

/// The participant step `j`'s compensation goes to.
fn compensation_participant(j: usize) -> Participant {
    STEPS[j].compensation.unwrap_or(STEPS[j].action).participant()
}

/// Why and how a saga is parked, as the log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parking {
    pub reason: Option<String>,
    pub compensating: bool,
    pub on: Option<Participant>,
}

impl Default for SagaState {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Next::*, SagaStatus::*, *};

    #[test]
    fn statuses_display_as_the_api_spells_them() {
        assert_eq!(Compensating.to_string(), "compensating");
        assert_eq!(Confirmed.to_string(), "confirmed");
        assert_eq!(crate::domain::OrderStatus::Cancelled.to_string(), "cancelled");
    }

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

    /// Outcomes by call number, counted per (step, compensation or not): a step's
    /// calls held back keep their attempt number, so the closure is told the count.
    fn by_call(outcomes: impl Fn(Next, u32) -> Outcome) -> impl Fn(Next, u32) -> Outcome {
        let calls = std::cell::RefCell::new(std::collections::HashMap::new());
        move |next, _| {
            let mut calls = calls.borrow_mut();
            let n = calls.entry(format!("{next:?}")).or_insert(0u32);
            *n += 1;
            outcomes(next, *n)
        }
    }

    #[test]
    fn a_charge_held_back_by_the_orchestrators_protections_waits_and_goes_through() {
        let mut saga = SagaState::new();
        let trail = drive(
            &mut saga,
            by_call(|next, call| match (next, call) {
                (Act(2), 1..=3) => Outcome::NotSent("not sent: retry to payment denied by the retry budget".into()),
                _ => Outcome::Succeeded,
            }),
        );
        assert_eq!(trail.iter().filter(|n| **n == Act(2)).count(), 4);
        assert_eq!(saga.status, Confirmed);
        assert_eq!(saga.steps[2].attempts, 1, "calls not sent are not attempts");
    }

    #[test]
    fn a_charge_held_back_too_often_cancels_saying_so_and_is_not_refunded() {
        let mut saga = SagaState::new();
        let trail = drive(&mut saga, |next, _| match next {
            Act(2) => Outcome::NotSent("not sent: circuit open for payment".into()),
            _ => Outcome::Succeeded,
        });
        let mut expected = vec![Act(0), Act(1)];
        expected.extend([Act(2); HELD_BACK_BEFORE_PIVOT as usize]);
        expected.extend([Compensate(1), Compensate(0), Stop(Cancelled)]);
        assert_eq!(trail, expected);
        assert_eq!(saga.steps[2].status, StepStatus::Pending);
        assert_eq!(saga.steps[2].attempts, 0, "the participant never heard of it");
        let reason = saga.reason.as_deref().unwrap();
        assert!(reason.starts_with("overload-protection: charge_payment"), "{reason}");
        assert!(reason.contains("circuit open"), "{reason}");
    }

    #[test]
    fn a_charge_held_back_after_an_unknown_attempt_is_still_refunded() {
        let mut saga = SagaState::new();
        let trail = drive(
            &mut saga,
            by_call(|next, call| match (next, call) {
                (Act(2), 1) => Outcome::Unknown("timed out".into()),
                (Act(2), _) => Outcome::NotSent("not sent: retry to payment denied by the retry budget".into()),
                _ => Outcome::Succeeded,
            }),
        );
        assert_eq!(
            trail.iter().filter(|n| **n == Act(2)).count(),
            1 + HELD_BACK_BEFORE_PIVOT as usize
        );
        assert_eq!(
            &trail[trail.len() - 4..],
            [Compensate(2), Compensate(1), Compensate(0), Stop(Cancelled)]
        );
        assert_eq!(saga.steps[2].status, StepStatus::Compensated);
        assert_eq!(saga.steps[2].attempts, 1);
    }

    #[test]
    fn a_call_still_in_flight_from_before_a_crash_is_waited_for_not_counted() {
        let mut saga = SagaState::new();
        saga.begin_action(0);
        // ...the orchestrator dies with its create_order call in flight; resumed, it
        // finds that call's claim still held for a while.
        let mut reloaded = SagaState::from_parts(saga.status, None, Parking::default(), saga.steps.clone());
        let outcomes = by_call(|next, call| match (next, call) {
            (Act(0), 1..=8) => Outcome::InFlight("the previous attempt is still in flight".into()),
            _ => Outcome::Succeeded,
        });
        let trail = drive(&mut reloaded, outcomes);
        assert_eq!(trail.last(), Some(&Stop(Confirmed)));
        assert_eq!(
            reloaded.steps[0].attempts, 2,
            "the crashed attempt and the one that got through"
        );
    }

    #[test]
    fn past_the_pivot_a_call_held_back_is_made_again_and_parks_waiting_for_its_participant() {
        let mut saga = SagaState::new();
        let trail = drive(
            &mut saga,
            by_call(|next, call| match (next, call) {
                (Act(5), 1..=2) => Outcome::NotSent("not sent: circuit open for email".into()),
                (Compensate(_), _) => panic!("nothing is compensated past the pivot"),
                _ => Outcome::Succeeded,
            }),
        );
        assert_eq!(trail.last(), Some(&Stop(Confirmed)));
        assert_eq!(saga.steps[5].attempts, 1);

        let mut saga = SagaState::new();
        drive(&mut saga, |next, _| match next {
            Act(5) => Outcome::NotSent("not sent: circuit open for email".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        assert_eq!(saga.parked_on, Some(Participant::Email));
        assert!(
            saga.parked_reason
                .as_deref()
                .unwrap()
                .starts_with("overload-protection: send_email")
        );
        assert_eq!(saga.reason, None, "not cancelled, only parked");
        saga.resume();
        assert_eq!(saga.parked_on, None);
        drive(&mut saga, |_, _| Outcome::Succeeded);
        assert_eq!(saga.status, Confirmed);
    }

    #[test]
    fn a_compensation_held_back_is_not_an_attempt() {
        let mut saga = SagaState::new();
        drive(
            &mut saga,
            by_call(|next, call| match (next, call) {
                (Act(2), _) => Outcome::Refused("402 payment-declined".into()),
                (Compensate(2), 1..=20) => Outcome::NotSent("not sent: circuit open for payment".into()),
                _ => Outcome::Succeeded,
            }),
        );
        assert_eq!(saga.status, Cancelled);
        assert_eq!(saga.steps[2].compensation_attempts, 1);
    }

    #[test]
    fn a_compensation_that_never_gets_an_answer_parks_waiting_for_its_participant() {
        let mut saga = SagaState::new();
        drive(&mut saga, |next, _| match next {
            Act(2) => Outcome::Refused("402 payment-declined".into()),
            Compensate(2) => Outcome::Unknown("503".into()),
            _ => Outcome::Succeeded,
        });
        assert_eq!(saga.status, Parked);
        assert!(saga.parked_compensating);
        assert_eq!(saga.parked_on, Some(Participant::Payment));
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
        let mut reloaded = SagaState::from_parts(saga.status, None, Parking::default(), saga.steps.clone());
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
