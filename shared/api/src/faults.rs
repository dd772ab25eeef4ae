//! Fault injection's rules (`PUT/GET/DELETE /admin/faults`) and the kinds of fault a
//! fault point injects, by rule or by W3C baggage (`fault.<operation>=<kind>`).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer 500 without doing the work.
    Error,
    /// A business failure (422), no retry; the work is not done.
    Decline,
    /// Wait this many milliseconds, then do the work.
    DelayMs(u64),
    /// Wait past the caller's timeout, then do the work.
    Timeout,
    /// Do and commit the work, then answer 503 as if the response were lost.
    LostResponse,
    /// Commit the work, then abort the process before answering.
    Crash,
    /// At an orchestrator's (a coordinator's) step, vote or decide point: stop the
    /// runner for this many milliseconds without renewing its lease, then carry on
    /// from where it was — a GC pause, a `SIGSTOP`. At an endpoint, a delay.
    PauseMs(u64),
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "error" => Ok(FaultKind::Error),
            "decline" => Ok(FaultKind::Decline),
            "timeout" => Ok(FaultKind::Timeout),
            "lost_response" => Ok(FaultKind::LostResponse),
            "crash" => Ok(FaultKind::Crash),
            other => {
                let (make, ms): (fn(u64) -> FaultKind, _) = match (
                    other.strip_prefix("delay_ms:"),
                    other.strip_prefix("pause_ms:"),
                ) {
                    (Some(ms), _) => (FaultKind::DelayMs, ms),
                    (_, Some(ms)) => (FaultKind::PauseMs, ms),
                    _ => {
                        return Err(format!(
                            "unknown fault kind {other:?}; expected error, decline, delay_ms:<n>, pause_ms:<n>, timeout, lost_response or crash"
                        ));
                    }
                };
                ms.parse().map(make).map_err(|_| {
                    format!(
                        "{} needs a number of milliseconds, got {ms:?}",
                        other.split(':').next().unwrap_or(other)
                    )
                })
            }
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Error => f.write_str("error"),
            FaultKind::Decline => f.write_str("decline"),
            FaultKind::DelayMs(ms) => write!(f, "delay_ms:{ms}"),
            FaultKind::Timeout => f.write_str("timeout"),
            FaultKind::LostResponse => f.write_str("lost_response"),
            FaultKind::Crash => f.write_str("crash"),
            FaultKind::PauseMs(ms) => write!(f, "pause_ms:{ms}"),
        }
    }
}

impl Serialize for FaultKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A probabilistic rule, as `PUT /admin/faults` takes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaultRule {
    /// One of the service's fault points, e.g. `payment.charge`.
    #[cfg_attr(feature = "openapi", schema(example = "payment.charge"))]
    pub operation: String,
    /// `error`, `decline`, `delay_ms:<n>`, `timeout`, `lost_response` or `crash`.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^(error|decline|timeout|lost_response|crash|delay_ms:[0-9]+)$", example = "error")
    )]
    pub kind: FaultKind,
    /// 0–1; 1 when absent.
    #[serde(default = "always")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0, default = 1.0))]
    pub probability: f64,
}

fn always() -> f64 {
    1.0
}

/// `PUT /admin/faults`: the rules that replace the current ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaultRules {
    pub rules: Vec<FaultRule>,
}

/// The fault switch and the current rules; `GET` adds how many faults each point has
/// had injected since start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaultsView {
    /// `FAULT_INJECTION=on`.
    pub enabled: bool,
    pub rules: Vec<FaultRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected: Option<std::collections::BTreeMap<String, u64>>,
}
