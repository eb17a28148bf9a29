//! Resolving a profile against a topology's nodes: which groups, which directed
//! rules, and a one-line summary of the sides.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::{Bindings, ClientPlacement, Kind, OneWayDirection, Profile, ProfileError, Resolution};
use crate::fault::{LinkRule, partition_rules};
use crate::topology::{CLIENT, Topology};

impl Profile {
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
            Kind::Wan => {
                return super::wan::resolve(self, &nodes, topology.regions(), bindings)
                    .map_err(|(value, reason)| invalid("bindings", value, reason));
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
