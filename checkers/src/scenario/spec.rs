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
//! hold = "6s"
//! settle = "5s"
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

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub cluster: ClusterSpec,
    pub fault: FaultSpec,
    pub timeline: Timeline,
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

#[derive(Debug, Clone, Deserialize, Default)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    #[serde(default = "default_baseline", with = "dur")]
    pub baseline: Duration,
    #[serde(with = "dur")]
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
    fault: FaultSpec,
    timeline: Timeline,
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
        let s = Scenario {
            name: raw.name,
            description: raw.description,
            cluster: ClusterSpec {
                system,
                nodes,
                settings: cluster,
            },
            fault: raw.fault,
            timeline: raw.timeline,
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
        match (&self.fault.profile, self.fault.rules.is_empty()) {
            (Some(_), false) => {
                return Err(field(
                    o,
                    "fault",
                    "profile and rules",
                    "give either a profile or inline rules, not both",
                ));
            }
            (None, true) => {
                return Err(field(
                    o,
                    "fault",
                    "(empty)",
                    "give a profile or inline rules",
                ));
            }
            _ => {}
        }
        if self.fault.profile.is_none() && !self.fault.bindings.is_empty() {
            return Err(field(
                o,
                "fault.bindings",
                "(set)",
                "bindings only apply to a profile",
            ));
        }
        if self.timeline.hold.is_zero() {
            return Err(field(
                o,
                "timeline.hold",
                "0s",
                "the fault must be held for some time",
            ));
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
        self.fault
            .label
            .clone()
            .or_else(|| self.fault.profile.clone())
            .unwrap_or_else(|| "inline".to_string())
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[cluster]
system = "etcd"
nodes = 3
pre_vote = false
[fault]
profile = "minority-isolation"
bindings = { target = "leader" }
[timeline]
hold = "3s"
[[checker]]
kind = "leader-step-down"
within = "2s"
"#;

    #[test]
    fn parses_a_scenario() {
        let s = Scenario::parse(GOOD, "t.toml").unwrap();
        assert_eq!(s.cluster.system, "etcd");
        assert_eq!(s.cluster.nodes, 3);
        assert_eq!(
            s.cluster.settings.get("pre_vote"),
            Some(&toml::Value::Boolean(false))
        );
        assert_eq!(s.timeline.hold, Duration::from_secs(3));
        assert_eq!(s.timeline.baseline, Duration::from_secs(2));
        assert_eq!(s.fault.bindings["target"], "leader");
        assert_eq!(s.checkers[0].kind, "leader-step-down");
        assert!(s.checkers[0].settings.contains_key("within"));
        assert_eq!(s.fault_label(), "minority-isolation");
    }

    #[test]
    fn unknown_fields_name_file_and_field() {
        let bad = GOOD.replace("[timeline]", "[timeline]\nhodl = \"3s\"");
        let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("hodl"), "{e}");
        let bad = GOOD.replace("profile = ", "profle = ");
        let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("profle"), "{e}");
        let bad = GOOD.replace("nodes = 3", "nodes = \"three\"");
        let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("cluster.nodes") && e.contains("three"), "{e}");
        let bad = GOOD.replace("hold = \"3s\"", "hold = \"3 parsecs\"");
        let e = Scenario::parse(&bad, "x.toml").unwrap_err().to_string();
        assert!(e.contains("3 parsecs"), "{e}");
    }

    #[test]
    fn checker_settings_are_checked_by_the_checker_type() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Cfg {
            within: String,
        }
        let s = Scenario::parse(&GOOD.replace("within", "witin"), "y.toml").unwrap();
        let e = s.checkers[0].parse::<Cfg>().unwrap_err().to_string();
        assert!(
            e.contains("y.toml: [[checker]] #1 (leader-step-down)") && e.contains("witin"),
            "{e}"
        );
    }

    #[test]
    fn fault_needs_exactly_one_source() {
        let both = GOOD.replace(
            "bindings = { target = \"leader\" }",
            "rules = [{ from = \"etcd1\", to = \"etcd2\", fault = { kind = \"hold\" } }]",
        );
        assert!(
            Scenario::parse(&both, "z")
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        let inline = both.replace("profile = \"minority-isolation\"\n", "");
        let s = Scenario::parse(&inline, "z").unwrap();
        assert_eq!(s.fault.rules[0].to, "etcd2");
        assert_eq!(s.fault_label(), "inline");
        let none = GOOD.replace(
            "[[checker]]\nkind = \"leader-step-down\"\nwithin = \"2s\"\n",
            "",
        );
        assert!(
            Scenario::parse(&none, "z")
                .unwrap_err()
                .to_string()
                .contains("checker")
        );
    }
}
