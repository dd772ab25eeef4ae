//! `GET /admin/resilience`: every resilience pattern's settings and every
//! downstream's state.

use serde::{Deserialize, Serialize};

/// The whole page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResilienceView {
    pub patterns: PatternsView,
    /// Every downstream called so far, by name.
    pub downstreams: Vec<DownstreamView>,
    /// The checkout endpoint's load shedder (`null` where the service has none).
    pub load_shedding: Option<SheddingView>,
}

impl ResilienceView {
    /// The downstream of this name, once it has been called.
    pub fn downstream(&self, name: &str) -> Option<&DownstreamView> {
        self.downstreams.iter().find(|d| d.name == name)
    }
}

/// The settings of each pattern; `null` where it is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatternsView {
    pub circuit_breaker: Option<BreakerSettingsView>,
    pub bulkhead: Option<BulkheadSettingsView>,
    pub retry_budget: Option<BudgetSettingsView>,
    pub load_shedding: Option<SheddingSettingsView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerSettingsView {
    pub failure_threshold: u32,
    pub cool_down_ms: u64,
    pub half_open_trials: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkheadSettingsView {
    pub max_concurrent: usize,
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetSettingsView {
    pub ratio: f64,
    pub min_per_second: f64,
    pub window_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SheddingSettingsView {
    pub max_in_flight: usize,
    pub max_running: usize,
    pub retry_after_secs: u64,
}

/// One downstream: calls made, and each pattern's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownstreamView {
    pub name: String,
    pub calls: u64,
    pub breaker: Option<BreakerView>,
    pub retry_budget: Option<BudgetView>,
    pub bulkhead: Option<BulkheadView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakerStateName {
    Closed,
    Open,
    HalfOpen,
}

/// A breaker's state; the member that goes with it is set (`consecutive_failures`
/// when closed, `half_open_in_ms` when open, `trials_in_flight` when half open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerView {
    pub state: BreakerStateName,
    /// Times it opened.
    pub opened: u64,
    /// Calls it refused while open.
    pub short_circuited: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trials_in_flight: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetView {
    pub window_calls: u64,
    pub window_retries: u64,
    pub window_allowed: u64,
    pub denied: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkheadView {
    pub in_flight: usize,
    pub max_concurrent: usize,
    pub rejected: u64,
}

/// The load shedder now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SheddingView {
    pub enabled: bool,
    /// Checkout sagas or transactions running in this process.
    pub running: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_running: Option<usize>,
    /// Requests refused at once since start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shed: Option<u64>,
}
