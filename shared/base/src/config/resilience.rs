//! Which resilience patterns are on, and their thresholds: read with the rest of the
//! settings, used by the HTTP client (breakers, budgets, bulkheads), load shedding and
//! the job supervisor.

use std::time::Duration;

use super::{ConfigError, Env};

/// Which patterns are on, and their thresholds. `None` = that pattern is off.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    pub breaker: Option<BreakerSettings>,
    pub bulkhead: Option<BulkheadSettings>,
    pub retry_budget: Option<BudgetSettings>,
    pub shedding: Option<SheddingSettings>,
    /// Messages an orchestrating actor's mailbox holds (`ACTOR_MAILBOX_CAPACITY`).
    pub mailbox_capacity: usize,
}

impl ResilienceSettings {
    /// `RESILIENCE=off` switches every pattern off; `CIRCUIT_BREAKER`, `BULKHEAD`,
    /// `RETRY_BUDGET` and `LOAD_SHEDDING` switch one each.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let all = env.switch("RESILIENCE", true)?;
        let on = |variable| -> Result<bool, ConfigError> { Ok(all && env.switch(variable, true)?) };
        let breaker = BreakerSettings {
            failure_threshold: env.parse_or("BREAKER_FAILURE_THRESHOLD", 5u32)?.max(1),
            cool_down: env.millis_or("BREAKER_COOL_DOWN_MS", Duration::from_secs(5))?,
            half_open_trials: env.parse_or("BREAKER_HALF_OPEN_TRIALS", 1u32)?.max(1),
        };
        let bulkhead = BulkheadSettings {
            max_concurrent: env.parse_or("BULKHEAD_MAX_CONCURRENT", 32usize)?.max(1),
            max_wait: env.millis_or("BULKHEAD_MAX_WAIT_MS", Duration::from_millis(100))?,
        };
        let ratio: f64 = env.parse_or("RETRY_BUDGET_RATIO", 0.2)?;
        if !(0.0..=10.0).contains(&ratio) {
            return Err(ConfigError {
                variable: "RETRY_BUDGET_RATIO",
                reason: format!("must be between 0 and 10, got {ratio}"),
            });
        }
        let retry_budget = BudgetSettings {
            ratio,
            min_per_second: env.parse_or("RETRY_BUDGET_MIN_PER_SEC", 1.0f64)?.max(0.0),
            window: Duration::from_secs(10),
        };
        let shedding = SheddingSettings {
            max_in_flight: env.parse_or("CHECKOUT_MAX_IN_FLIGHT", 64usize)?.max(1),
            max_running: env.parse_or("CHECKOUT_MAX_RUNNING", 256usize)?.max(1),
            retry_after: env.seconds_or("SHED_RETRY_AFTER_SECS", Duration::from_secs(1))?,
        };
        Ok(ResilienceSettings {
            breaker: on("CIRCUIT_BREAKER")?.then_some(breaker),
            bulkhead: on("BULKHEAD")?.then_some(bulkhead),
            retry_budget: on("RETRY_BUDGET")?.then_some(retry_budget),
            shedding: on("LOAD_SHEDDING")?.then_some(shedding),
            mailbox_capacity: env.parse_or("ACTOR_MAILBOX_CAPACITY", 1024usize)?.max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (`BREAKER_FAILURE_THRESHOLD`).
    pub failure_threshold: u32,
    /// How long it stays open before letting trial calls through (`BREAKER_COOL_DOWN_MS`).
    pub cool_down: Duration,
    /// How many trial calls may be in flight while half-open (`BREAKER_HALF_OPEN_TRIALS`).
    pub half_open_trials: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BulkheadSettings {
    /// Calls in flight to one downstream (`BULKHEAD_MAX_CONCURRENT`).
    pub max_concurrent: usize,
    /// How long a call may wait for a slot before it is refused (`BULKHEAD_MAX_WAIT_MS`).
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Retries allowed per first call (`RETRY_BUDGET_RATIO`, e.g. 0.2).
    pub ratio: f64,
    /// Retries per second always allowed (`RETRY_BUDGET_MIN_PER_SEC`).
    pub min_per_second: f64,
    /// The window the counts cover.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SheddingSettings {
    /// Checkout requests being answered at once (`CHECKOUT_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Sagas or 2PC transactions running in this process (`CHECKOUT_MAX_RUNNING`).
    pub max_running: usize,
    /// What `Retry-After` says (`SHED_RETRY_AFTER_SECS`).
    pub retry_after: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_is_on_by_default_and_each_can_be_switched_off() {
        let env =
            |pairs: &[(&str, &str)]| Env::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let on = ResilienceSettings::from_env(&env(&[])).unwrap();
        assert!(on.breaker.is_some() && on.bulkhead.is_some() && on.retry_budget.is_some() && on.shedding.is_some());
        let no_breaker = ResilienceSettings::from_env(&env(&[("CIRCUIT_BREAKER", "off")])).unwrap();
        assert!(no_breaker.breaker.is_none() && no_breaker.bulkhead.is_some());
        let off = ResilienceSettings::from_env(&env(&[("RESILIENCE", "off")])).unwrap();
        assert!(
            off.breaker.is_none() && off.bulkhead.is_none() && off.retry_budget.is_none() && off.shedding.is_none()
        );
        let err = ResilienceSettings::from_env(&env(&[("RETRY_BUDGET_RATIO", "-1")])).unwrap_err();
        assert_eq!(err.variable, "RETRY_BUDGET_RATIO");
    }
}
