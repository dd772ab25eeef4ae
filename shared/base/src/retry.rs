//! Retry schedules: exponential backoff with jitter and a bound on attempts.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before giving up (compensating, parking); `u32::MAX` = never.
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after the `failed`-th failed attempt: `first × 2^(failed-1)`, capped,
    /// with ±20 % jitter so retries from many callers do not arrive together.
    pub fn backoff(&self, failed: u32) -> Duration {
        let exponential = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(failed.saturating_sub(1)));
        exponential
            .min(self.max_backoff)
            .mul_f64(0.8 + 0.4 * rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for (failed, nominal) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (30, 1000)] {
            let wait = policy.backoff(failed).as_millis() as u64;
            assert!(
                wait >= nominal * 8 / 10 && wait <= nominal * 12 / 10,
                "after {failed}: {wait} ms"
            );
        }
    }
}
