//! Which nodes keep a quorum under a set of directed link rules.
//!
//! Raft needs traffic both ways on a link (requests and their answers), so a node is
//! counted as reaching another only if neither direction between them is cut on the
//! consensus endpoint. A node is on the majority side when it reaches a quorum of nodes,
//! itself included. Degradations (delay, bandwidth) do not cut.

use rift_proxy::fault::LinkRule;

/// Whether the link between `a` and `b` is cut in at least one direction on `endpoint`.
pub fn cut_between(rules: &[LinkRule], a: &str, b: &str, endpoint: &str) -> bool {
    rules.iter().any(|r| {
        r.fault.is_cut()
            && ((r.from == a && r.to == b) || (r.from == b && r.to == a))
            && (r.endpoints.is_empty() || r.endpoints.iter().any(|e| e == endpoint))
    })
}

/// (majority, minority) node lists, each in `nodes` order.
pub fn quorum_sides(
    nodes: &[String],
    rules: &[LinkRule],
    endpoint: &str,
) -> (Vec<String>, Vec<String>) {
    let quorum = nodes.len() / 2 + 1;
    let mut majority = Vec::new();
    let mut minority = Vec::new();
    for n in nodes {
        let reach = nodes
            .iter()
            .filter(|m| *m == n || !cut_between(rules, n, m, endpoint))
            .count();
        if reach >= quorum {
            majority.push(n.clone());
        } else {
            minority.push(n.clone());
        }
    }
    (majority, minority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rift_proxy::fault::{Degradation, Fault, partition_rules};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_three_two() {
        let nodes = names(&["a", "b", "c", "d", "e"]);
        let rules = partition_rules(
            &[names(&["a", "b", "c"]), names(&["d", "e"])],
            &Fault::Hold,
            &[],
        );
        let (maj, min) = quorum_sides(&nodes, &rules, "peer");
        assert_eq!(maj, names(&["a", "b", "c"]));
        assert_eq!(min, names(&["d", "e"]));
    }

    #[test]
    fn two_vs_two_has_no_majority_and_one_way_cut_counts() {
        let nodes = names(&["a", "b", "c", "d"]);
        let rules = partition_rules(&[names(&["a", "b"]), names(&["c", "d"])], &Fault::Hold, &[]);
        let (maj, min) = quorum_sides(&nodes, &rules, "peer");
        assert!(maj.is_empty());
        assert_eq!(min.len(), 4);
        let one_way = vec![LinkRule {
            from: "a".into(),
            to: "b".into(),
            fault: Fault::Hold,
            endpoints: vec![],
        }];
        assert!(cut_between(&one_way, "b", "a", "peer"));
    }

    #[test]
    fn other_endpoints_and_degradations_do_not_cut() {
        let rules = vec![
            LinkRule {
                from: "a".into(),
                to: "b".into(),
                fault: Fault::Hold,
                endpoints: vec!["client".into()],
            },
            LinkRule {
                from: "a".into(),
                to: "c".into(),
                fault: Fault::Degrade(Degradation::default()),
                endpoints: vec![],
            },
        ];
        assert!(!cut_between(&rules, "a", "b", "peer"));
        assert!(cut_between(&rules, "a", "b", "client"));
        assert!(!cut_between(&rules, "a", "c", "peer"));
    }
}
