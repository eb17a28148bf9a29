//! Partition profiles as data. A profile file (`profiles/NAME.toml`) names a shape —
//! split, isolate, two-vs-two, bridge, one-way, majorities-ring, flaky, random-halves —
//! and is resolved against a topology's nodes into directed [`LinkRule`]s when it is
//! applied. Targets such as `leader` are bindings supplied at apply time.

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fault::{Degradation, Fault, LinkRule, partition_rules};
use crate::topology::{CLIENT, Topology};

include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));

/// Names bound at apply time, e.g. `leader = "etcd2"`, `target = "etcd3"`.
pub type Bindings = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Split,
    Isolate,
    TwoVsTwo,
    Bridge,
    OneWay,
    MajoritiesRing,
    Flaky,
    RandomHalves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CutFault {
    #[default]
    Hold,
    Reset,
    Blackhole,
}

/// Where external clients (identity `client`) sit during a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClientPlacement {
    /// Clients reach every node.
    #[default]
    All,
    /// Clients are on the majority (first) side.
    Majority,
    /// Clients are on the minority (last) side.
    Minority,
    /// Clients reach no node.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OneWayDirection {
    /// The target's outgoing bytes are cut: it hears the others, they don't hear it.
    #[default]
    Outbound,
    /// Bytes towards the target are cut.
    Inbound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub kind: Kind,
    #[serde(default)]
    pub fault: CutFault,
    /// Limit the cut to these endpoints (e.g. Kafka `replication`); empty = all.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Node name or binding name (`leader`); a `target` binding overrides it.
    pub target: Option<String>,
    /// split: size of the minority side (default: the largest minority).
    pub minority: Option<usize>,
    /// split: explicit groups of node names.
    pub groups: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub client: ClientPlacement,
    #[serde(default)]
    pub direction: OneWayDirection,
    /// random-halves: seed of the shuffle.
    pub seed: Option<u64>,
    /// flaky: the degradation applied to every link between nodes (or the target's).
    pub degrade: Option<Degradation>,
}

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {field} = {value}: {reason}")]
    Invalid {
        origin: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("unknown profile {name:?} (available: {available})")]
    Unknown { name: String, available: String },
}

/// Resolved profile: rules plus a human summary of the sides.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub rules: Vec<LinkRule>,
    pub summary: String,
}

impl Profile {
    pub fn parse(text: &str, name: &str, origin: &str) -> Result<Profile, ProfileError> {
        let mut profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        profile.name = name.to_string();
        profile.check_fields(origin)?;
        Ok(profile)
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        Profile::parse(&text, &name, &path.display().to_string())
    }

    /// Fields that make no sense for the kind are errors, not silently ignored.
    fn check_fields(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |field: &'static str, value: String, reason: &str| ProfileError::Invalid {
            origin: origin.to_string(),
            field,
            value,
            reason: reason.to_string(),
        };
        if let Some(minority) = self.minority
            && self.kind != Kind::Split
        {
            return Err(invalid(
                "minority",
                minority.to_string(),
                "only used by kind = \"split\"",
            ));
        }
        if self.groups.is_some() && self.kind != Kind::Split {
            return Err(invalid(
                "groups",
                "[...]".into(),
                "only used by kind = \"split\"",
            ));
        }
        if let Some(seed) = self.seed
            && self.kind != Kind::RandomHalves
        {
            return Err(invalid(
                "seed",
                seed.to_string(),
                "only used by kind = \"random-halves\"",
            ));
        }
        match (&self.degrade, self.kind) {
            (None, Kind::Flaky) => {
                return Err(invalid(
                    "degrade",
                    "missing".into(),
                    "kind = \"flaky\" needs a [degrade] table",
                ));
            }
            (Some(_), kind) if kind != Kind::Flaky => {
                return Err(invalid(
                    "degrade",
                    "[degrade]".into(),
                    "only used by kind = \"flaky\"",
                ));
            }
            _ => {}
        }
        if self.minority == Some(0) {
            return Err(invalid(
                "minority",
                "0".into(),
                "the minority needs at least one node",
            ));
        }
        Ok(())
    }

    fn fault(&self) -> Fault {
        match (&self.degrade, self.fault) {
            (Some(d), _) => Fault::Degrade(d.clone()),
            (None, CutFault::Hold) => Fault::Hold,
            (None, CutFault::Reset) => Fault::Reset,
            (None, CutFault::Blackhole) => Fault::Blackhole,
        }
    }

    /// Turns the profile into rules for `topology`'s nodes.
    pub fn resolve(
        &self,
        topology: &Topology,
        bindings: &Bindings,
    ) -> Result<Resolution, ProfileError> {
        let nodes = topology.node_names();
        let origin = format!("profile {}", self.name);
        let invalid = |field: &'static str, value: String, reason: String| ProfileError::Invalid {
            origin: origin.clone(),
            field,
            value,
            reason,
        };
        let target = self
            .resolve_target(&nodes, bindings)
            .map_err(|(value, reason)| invalid("target", value, reason))?;
        let fault = self.fault();
        let need = |min: usize| {
            if nodes.len() < min {
                Err(invalid(
                    "kind",
                    format!("{:?}", self.kind),
                    format!("needs at least {min} nodes, topology has {}", nodes.len()),
                ))
            } else {
                Ok(())
            }
        };
        let groups: Vec<Vec<String>> = match self.kind {
            Kind::Split => {
                need(2)?;
                match &self.groups {
                    Some(groups) => {
                        check_groups(groups, &nodes).map_err(|(v, r)| invalid("groups", v, r))?;
                        groups.clone()
                    }
                    None => {
                        let minority = self.minority.unwrap_or((nodes.len() - 1) / 2).max(1);
                        if minority >= nodes.len() {
                            return Err(invalid(
                                "minority",
                                minority.to_string(),
                                format!("must be smaller than the {} nodes", nodes.len()),
                            ));
                        }
                        split_with_target(&nodes, minority, target.as_deref())
                    }
                }
            }
            Kind::Isolate => {
                need(2)?;
                let target = target.unwrap_or_else(|| nodes[nodes.len() - 1].clone());
                split_with_target(&nodes, 1, Some(&target))
            }
            Kind::TwoVsTwo => {
                if nodes.len() != 4 {
                    return Err(invalid(
                        "kind",
                        "\"two-vs-two\"".into(),
                        format!("needs exactly 4 nodes, topology has {}", nodes.len()),
                    ));
                }
                vec![nodes[..2].to_vec(), nodes[2..].to_vec()]
            }
            Kind::RandomHalves => {
                need(2)?;
                let mut shuffled = nodes.clone();
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed.unwrap_or(0));
                shuffled.shuffle(&mut rng);
                let half = nodes.len() / 2;
                vec![shuffled[half..].to_vec(), shuffled[..half].to_vec()]
            }
            Kind::Bridge => {
                need(3)?;
                let bridge = target.unwrap_or_else(|| nodes[nodes.len() / 2].clone());
                let others: Vec<String> = nodes.iter().filter(|n| **n != bridge).cloned().collect();
                let half = others.len().div_ceil(2);
                let (left, right) = others.split_at(half);
                let rules =
                    partition_rules(&[left.to_vec(), right.to_vec()], &fault, &self.endpoints);
                let summary = format!(
                    "{} | {} with {} bridging both",
                    left.join(","),
                    right.join(","),
                    bridge
                );
                return Ok(Resolution { rules, summary });
            }
            Kind::OneWay => {
                need(2)?;
                let target = target.unwrap_or_else(|| nodes[nodes.len() - 1].clone());
                let rules = nodes
                    .iter()
                    .filter(|n| **n != target)
                    .map(|other| {
                        let (from, to) = match self.direction {
                            OneWayDirection::Outbound => (target.clone(), other.clone()),
                            OneWayDirection::Inbound => (other.clone(), target.clone()),
                        };
                        LinkRule {
                            from,
                            to,
                            fault: fault.clone(),
                            endpoints: self.endpoints.clone(),
                        }
                    })
                    .collect();
                let arrow = match self.direction {
                    OneWayDirection::Outbound => format!("{target} -> others cut"),
                    OneWayDirection::Inbound => format!("others -> {target} cut"),
                };
                return Ok(Resolution {
                    rules,
                    summary: arrow,
                });
            }
            Kind::MajoritiesRing => {
                need(3)?;
                let n = nodes.len();
                let reach = (n / 2) / 2 + (n / 2) % 2; // neighbours on each side so each sees a majority
                let mut rules = Vec::new();
                for (i, a) in nodes.iter().enumerate() {
                    for (j, b) in nodes.iter().enumerate() {
                        let distance = i.abs_diff(j).min(n - i.abs_diff(j));
                        if i != j && distance > reach {
                            rules.push(LinkRule {
                                from: a.clone(),
                                to: b.clone(),
                                fault: fault.clone(),
                                endpoints: self.endpoints.clone(),
                            });
                        }
                    }
                }
                return Ok(Resolution {
                    rules,
                    summary: format!(
                        "ring {}: each node sees its {reach} nearest neighbours per side",
                        nodes.join("-")
                    ),
                });
            }
            Kind::Flaky => {
                let mut rules = Vec::new();
                for a in &nodes {
                    for b in &nodes {
                        let touches = target.as_ref().is_none_or(|t| t == a || t == b);
                        if a != b && touches {
                            rules.push(LinkRule {
                                from: a.clone(),
                                to: b.clone(),
                                fault: fault.clone(),
                                endpoints: self.endpoints.clone(),
                            });
                        }
                    }
                }
                let scope = target
                    .map(|t| format!("links of {t}"))
                    .unwrap_or_else(|| "every link".into());
                return Ok(Resolution {
                    rules,
                    summary: format!("{scope} degraded"),
                });
            }
        };
        let mut groups = groups;
        let summary = groups
            .iter()
            .map(|g| g.join(","))
            .collect::<Vec<_>>()
            .join(" | ");
        match self.client {
            ClientPlacement::All => {}
            ClientPlacement::Majority => groups[0].push(CLIENT.to_string()),
            ClientPlacement::Minority => {
                let last = groups.len() - 1;
                groups[last].push(CLIENT.to_string())
            }
            ClientPlacement::None => groups.push(vec![CLIENT.to_string()]),
        }
        Ok(Resolution {
            rules: partition_rules(&groups, &fault, &self.endpoints),
            summary,
        })
    }

    fn resolve_target(
        &self,
        nodes: &[String],
        bindings: &Bindings,
    ) -> Result<Option<String>, (String, String)> {
        let Some(name) = bindings.get("target").or(self.target.as_ref()) else {
            return Ok(None);
        };
        let node = bindings.get(name).unwrap_or(name);
        if nodes.contains(node) {
            Ok(Some(node.clone()))
        } else if bindings.contains_key(name) {
            Err((
                format!("{name:?}"),
                format!(
                    "bound to {node:?}, which is not a node ({})",
                    nodes.join(", ")
                ),
            ))
        } else {
            Err((
                format!("{name:?}"),
                format!(
                    "not a node ({}) and no binding of that name (pass --set {name}=NODE)",
                    nodes.join(", ")
                ),
            ))
        }
    }
}

/// Majority first, minority (holding `target` if given) last.
fn split_with_target(nodes: &[String], minority: usize, target: Option<&str>) -> Vec<Vec<String>> {
    let mut minority_side: Vec<String> = target.map(|t| vec![t.to_string()]).unwrap_or_default();
    for node in nodes.iter().rev() {
        if minority_side.len() >= minority {
            break;
        }
        if !minority_side.contains(node) {
            minority_side.push(node.clone());
        }
    }
    let majority: Vec<String> = nodes
        .iter()
        .filter(|n| !minority_side.contains(n))
        .cloned()
        .collect();
    minority_side.sort_by_key(|n| nodes.iter().position(|m| m == n));
    vec![majority, minority_side]
}

fn check_groups(groups: &[Vec<String>], nodes: &[String]) -> Result<(), (String, String)> {
    let mut seen = Vec::new();
    for name in groups.iter().flatten() {
        if name != CLIENT && !nodes.contains(name) {
            return Err((
                format!("{name:?}"),
                format!("not a node ({})", nodes.join(", ")),
            ));
        }
        if seen.contains(name) {
            return Err((format!("{name:?}"), "appears in more than one group".into()));
        }
        seen.push(name.clone());
    }
    let missing: Vec<&String> = nodes.iter().filter(|n| !seen.contains(n)).collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err((
            format!("{:?}", list),
            "every node must be in a group".into(),
        ));
    }
    if groups.len() < 2 {
        return Err((
            format!("{} group(s)", groups.len()),
            "a partition needs at least two groups".into(),
        ));
    }
    Ok(())
}

/// Validates explicit partition groups (from the CLI or API) against the topology.
pub fn validate_groups(groups: &[Vec<String>], topology: &Topology) -> Result<(), String> {
    check_groups(groups, &topology.node_names())
        .map_err(|(value, reason)| format!("groups: {value}: {reason}"))
}

/// The built-in profiles plus, optionally, those of a user directory (which win).
#[derive(Debug, Clone, Default)]
pub struct ProfileLibrary {
    profiles: BTreeMap<String, Profile>,
}

impl ProfileLibrary {
    pub fn builtin() -> ProfileLibrary {
        let mut library = ProfileLibrary::default();
        for (name, text) in BUILTIN_PROFILES {
            let profile = Profile::parse(text, name, &format!("profiles/{name}.toml"))
                .unwrap_or_else(|e| panic!("built-in profile is invalid: {e}"));
            library.profiles.insert(name.to_string(), profile);
        }
        library
    }

    pub fn with_dir(mut self, dir: &Path) -> Result<ProfileLibrary, ProfileError> {
        let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let profile = Profile::load(&path)?;
                self.profiles.insert(profile.name.clone(), profile);
            }
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_string(),
                available: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn list(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
