//! The compiled link matrix: for every directed (src, dst) pair of identities and every
//! endpoint, the fault currently in force. The control plane publishes a new immutable
//! version through a `watch` channel; relays pick it up on their next wake-up, so the
//! control plane never waits on traffic.

use std::sync::Arc;

use crate::fault::{Fault, LinkRule};
use crate::topology::{CLIENT, Topology};

/// Identity indices: nodes in topology order, then `client` last.
#[derive(Debug, Clone)]
pub struct Identities {
    names: Vec<String>,
    endpoints: Vec<String>,
}

impl Identities {
    pub fn new(topology: &Topology) -> Identities {
        let mut names = topology.node_names();
        names.push(CLIENT.to_string());
        Identities {
            names,
            endpoints: topology.endpoint_names(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn client(&self) -> usize {
        self.names.len() - 1
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn endpoint_index(&self, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|n| n == name)
    }

    pub fn endpoint_names(&self) -> &[String] {
        &self.endpoints
    }
}

/// Why a rule cannot be compiled; the API turns this into a 400 naming the value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("rules[{rule}].{field}: unknown node {value:?} (known: {known})")]
    UnknownNode {
        rule: usize,
        field: &'static str,
        value: String,
        known: String,
    },
    #[error("rules[{rule}].endpoints: unknown endpoint {value:?} (known: {known})")]
    UnknownEndpoint {
        rule: usize,
        value: String,
        known: String,
    },
    #[error("rules[{rule}]: a node is never partitioned from itself ({value:?})")]
    SelfLink { rule: usize, value: String },
}

/// Immutable snapshot of every link's fault.
#[derive(Debug)]
pub struct LinkMatrix {
    pub version: u64,
    identities: usize,
    endpoints: usize,
    cells: Vec<Option<Fault>>,
}

impl LinkMatrix {
    pub fn healthy(ids: &Identities) -> LinkMatrix {
        LinkMatrix {
            version: 0,
            identities: ids.len(),
            endpoints: ids.endpoint_names().len().max(1),
            cells: vec![None; ids.len() * ids.len() * ids.endpoint_names().len().max(1)],
        }
    }

    /// Checks rules against the identities without compiling them.
    pub fn validate(ids: &Identities, rules: &[LinkRule]) -> Result<(), RuleError> {
        for (i, rule) in rules.iter().enumerate() {
            resolve_rule(ids, i, rule)?;
        }
        Ok(())
    }

    /// Compiles rule sets in order; a later rule overrides an earlier one on the same cell.
    pub fn compile<'a>(
        ids: &Identities,
        version: u64,
        rule_sets: impl IntoIterator<Item = &'a [LinkRule]>,
    ) -> Result<LinkMatrix, RuleError> {
        let mut matrix = LinkMatrix::healthy(ids);
        matrix.version = version;
        for rules in rule_sets {
            for (i, rule) in rules.iter().enumerate() {
                let (src, dst, eps) = resolve_rule(ids, i, rule)?;
                for ep in eps {
                    let cell = matrix.cell(src, dst, ep);
                    matrix.cells[cell] = Some(rule.fault.clone());
                }
            }
        }
        Ok(matrix)
    }

    fn cell(&self, src: usize, dst: usize, endpoint: usize) -> usize {
        (src * self.identities + dst) * self.endpoints + endpoint
    }

    /// The fault on bytes flowing from `src` to `dst` over `endpoint`.
    pub fn fault(&self, src: usize, dst: usize, endpoint: usize) -> Option<&Fault> {
        if src == dst {
            return None;
        }
        self.cells[self.cell(src, dst, endpoint)].as_ref()
    }

    /// The strongest state of a directed link over all endpoints, as `rift_link_state`.
    pub fn link_state(&self, src: usize, dst: usize) -> u8 {
        (0..self.endpoints)
            .filter_map(|ep| self.fault(src, dst, ep))
            .map(|f| f.state_code())
            .max()
            .unwrap_or(0)
    }

    /// Per endpoint faults of a directed link, for status output.
    pub fn link_faults(&self, src: usize, dst: usize) -> Vec<(usize, &Fault)> {
        (0..self.endpoints)
            .filter_map(|ep| self.fault(src, dst, ep).map(|f| (ep, f)))
            .collect()
    }
}

fn resolve_rule(
    ids: &Identities,
    i: usize,
    rule: &LinkRule,
) -> Result<(usize, usize, Vec<usize>), RuleError> {
    let node = |field: &'static str, value: &str| {
        ids.index(value).ok_or_else(|| RuleError::UnknownNode {
            rule: i,
            field,
            value: value.to_string(),
            known: ids.names().join(", "),
        })
    };
    let src = node("from", &rule.from)?;
    let dst = node("to", &rule.to)?;
    if src == dst {
        return Err(RuleError::SelfLink {
            rule: i,
            value: rule.from.clone(),
        });
    }
    let eps = if rule.endpoints.is_empty() {
        (0..ids.endpoint_names().len().max(1)).collect()
    } else {
        rule.endpoints
            .iter()
            .map(|e| {
                ids.endpoint_index(e)
                    .ok_or_else(|| RuleError::UnknownEndpoint {
                        rule: i,
                        value: e.clone(),
                        known: ids.endpoint_names().join(", "),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    Ok((src, dst, eps))
}

/// What relays hold: the receiving end of published matrices.
pub type MatrixWatch = tokio::sync::watch::Receiver<Arc<LinkMatrix>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Degradation, partition_rules};

    fn ids() -> Identities {
        Identities {
            names: vec!["a".into(), "b".into(), "c".into(), CLIENT.into()],
            endpoints: vec!["peer".into(), "client".into()],
        }
    }

    fn rule(from: &str, to: &str, fault: Fault, eps: &[&str]) -> LinkRule {
        LinkRule {
            from: from.into(),
            to: to.into(),
            fault,
            endpoints: eps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn healthy_matrix_passes_everything() {
        let m = LinkMatrix::healthy(&ids());
        for s in 0..4 {
            for d in 0..4 {
                assert_eq!(m.link_state(s, d), 0);
            }
        }
    }

    #[test]
    fn directed_rules_affect_one_direction_only() {
        let rules = vec![rule("a", "b", Fault::Hold, &[])];
        let m = LinkMatrix::compile(&ids(), 1, [rules.as_slice()]).unwrap();
        assert_eq!(m.fault(0, 1, 0), Some(&Fault::Hold));
        assert_eq!(m.fault(0, 1, 1), Some(&Fault::Hold));
        assert_eq!(m.fault(1, 0, 0), None);
        assert_eq!(m.link_state(0, 1), 1);
        assert_eq!(m.link_state(1, 0), 0);
    }

    #[test]
    fn endpoint_limited_rule_leaves_other_endpoints_flowing() {
        let rules = vec![rule("a", "b", Fault::Reset, &["peer"])];
        let m = LinkMatrix::compile(&ids(), 1, [rules.as_slice()]).unwrap();
        assert_eq!(m.fault(0, 1, 0), Some(&Fault::Reset));
        assert_eq!(m.fault(0, 1, 1), None);
    }

    #[test]
    fn later_rule_sets_override_earlier_ones() {
        let first = partition_rules(
            &[vec!["a".into()], vec!["b".into(), "c".into()]],
            &Fault::Hold,
            &[],
        );
        let slow = Fault::Degrade(Degradation {
            latency_ms: 5,
            ..Default::default()
        });
        let second = vec![rule("a", "b", slow.clone(), &[])];
        let m = LinkMatrix::compile(&ids(), 2, [first.as_slice(), second.as_slice()]).unwrap();
        assert_eq!(m.fault(0, 1, 0), Some(&slow));
        assert_eq!(m.fault(0, 2, 0), Some(&Fault::Hold));
        assert_eq!(m.fault(2, 0, 1), Some(&Fault::Hold));
        assert_eq!(m.fault(1, 2, 0), None);
        assert_eq!(m.link_state(0, 1), 4);
    }

    #[test]
    fn bad_rules_name_the_field_and_value() {
        let e = LinkMatrix::validate(&ids(), &[rule("a", "zz", Fault::Hold, &[])]).unwrap_err();
        assert!(
            e.to_string().contains("rules[0].to") && e.to_string().contains("\"zz\""),
            "{e}"
        );
        let e =
            LinkMatrix::validate(&ids(), &[rule("a", "b", Fault::Hold, &["raft"])]).unwrap_err();
        assert!(e.to_string().contains("\"raft\""), "{e}");
        let e = LinkMatrix::validate(&ids(), &[rule("a", "a", Fault::Hold, &[])]).unwrap_err();
        assert!(matches!(e, RuleError::SelfLink { .. }));
        // The self link always passes, even if asked directly.
        let m = LinkMatrix::healthy(&ids());
        assert_eq!(m.fault(1, 1, 0), None);
    }
}
