//! The scenario file format (TOML). Unknown fields are errors naming the file and field.
//!
//! ```toml
//! name = "etcd-leader-isolation"
//! description = "Isolate the leader of 3 members; it steps down, the others elect a new one."
//!
//! [cluster]                 # system-specific keys besides `system` and `nodes`
//! system = "etcd"
//! nodes = 3
//! pre_vote = true
//!
//! [fault]                   # a profile with bindings, or inline `rules`
//! profile = "minority-isolation"
//! bindings = { target = "leader" }   # roles (leader, follower, follower2...) resolved at apply time
//! # rules = [{ from = "leader", to = "follower", fault = { kind = "hold" } }]
//!
//! [timeline]
//! baseline = "2s"
//! hold = "6s"               # the [fault]'s hold
//! settle = "5s"
//! ```
//!
//! Instead of `[fault]` + `hold`, a schedule of several faults: `[[step]]` tables
//! (`at`, `hold`, and a profile or rules each) or one `[generator]`; see
//! [`super::schedule`].
//!
//! ```toml
//!
//! [workload]                # optional
//! kind = "puts"
//!
//! [[checker]]
//! kind = "leader-step-down"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rift_proxy::fault::LinkRule;
use serde::Deserialize;

use super::ScenarioError;
use super::schedule::{GeneratorSpec, Step, StepSpec};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub cluster: ClusterSpec,
    /// The single fault of the shorthand form (empty when the scenario has a schedule).
    pub fault: FaultSpec,
    pub timeline: Timeline,
    /// `[[step]]` tables, in file order.
    pub steps: Vec<StepSpec>,
    pub generator: Option<GeneratorSpec>,
    /// `[[action]]` tables: cluster actions (e.g. `promote`) at given times.
    pub actions: Vec<ActionSpec>,
    pub workload: Option<WorkloadSpec>,
    pub checkers: Vec<CheckerSpec>,
    /// The file it came from, for error messages.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub system: String,
    pub nodes: usize,
    /// The other keys of `[cluster]`, parsed by the system.
    pub settings: toml::Table,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// A profile name from the profile library.
    pub profile: Option<String>,
    /// Profile parameter -> node name or role.
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
    /// Inline rules; `from`/`to` may name roles.
    #[serde(default)]
    pub rules: Vec<LinkRule>,
    /// Label for events and metrics; defaults to the profile name or "inline".
    pub label: Option<String>,
}

/// One `[[action]]` table: a nemesis action the cluster itself carries out (an HA
/// tool's failover, `promote`), `at` after the baseline, recorded in the history as a
/// nemesis operation named after it. Which names exist is the cluster's to say
/// ([`super::Cluster::actions`]); the runner checks them before the baseline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    #[serde(with = "dur")]
    pub at: Duration,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    #[serde(default = "default_baseline", with = "dur")]
    pub baseline: Duration,
    /// The `[fault]`'s hold (absent with a schedule).
    #[serde(default, with = "dur")]
    pub hold: Duration,
    #[serde(default = "default_settle", with = "dur")]
    pub settle: Duration,
}

fn default_baseline() -> Duration {
    Duration::from_secs(2)
}
fn default_settle() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub kind: String,
    pub settings: toml::Table,
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct CheckerSpec {
    pub kind: String,
    /// The table minus `kind`, parsed by the checker with `deny_unknown_fields`.
    pub settings: toml::Table,
    /// "FILE: `[[checker]]` #N (kind)" for error messages.
    pub origin: String,
}

impl CheckerSpec {
    /// Parses the settings into a checker's own config type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ScenarioError> {
        parse_table(&self.settings, &self.origin)
    }
}

impl WorkloadSpec {
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ScenarioError> {
        parse_table(&self.settings, &self.origin)
    }
}

impl ClusterSpec {
    pub fn parse<T: serde::de::DeserializeOwned>(&self, origin: &str) -> Result<T, ScenarioError> {
        parse_table(&self.settings, &format!("{origin}: [cluster]"))
    }
}

/// Deserialises a sub-table, turning serde's message into one naming origin and field.
pub fn parse_table<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    origin: &str,
) -> Result<T, ScenarioError> {
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e| ScenarioError::File {
        path: origin.to_string(),
        message: e.message().trim().to_string(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    description: String,
    cluster: toml::Table,
    fault: Option<FaultSpec>,
    timeline: Timeline,
    #[serde(default)]
    step: Vec<StepSpec>,
    generator: Option<GeneratorSpec>,
    #[serde(default, rename = "action")]
    actions: Vec<ActionSpec>,
    workload: Option<toml::Table>,
    #[serde(default, rename = "checker")]
    checkers: Vec<toml::Table>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::File {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ScenarioError::File {
            path: origin.to_string(),
            message: e.to_string().trim().to_string(),
        })?;
        let mut cluster = raw.cluster;
        let system = take_str(&mut cluster, "system", origin)?;
        let nodes = match cluster.remove("nodes") {
            Some(toml::Value::Integer(n)) if (1..=64).contains(&n) => n as usize,
            Some(v) => {
                return Err(field(
                    origin,
                    "cluster.nodes",
                    &v.to_string(),
                    "must be an integer from 1 to 64",
                ));
            }
            None => return Err(field(origin, "cluster.nodes", "(missing)", "required")),
        };
        let workload = match raw.workload {
            Some(mut w) => Some(WorkloadSpec {
                kind: take_str(&mut w, "kind", &format!("{origin}: [workload]"))?,
                settings: w,
                origin: format!("{origin}: [workload]"),
            }),
            None => None,
        };
        let mut checkers = Vec::new();
        for (i, mut t) in raw.checkers.into_iter().enumerate() {
            let at = format!("{origin}: [[checker]] #{}", i + 1);
            let kind = take_str(&mut t, "kind", &at)?;
            checkers.push(CheckerSpec {
                origin: format!("{at} ({kind})"),
                kind,
                settings: t,
            });
        }
        let sources = [
            raw.fault.is_some(),
            !raw.step.is_empty(),
            raw.generator.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(field(
                origin,
                "fault",
                &format!(
                    "[fault]: {}, [[step]]: {}, [generator]: {}",
                    sources[0], sources[1], sources[2]
                ),
                "give exactly one of [fault] (with timeline.hold), [[step]] tables or [generator]",
            ));
        }
        let s = Scenario {
            name: raw.name,
            description: raw.description,
            cluster: ClusterSpec {
                system,
                nodes,
                settings: cluster,
            },
            fault: raw.fault.clone().unwrap_or_default(),
            timeline: raw.timeline,
            steps: raw.step,
            generator: raw.generator,
            actions: raw.actions,
            workload,
            checkers,
            origin: origin.to_string(),
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let o = &self.origin;
        if self.name.trim().is_empty() || self.name.contains(['/', ' ']) {
            return Err(field(
                o,
                "name",
                &self.name,
                "must be a non-empty word without '/' or spaces",
            ));
        }
        if self.steps.is_empty() && self.generator.is_none() {
            self.fault.validate(o, "fault")?;
            if self.timeline.hold.is_zero() {
                return Err(field(
                    o,
                    "timeline.hold",
                    "0s",
                    "the fault must be held for some time",
                ));
            }
        } else if !self.timeline.hold.is_zero() {
            return Err(field(
                o,
                "timeline.hold",
                &format!("{:?}", self.timeline.hold),
                "applies to [fault] only: each [[step]] and the [generator] give their own hold",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step[{}]", i + 1);
            step.clone().into_step().fault.validate(o, &at)?;
            if step.hold.is_zero() {
                return Err(field(
                    o,
                    &format!("{at}.hold"),
                    "0s",
                    "the fault must be held for some time",
                ));
            }
        }
        if let Some(g) = &self.generator {
            g.validate(o)?;
        }
        for (i, a) in self.actions.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(field(
                    o,
                    &format!("action[{}].name", i + 1),
                    "\"\"",
                    "name the cluster action (e.g. promote)",
                ));
            }
        }
        if self.checkers.is_empty() {
            return Err(field(
                o,
                "checker",
                "(none)",
                "a scenario needs at least one [[checker]]",
            ));
        }
        Ok(())
    }

    /// The fault's label in events and reports.
    pub fn fault_label(&self) -> String {
        self.fault.label_or_default()
    }

    /// The faults to apply, in order of their start: the `[[step]]` tables, the
    /// `[generator]`'s sequence, or the `[fault]` as one step at `0s`.
    pub fn schedule(&self) -> Vec<Step> {
        let mut steps: Vec<Step> = if let Some(g) = &self.generator {
            g.steps()
        } else if !self.steps.is_empty() {
            self.steps
                .iter()
                .cloned()
                .map(StepSpec::into_step)
                .collect()
        } else {
            vec![Step {
                at: Duration::ZERO,
                hold: self.timeline.hold,
                fault: self.fault.clone(),
            }]
        };
        steps.sort_by_key(|s| s.at);
        steps
    }

    /// Every profile the scenario names.
    pub fn profiles(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .schedule()
            .into_iter()
            .filter_map(|s| s.fault.profile)
            .collect();
        p.sort();
        p.dedup();
        p
    }
}

impl FaultSpec {
    /// The label in events and reports: the given one, else the profile, else `inline`.
    pub fn label_or_default(&self) -> String {
        self.label
            .clone()
            .or_else(|| self.profile.clone())
            .unwrap_or_else(|| "inline".to_string())
    }

    /// A profile with bindings, or inline rules: `at` names the table in errors.
    pub fn validate(&self, origin: &str, at: &str) -> Result<(), ScenarioError> {
        match (&self.profile, self.rules.is_empty()) {
            (Some(_), false) => {
                return Err(field(
                    origin,
                    at,
                    "profile and rules",
                    "give either a profile or inline rules, not both",
                ));
            }
            (None, true) => {
                return Err(field(
                    origin,
                    at,
                    "(empty)",
                    "give a profile or inline rules",
                ));
            }
            _ => {}
        }
        if self.profile.is_none() && !self.bindings.is_empty() {
            return Err(field(
                origin,
                &format!("{at}.bindings"),
                "(set)",
                "bindings only apply to a profile",
            ));
        }
        Ok(())
    }
}

fn take_str(t: &mut toml::Table, key: &str, origin: &str) -> Result<String, ScenarioError> {
    match t.remove(key) {
        Some(toml::Value::String(s)) => Ok(s),
        Some(v) => Err(field(origin, key, &v.to_string(), "must be a string")),
        None => Err(field(origin, key, "(missing)", "required")),
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

/// Durations as humantime text ("500ms", "6s", "1m 30s").
pub mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests;
