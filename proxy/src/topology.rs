//! The topology file: nodes, their endpoints, and how each node is recognised as the
//! source of a connection. Node names are used everywhere (CLI, API, profiles, metrics).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The identity of connections whose source matches no node.
pub const CLIENT: &str = "client";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    #[serde(rename = "node", default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_pids: Vec<u32>,
    /// DNS names whose addresses identify this node, resolved again every few seconds:
    /// pods (a StatefulSet's `pod.service` names) get a new IP when they restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_hosts: Vec<String>,
    /// Where the node runs (`eu-west`, `dc2`): the `wan` profile places nodes by it.
    /// Every node has one, or none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(rename = "endpoint", default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    /// Where rift listens for this (node, endpoint).
    pub listen: SocketAddr,
    /// The real address, `host:port`; resolved at dial time.
    pub upstream: String,
}

#[derive(Debug, Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {field} = {value:?}: {reason}")]
    Invalid {
        origin: String,
        field: String,
        value: String,
        reason: String,
    },
}

impl Topology {
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Topology, TopologyError> {
        let topology: Topology = toml::from_str(text).map_err(|e| TopologyError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        topology.validate(origin)?;
        Ok(topology)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a topology always serialises")
    }

    pub fn validate(&self, origin: &str) -> Result<(), TopologyError> {
        let invalid = |field: String, value: String, reason: &str| TopologyError::Invalid {
            origin: origin.to_string(),
            field,
            value,
            reason: reason.to_string(),
        };
        if self.nodes.is_empty() {
            return Err(invalid(
                "node".into(),
                "[]".into(),
                "at least one [[node]] is required",
            ));
        }
        let mut names = HashSet::new();
        let mut listens = HashSet::new();
        let mut ips = HashSet::new();
        let mut hosts = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let field = |f: &str| format!("node[{i}].{f}");
            if !valid_name(&node.name) {
                return Err(invalid(
                    field("name"),
                    node.name.clone(),
                    "use 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
                ));
            }
            if node.name == CLIENT {
                return Err(invalid(
                    field("name"),
                    node.name.clone(),
                    "`client` is reserved for unknown sources",
                ));
            }
            if !names.insert(node.name.as_str()) {
                return Err(invalid(
                    field("name"),
                    node.name.clone(),
                    "duplicate node name",
                ));
            }
            for ip in &node.source_ips {
                if !ips.insert(*ip) {
                    return Err(invalid(
                        field("source_ips"),
                        ip.to_string(),
                        "IP already identifies another node",
                    ));
                }
            }
            for host in &node.source_hosts {
                if !valid_host(host) {
                    return Err(invalid(
                        field("source_hosts"),
                        host.clone(),
                        "expected a DNS name (labels of a-z, A-Z, 0-9, '-', '_', at most 253 characters)",
                    ));
                }
                if !hosts.insert(host.to_ascii_lowercase()) {
                    return Err(invalid(
                        field("source_hosts"),
                        host.clone(),
                        "host already identifies another node",
                    ));
                }
            }
            if node.endpoints.is_empty() {
                return Err(invalid(
                    field("endpoint"),
                    "[]".into(),
                    "each node needs at least one [[node.endpoint]]",
                ));
            }
            let mut endpoint_names = HashSet::new();
            for (j, ep) in node.endpoints.iter().enumerate() {
                let field = |f: &str| format!("node[{i}].endpoint[{j}].{f}");
                if !valid_name(&ep.name) {
                    return Err(invalid(
                        field("name"),
                        ep.name.clone(),
                        "use a-z, A-Z, 0-9, '-', '_', '.'",
                    ));
                }
                if !endpoint_names.insert(ep.name.as_str()) {
                    return Err(invalid(
                        field("name"),
                        ep.name.clone(),
                        "duplicate endpoint name on this node",
                    ));
                }
                if ep.listen.port() != 0 && !listens.insert(ep.listen) {
                    return Err(invalid(
                        field("listen"),
                        ep.listen.to_string(),
                        "address already used by another endpoint",
                    ));
                }
                if !valid_host_port(&ep.upstream) {
                    return Err(invalid(
                        field("upstream"),
                        ep.upstream.clone(),
                        "expected host:port",
                    ));
                }
            }
        }
        let placed: Vec<&Node> = self.nodes.iter().filter(|n| n.region.is_some()).collect();
        if !placed.is_empty() && placed.len() < self.nodes.len() {
            let (i, unplaced) = self
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| n.region.is_none())
                .expect("some node has no region");
            return Err(invalid(
                format!("node[{i}].region"),
                format!("(none on {}; {} has one)", unplaced.name, placed[0].name),
                "give every node a region, or none",
            ));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(region) = &node.region
                && !valid_name(region)
            {
                return Err(invalid(
                    format!("node[{i}].region"),
                    region.clone(),
                    "use 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
                ));
            }
        }
        if let Some(api) = &self.api
            && listens.contains(&api.listen)
        {
            return Err(invalid(
                "api.listen".into(),
                api.listen.to_string(),
                "address already used by an endpoint",
            ));
        }
        Ok(())
    }

    /// The nodes grouped by region, regions in order of first appearance, with their
    /// names; `None` when the topology places no node.
    pub fn regions(&self) -> Option<Vec<(String, Vec<String>)>> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for node in &self.nodes {
            let region = node.region.as_ref()?;
            match out.iter_mut().find(|(r, _)| r == region) {
                Some((_, nodes)) => nodes.push(node.name.clone()),
                None => out.push((region.clone(), vec![node.name.clone()])),
            }
        }
        (!out.is_empty()).then_some(out)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Every endpoint name used by any node.
    pub fn endpoint_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for ep in self.nodes.iter().flat_map(|n| &n.endpoints) {
            if !names.contains(&ep.name) {
                names.push(ep.name.clone());
            }
        }
        names
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS name: dot-separated labels of 1-63 letters, digits, '-' or '_' (a trailing dot
/// allowed), at most 253 characters.
pub(crate) fn valid_host(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        })
}

pub(crate) fn valid_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[api]
listen = "127.0.0.1:7070"

[[node]]
name = "n1"
source_ips = ["127.0.0.2"]
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:12380"
upstream = "127.0.0.1:22380"

[[node]]
name = "n2"
source_pids = [42]
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:12381"
upstream = "localhost:22381"
"#;

    #[test]
    fn parses_a_good_topology() {
        let t = Topology::parse(GOOD, "t.toml").unwrap();
        assert_eq!(t.node_names(), vec!["n1", "n2"]);
        assert_eq!(t.nodes[1].source_pids, vec![42]);
        assert_eq!(Topology::parse(&t.to_toml(), "again").unwrap(), t);
    }

    fn error_of(text: &str) -> String {
        Topology::parse(text, "bad.toml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_names_file_and_field() {
        let e = error_of(&GOOD.replace("source_pids", "source_pid"));
        assert!(e.starts_with("bad.toml"), "{e}");
        assert!(e.contains("source_pid"), "{e}");
    }

    #[test]
    fn invalid_values_name_field_and_value() {
        let e = error_of(&GOOD.replace("localhost:22381", "localhost"));
        assert!(
            e.contains("node[1].endpoint[0].upstream") && e.contains("\"localhost\""),
            "{e}"
        );
        let e = error_of(&GOOD.replace("name = \"n2\"", "name = \"n1\""));
        assert!(e.contains("node[1].name") && e.contains("duplicate"), "{e}");
        let e = error_of(&GOOD.replace("name = \"n2\"", "name = \"client\""));
        assert!(e.contains("reserved"), "{e}");
        let e = error_of(&GOOD.replace("12381", "12380"));
        assert!(e.contains("node[1].endpoint[0].listen"), "{e}");
        let e = error_of(&GOOD.replace("\"127.0.0.1:22380\"", "\"127.0.0.1:0\""));
        assert!(e.contains("upstream"), "{e}");
        let e = error_of(&GOOD.replace("127.0.0.2", "not-an-ip"));
        assert!(e.contains("bad.toml") && e.contains("not-an-ip"), "{e}");
        let e = error_of("");
        assert!(e.contains("at least one"), "{e}");
    }

    #[test]
    fn regions_are_on_every_node_or_none_and_group_in_order() {
        let placed = GOOD
            .replace("name = \"n1\"", "name = \"n1\"\nregion = \"eu\"")
            .replace("name = \"n2\"", "name = \"n2\"\nregion = \"us\"");
        let t = Topology::parse(&placed, "t.toml").unwrap();
        let regions = t.regions().unwrap();
        assert_eq!(regions[0], ("eu".to_string(), vec!["n1".to_string()]));
        assert_eq!(Topology::parse(&t.to_toml(), "again").unwrap(), t);
        assert_eq!(Topology::parse(GOOD, "t.toml").unwrap().regions(), None);
        let half = GOOD.replace("name = \"n1\"", "name = \"n1\"\nregion = \"eu\"");
        let e = error_of(&half);
        assert!(
            e.contains("node[1].region") && e.contains("every node a region, or none"),
            "{e}"
        );
        let bad = placed.replace("\"us\"", "\"us west\"");
        let e = error_of(&bad);
        assert!(e.contains("node[1].region") && e.contains("us west"), "{e}");
    }

    #[test]
    fn source_hosts_are_dns_names_owned_by_one_node() {
        let with_hosts = GOOD.replace(
            "source_pids = [42]",
            "source_pids = [42]\nsource_hosts = [\"etcd-1.etcd.rift.svc.cluster.local\", \"localhost\"]",
        );
        let t = Topology::parse(&with_hosts, "t.toml").unwrap();
        assert_eq!(t.nodes[1].source_hosts.len(), 2);
        assert_eq!(Topology::parse(&t.to_toml(), "again").unwrap(), t);
        for bad in ["etcd 1", "-etcd", "a..b", "etcd:2380", ""] {
            let e = error_of(&with_hosts.replace("localhost\"]", &format!("{bad}\"]")));
            assert!(
                e.contains("node[1].source_hosts") && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
        let twice = with_hosts.replace(
            "source_ips = [\"127.0.0.2\"]",
            "source_hosts = [\"LOCALHOST\"]",
        );
        let e = error_of(&twice);
        assert!(
            e.contains("node[1].source_hosts") && e.contains("another node"),
            "{e}"
        );
    }
}
