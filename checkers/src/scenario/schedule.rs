//! Fault schedules: several faults in one run, Jepsen's nemesis schedule.
//!
//! A scenario gives exactly one of:
//! - `[fault]` with `timeline.hold`: shorthand for one step at `0s`;
//! - `[[step]]` tables: each a fault (`profile` + `bindings`, or inline `rules`)
//!   applied `at` after the baseline and healed `hold` later; steps may overlap;
//! - `[generator]`: a seeded random sequence of faults drawn from `profiles`, one after
//!   the other, gaps staggered around `interval` (uniform in 0.5–1.5 ×, Jepsen's
//!   `stagger`), each held for a time drawn from `hold` (`"3s..6s"` or `"4s"`), all
//!   inside `duration`. The same seed gives the same schedule.
//!
//! Roles such as `leader` resolve when each step applies. The runner heals every fault
//! after the last step, before the settle and the final reads.

use std::collections::BTreeMap;
use std::time::Duration;

use rift_proxy::fault::LinkRule;
use serde::Deserialize;

use super::ScenarioError;
use super::spec::{FaultSpec, dur};

/// One `[[step]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// After the baseline.
    #[serde(with = "dur")]
    pub at: Duration,
    #[serde(with = "dur")]
    pub hold: Duration,
    pub profile: Option<String>,
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<LinkRule>,
    pub label: Option<String>,
}

/// The `[generator]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    pub profiles: Vec<String>,
    /// Mean gap between one heal and the next fault.
    #[serde(with = "dur")]
    pub interval: Duration,
    /// `"3s..6s"` (uniform) or `"4s"`.
    pub hold: String,
    /// Every fault starts and heals within this time after the baseline.
    #[serde(with = "dur")]
    pub duration: Duration,
    pub seed: u64,
    /// Bindings given to every profile (roles or node names).
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
}

/// A fault of the schedule, ready for the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub hold: Duration,
    pub fault: FaultSpec,
}

impl Step {
    pub fn end(&self) -> Duration {
        self.at + self.hold
    }

    /// The label the proxy records for this step's fault.
    pub fn label(&self) -> String {
        self.fault.label_or_default()
    }
}

impl StepSpec {
    pub fn into_step(self) -> Step {
        Step {
            at: self.at,
            hold: self.hold,
            fault: FaultSpec {
                profile: self.profile,
                bindings: self.bindings,
                rules: self.rules,
                label: self.label,
            },
        }
    }
}

fn field(origin: &str, field: &str, value: &str, reason: &str) -> ScenarioError {
    ScenarioError::Field {
        origin: origin.to_string(),
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Bounds on a generated schedule, so no file can ask for an unbounded run.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Parses `"3s..6s"` or `"4s"` into (low, high).
pub fn hold_range(text: &str) -> Result<(Duration, Duration), String> {
    let parse = |t: &str| {
        humantime::parse_duration(t.trim()).map_err(|e| format!("invalid duration {t:?}: {e}"))
    };
    let (lo, hi) = match text.split_once("..") {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let d = parse(text)?;
            (d, d)
        }
    };
    if lo.is_zero() || hi < lo {
        return Err(format!("{text:?}: needs 0 < low <= high"));
    }
    Ok((lo, hi))
}

/// SplitMix64: a tiny generator whose sequence is fixed by the seed, whatever crate
/// versions rift is built with, so a schedule is reproducible from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`, at millisecond granularity.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

impl GeneratorSpec {
    /// Checks the table; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        if self.profiles.is_empty() {
            return Err(field(
                origin,
                "generator.profiles",
                "[]",
                "name at least one profile",
            ));
        }
        let (lo, _) =
            hold_range(&self.hold).map_err(|e| field(origin, "generator.hold", &self.hold, &e))?;
        if self.interval < MIN_INTERVAL {
            return Err(field(
                origin,
                "generator.interval",
                &format!("{:?}", self.interval),
                "must be at least 100ms",
            ));
        }
        if self.duration > MAX_DURATION || self.duration < lo {
            return Err(field(
                origin,
                "generator.duration",
                &format!("{:?}", self.duration),
                "must hold at least one fault (>= the shortest hold) and be at most 24h",
            ));
        }
        Ok(())
    }

    /// The schedule: faults one after the other from `0s`, each within `duration`.
    pub fn steps(&self) -> Vec<Step> {
        let Ok((lo, hi)) = hold_range(&self.hold) else {
            return Vec::new();
        };
        let mut rng = SplitMix(self.seed);
        let mut steps = Vec::new();
        let mut at = Duration::ZERO;
        loop {
            let profile = self.profiles[(rng.next() % self.profiles.len() as u64) as usize].clone();
            let hold = rng.between(lo, hi);
            if at + hold > self.duration {
                break;
            }
            steps.push(Step {
                at,
                hold,
                fault: FaultSpec {
                    profile: Some(profile),
                    bindings: self.bindings.clone(),
                    rules: Vec::new(),
                    label: None,
                },
            });
            let gap = rng.between(self.interval / 2, self.interval * 3 / 2);
            at += hold + gap;
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(seed: u64) -> GeneratorSpec {
        GeneratorSpec {
            profiles: vec![
                "leader-isolation".into(),
                "minority-isolation".into(),
                "bridge".into(),
            ],
            interval: Duration::from_secs(8),
            hold: "3s..6s".into(),
            duration: Duration::from_secs(60),
            seed,
            bindings: BTreeMap::new(),
        }
    }

    #[test]
    fn a_seed_fixes_the_schedule_and_every_step_fits() {
        let a = generator(42).steps();
        assert_eq!(a, generator(42).steps());
        assert_ne!(a, generator(43).steps());
        assert!(a.len() >= 3, "{a:?}");
        for w in a.windows(2) {
            let gap = w[1].at - w[0].end();
            assert!(
                gap >= Duration::from_secs(4) && gap <= Duration::from_secs(12),
                "{a:?}"
            );
        }
        for s in &a {
            assert!(s.hold >= Duration::from_secs(3) && s.hold <= Duration::from_secs(6));
            assert!(s.end() <= Duration::from_secs(60));
        }
        let used: std::collections::BTreeSet<_> =
            a.iter().filter_map(|s| s.fault.profile.clone()).collect();
        assert!(used.len() >= 2, "{used:?}");
    }

    #[test]
    fn hold_ranges_and_bounds_are_checked() {
        assert_eq!(
            hold_range("3s..6s").unwrap(),
            (Duration::from_secs(3), Duration::from_secs(6))
        );
        assert_eq!(hold_range("4s").unwrap().1, Duration::from_secs(4));
        assert!(hold_range("6s..3s").unwrap_err().contains("low <= high"));
        assert!(hold_range("0s").is_err());
        let mut g = generator(1);
        g.duration = Duration::from_secs(2);
        let e = g.validate("f.toml").unwrap_err().to_string();
        assert!(
            e.contains("f.toml") && e.contains("generator.duration"),
            "{e}"
        );
        g = generator(1);
        g.profiles.clear();
        assert!(
            g.validate("f.toml")
                .unwrap_err()
                .to_string()
                .contains("generator.profiles")
        );
        g = generator(1);
        g.hold = "3 parsecs".into();
        assert!(
            g.validate("f.toml")
                .unwrap_err()
                .to_string()
                .contains("3 parsecs")
        );
    }
}
