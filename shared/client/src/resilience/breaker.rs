//! A circuit breaker, one per downstream. Pure: the caller passes the time in, so
//! every transition is testable without sleeping.
//!
//! ```text
//!            N consecutive failures                cool-down over
//!   Closed ─────────────────────────▶ Open ────────────────────────▶ HalfOpen
//!     ▲                                ▲   (calls short-circuited)      │
//!     │          trial succeeded       │        trial failed            │
//!     └────────────────────────────────┼────────────────────────────────┤
//!                                      └────────────────────────────────┘
//! ```
//!
//! A failure is an answer that says nothing definite (no answer, a timeout, a 5xx,
//! 408, 429). A business refusal (any other 4xx) is the downstream working.

use std::time::{Duration, Instant};

use base::config::resilience::BreakerSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { trials_in_flight: u32, since: Instant },
}

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Make the call; `trial` calls decide whether the breaker closes again.
    Allowed { trial: bool },
    /// Do not make the call; the downstream is presumed down for `retry_after`.
    ShortCircuited { retry_after: Duration },
}

/// How a call that was let through ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Success,
    Failure,
    /// Says nothing about the downstream's health (e.g. "still in flight").
    Neutral,
}

/// A change of state, reported as a span event and a log line by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
    Reopened,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: BreakerState,
    /// Times it opened (from closed or half-open), since start.
    pub opened: u64,
    /// Calls refused without being made, since start.
    pub short_circuited: u64,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        CircuitBreaker {
            settings,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            opened: 0,
            short_circuited: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        use BreakerState::*;
        match self.state {
            Closed { .. } => (Admission::Allowed { trial: false }, None),
            Open { until } if now >= until => {
                self.state = HalfOpen {
                    trials_in_flight: 1,
                    since: now,
                };
                (Admission::Allowed { trial: true }, Some(Transition::HalfOpened))
            }
            Open { until } => {
                self.short_circuited += 1;
                (
                    Admission::ShortCircuited {
                        retry_after: until - now,
                    },
                    None,
                )
            }
            // A trial whose caller gave up never reports back: after a cool-down
            // without an answer, the slots are free again.
            HalfOpen { since, .. } if now.duration_since(since) >= self.settings.cool_down => {
                self.state = HalfOpen {
                    trials_in_flight: 1,
                    since: now,
                };
                (Admission::Allowed { trial: true }, None)
            }
            HalfOpen {
                trials_in_flight,
                since,
            } if trials_in_flight < self.settings.half_open_trials => {
                self.state = HalfOpen {
                    trials_in_flight: trials_in_flight + 1,
                    since,
                };
                (Admission::Allowed { trial: true }, None)
            }
            HalfOpen { since, .. } => {
                self.short_circuited += 1;
                let retry_after = (since + self.settings.cool_down).saturating_duration_since(now);
                (Admission::ShortCircuited { retry_after }, None)
            }
        }
    }

    pub fn record(&mut self, result: CallResult, trial: bool, now: Instant) -> Option<Transition> {
        use BreakerState::*;
        match (self.state, result) {
            (_, CallResult::Neutral) => {
                if let (
                    HalfOpen {
                        trials_in_flight,
                        since,
                    },
                    true,
                ) = (self.state, trial)
                {
                    self.state = HalfOpen {
                        trials_in_flight: trials_in_flight.saturating_sub(1),
                        since,
                    };
                }
                None
            }
            (Closed { .. }, CallResult::Success) => {
                self.state = Closed {
                    consecutive_failures: 0,
                };
                None
            }
            (Closed { consecutive_failures }, CallResult::Failure) => {
                let failures = consecutive_failures + 1;
                if failures >= self.settings.failure_threshold {
                    self.open(now);
                    Some(Transition::Opened)
                } else {
                    self.state = Closed {
                        consecutive_failures: failures,
                    };
                    None
                }
            }
            (HalfOpen { .. }, CallResult::Success) if trial => {
                self.state = Closed {
                    consecutive_failures: 0,
                };
                Some(Transition::Closed)
            }
            (HalfOpen { .. }, CallResult::Failure) if trial => {
                self.open(now);
                Some(Transition::Reopened)
            }
            // Late answers to calls let through before the breaker opened.
            (HalfOpen { .. } | Open { .. }, _) => None,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open {
            until: now + self.settings.cool_down,
        };
        self.opened += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        cool_down: Duration::from_secs(5),
        half_open_trials: 1,
    };

    fn allowed(breaker: &mut CircuitBreaker, now: Instant) -> bool {
        matches!(breaker.admit(now).0, Admission::Allowed { .. })
    }

    #[test]
    fn opens_after_n_consecutive_failures_and_short_circuits() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(SETTINGS);
        for _ in 0..2 {
            assert!(allowed(&mut breaker, t0));
            assert_eq!(breaker.record(CallResult::Failure, false, t0), None);
        }
        // A success in between starts the count again.
        assert_eq!(breaker.record(CallResult::Success, false, t0), None);
        for _ in 0..2 {
            breaker.record(CallResult::Failure, false, t0);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
        assert_eq!(breaker.record(CallResult::Failure, false, t0), Some(Transition::Opened));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            breaker.admit(later).0,
            Admission::ShortCircuited {
                retry_after: Duration::from_secs(3)
            }
        );
        assert_eq!((breaker.opened, breaker.short_circuited), (1, 1));
    }

    #[test]
    fn half_opens_after_the_cool_down_and_a_good_trial_closes_it() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(SETTINGS);
        for _ in 0..3 {
            breaker.record(CallResult::Failure, false, t0);
        }
        let after = t0 + SETTINGS.cool_down;
        assert_eq!(
            breaker.admit(after),
            (Admission::Allowed { trial: true }, Some(Transition::HalfOpened))
        );
        // One trial at a time: the next caller is still refused.
        assert!(!allowed(&mut breaker, after));
        assert_eq!(
            breaker.record(CallResult::Success, true, after),
            Some(Transition::Closed)
        );
        assert!(allowed(&mut breaker, after));
    }

    #[test]
    fn a_failed_trial_opens_it_for_another_cool_down() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(SETTINGS);
        for _ in 0..3 {
            breaker.record(CallResult::Failure, false, t0);
        }
        let t1 = t0 + SETTINGS.cool_down;
        assert!(allowed(&mut breaker, t1));
        assert_eq!(
            breaker.record(CallResult::Failure, true, t1),
            Some(Transition::Reopened)
        );
        assert!(!allowed(&mut breaker, t1 + Duration::from_secs(4)));
        assert!(allowed(&mut breaker, t1 + SETTINGS.cool_down));
        assert_eq!(breaker.opened, 2);
    }

    #[test]
    fn late_answers_and_neutral_ones_change_nothing_and_a_lost_trial_is_replaced() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(SETTINGS);
        for _ in 0..3 {
            breaker.record(CallResult::Failure, false, t0);
        }
        // A call admitted while closed answers after the breaker opened.
        assert_eq!(breaker.record(CallResult::Success, false, t0), None);
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        let t1 = t0 + SETTINGS.cool_down;
        assert!(allowed(&mut breaker, t1));
        // "Still in flight" frees the trial slot without deciding anything.
        assert_eq!(breaker.record(CallResult::Neutral, true, t1), None);
        assert!(allowed(&mut breaker, t1));
        // That trial's caller gives up and never reports: after a cool-down, another.
        assert!(!allowed(&mut breaker, t1 + Duration::from_secs(1)));
        assert!(allowed(&mut breaker, t1 + SETTINGS.cool_down));
    }
}
