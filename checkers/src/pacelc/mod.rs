//! PACELC made measurable: what each operation class pays, in normal operation, for
//! the delay a step injects between members (`[[checker]] kind = "pacelc"`).
//!
//! The check is a pure function of the recorded history: the nemesis steps with the
//! rules the proxy applied (their delays, see [`measure::windows`]), and the client
//! operations with their invoke and completion times. Per step and class it takes
//! the median latency of the `ok` operations invoked inside the window (after a
//! warm-up) and subtracts the median of the same class before the first fault (the
//! baseline). Then:
//!
//! - a class that pays for consistency ([`measure::Expect::Quorum`],
//!   [`measure::Expect::FollowerFetch`]) must add at least its protocol's round trip,
//!   less the tolerance: FAIL otherwise;
//! - a class served where the client is ([`measure::Expect::Local`]) must add less
//!   than half the round trip it would pay by leaving its member: FAIL otherwise;
//! - UNKNOWN when a class has fewer than `min_samples` samples in a step or in the
//!   baseline, when the tolerance (the baseline's p50 − its fastest operation, at
//!   least `tolerance`) is not below half the round trip at stake (the step cannot
//!   tell), when the leader
//!   changed during a step, or when no step injected any delay.
//!
//! A step that asked for a delay (`delay` binding of the `wan` profile) whose rules
//! put none between members is judged against the delay it asked for, so a profile
//! that adds no delay fails, saying so.
//!
//! [`cap_map`] gives `rift cap-map` the curves and an EC/EL reading of a finished run.

pub mod judge;
pub mod kafka;
pub mod measure;
pub mod svg;

#[cfg(test)]
mod tests;

use std::time::Duration;

use rift_history::History;
use serde::{Deserialize, Serialize};

pub use judge::{CapMap, ClassCurve, CurvePoint, Measurement, cap_map};

use crate::scenario::check::HistoryCheck;
use crate::scenario::{ScenarioError, Verdict};

/// `[[checker]] kind = "pacelc"` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Fewer `ok` operations of a class in a step (or in the baseline) is UNKNOWN.
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Operations invoked this soon after a step applied are left out: requests
    /// already in flight straddle the change.
    #[serde(
        default = "default_warmup",
        deserialize_with = "crate::scenario::spec::dur::deserialize",
        serialize_with = "humantime_text"
    )]
    pub warmup: Duration,
    /// The least tolerance; the baseline's p50 − fastest of a class widens it.
    #[serde(
        default = "default_tolerance",
        deserialize_with = "crate::scenario::spec::dur::deserialize",
        serialize_with = "humantime_text"
    )]
    pub tolerance: Duration,
}

fn humantime_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn default_min_samples() -> usize {
    5
}
fn default_warmup() -> Duration {
    Duration::from_millis(300)
}
fn default_tolerance() -> Duration {
    Duration::from_millis(2)
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_samples: default_min_samples(),
            warmup: default_warmup(),
            tolerance: default_tolerance(),
        }
    }
}

impl Settings {
    /// Bounds the settings; errors name the checker's table and the field.
    pub fn validate(self, origin: &str) -> Result<Self, ScenarioError> {
        let bad = |field: &str, value: String, reason: &str| ScenarioError::Field {
            origin: origin.to_string(),
            field: field.to_string(),
            value,
            reason: reason.to_string(),
        };
        if !(1..=100_000).contains(&self.min_samples) {
            return Err(bad(
                "min_samples",
                self.min_samples.to_string(),
                "between 1 and 100000",
            ));
        }
        if self.warmup > Duration::from_secs(60) {
            return Err(bad("warmup", format!("{:?}", self.warmup), "at most 60s"));
        }
        if self.tolerance > Duration::from_secs(10) {
            return Err(bad(
                "tolerance",
                format!("{:?}", self.tolerance),
                "at most 10s",
            ));
        }
        Ok(self)
    }
}

/// The `pacelc` history check.
pub struct Pacelc {
    settings: Settings,
}

impl Pacelc {
    pub fn new(settings: Settings) -> Self {
        Pacelc { settings }
    }
}

impl HistoryCheck for Pacelc {
    fn name(&self) -> String {
        "pacelc".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let m = judge::measure(history, &self.settings);
        judge::verdict(m)
    }
}
