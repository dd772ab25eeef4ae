//! A retry budget, one per downstream: over a sliding window, retries may be at
//! most `ratio` × first calls, plus a small floor so a quiet service can still retry.
//! When a downstream is down, every caller retrying at once would multiply its load
//! by the attempts; with a budget, the extra load is bounded by the ratio.

use std::{collections::VecDeque, time::Instant};

use base::config::resilience::BudgetSettings;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u64,
    retries: u64,
}

#[derive(Debug, Clone)]
pub struct RetryBudget {
    settings: BudgetSettings,
    origin: Instant,
    buckets: VecDeque<Bucket>,
    /// Retries refused since start.
    pub denied: u64,
}

/// The budget's counts over the current window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BudgetWindow {
    pub calls: u64,
    pub retries: u64,
    pub allowed: u64,
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings, now: Instant) -> Self {
        RetryBudget {
            settings,
            origin: now,
            buckets: VecDeque::new(),
            denied: 0,
        }
    }

    /// A first attempt is being made.
    pub fn record_call(&mut self, now: Instant) {
        self.bucket(now).calls += 1;
    }

    /// A retry wants to be made: spends from the budget, or is refused.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        let window = self.window(now);
        if window.retries < window.allowed {
            self.bucket(now).retries += 1;
            true
        } else {
            self.denied += 1;
            false
        }
    }

    pub fn window(&mut self, now: Instant) -> BudgetWindow {
        self.expire(now);
        let (calls, retries) = self
            .buckets
            .iter()
            .fold((0, 0), |(c, r), b| (c + b.calls, r + b.retries));
        let floor = self.settings.min_per_second * self.settings.window.as_secs_f64();
        BudgetWindow {
            calls,
            retries,
            allowed: (floor + self.settings.ratio * calls as f64).floor() as u64,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn expire(&mut self, now: Instant) {
        let oldest = self
            .second(now)
            .saturating_sub(self.settings.window.as_secs().max(1) - 1);
        while self.buckets.front().is_some_and(|b| b.second < oldest) {
            self.buckets.pop_front();
        }
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        self.expire(now);
        let second = self.second(now);
        if self.buckets.back().is_none_or(|b| b.second != second) {
            self.buckets.push_back(Bucket {
                second,
                ..Bucket::default()
            });
        }
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SETTINGS: BudgetSettings = BudgetSettings {
        ratio: 0.2,
        min_per_second: 0.5,
        window: Duration::from_secs(10),
    };

    #[test]
    fn retries_stay_within_the_ratio_plus_the_floor() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(SETTINGS, t0);
        for _ in 0..100 {
            budget.record_call(t0);
        }
        // Every call failing and every caller retrying at once: 20 + 5 get through.
        let granted = (0..100).filter(|_| budget.try_retry(t0)).count();
        assert_eq!(granted, 25);
        assert_eq!(budget.denied, 75);
        let window = budget.window(t0);
        assert!(window.retries as f64 <= 0.2 * window.calls as f64 + 5.0);
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(SETTINGS, t0);
        for _ in 0..50 {
            budget.record_call(t0);
        }
        assert_eq!((0..100).filter(|_| budget.try_retry(t0)).count(), 15);
        // Nine seconds on, the same second's calls and retries still count.
        assert!(!budget.try_retry(t0 + Duration::from_secs(9)));
        // Once they have left the window only the floor is left, and it is fresh.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(budget.window(t1).calls, 0);
        assert_eq!((0..100).filter(|_| budget.try_retry(t1)).count(), 5);
    }

    #[test]
    fn with_no_traffic_only_the_floor_is_allowed() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(SETTINGS, t0);
        assert_eq!((0..10).filter(|_| budget.try_retry(t0)).count(), 5);
    }
}
