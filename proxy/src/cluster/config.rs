//! The controller's topology file: the proxy's topology (`[api]`, `[[node]]`) plus one
//! `[[agent]]` per host or pod, naming the nodes whose listeners it owns.
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:7070"     # the controller's API
//!
//! [[agent]]
//! name = "host1"
//! api = "10.0.0.11:7071"       # where the controller reaches this agent
//! nodes = ["etcd1"]
//!
//! [[node]]
//! name = "etcd1"
//! source_ips = ["10.0.0.11"]
//! [[node.endpoint]]
//! name = "peer"
//! listen = "10.0.0.11:12380"   # bound by host1's agent
//! upstream = "10.0.0.11:2380"
//! ```
//!
//! Listen addresses are unique per agent, not across agents: pods of one chart all
//! listen on `0.0.0.0:<port>` of their own network.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::topology::{ApiConfig, Node, Topology, TopologyError, valid_host_port, valid_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTopology {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    #[serde(rename = "agent", default)]
    pub agents: Vec<AgentConfig>,
    #[serde(rename = "node", default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: String,
    /// `host:port` the controller dials for this agent's API.
    pub api: String,
    /// The nodes whose listeners this agent owns.
    pub nodes: Vec<String>,
}

impl ClusterTopology {
    pub fn load(path: &Path) -> Result<ClusterTopology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ClusterTopology::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<ClusterTopology, TopologyError> {
        let parsed: ClusterTopology = toml::from_str(text).map_err(|e| TopologyError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        parsed.validate(origin)?;
        Ok(parsed)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a cluster topology always serialises")
    }

    /// Every node, as the proxy's topology (the controller's identities).
    pub fn topology(&self) -> Topology {
        Topology {
            api: self.api.clone(),
            nodes: self.nodes.clone(),
        }
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    fn validate(&self, origin: &str) -> Result<(), TopologyError> {
        let invalid = |field: String, value: String, reason: &str| TopologyError::Invalid {
            origin: origin.to_string(),
            field,
            value,
            reason: reason.to_string(),
        };
        if self.agents.is_empty() {
            return Err(invalid(
                "agent".into(),
                "[]".into(),
                "a controller needs at least one [[agent]]",
            ));
        }
        // Names and source addresses are global; listen addresses only per agent.
        let mut all = self.topology();
        all.nodes.iter_mut().enumerate().for_each(|(i, node)| {
            for (j, endpoint) in node.endpoints.iter_mut().enumerate() {
                // Distinct stand-ins so the global check skips listen addresses.
                endpoint.listen = std::net::SocketAddr::from((
                    [127, 255, u8::try_from(i % 256).unwrap_or(0), 1],
                    u16::try_from(1 + (i / 256) * 64 + j).unwrap_or(u16::MAX),
                ));
            }
        });
        all.api = None;
        all.validate(origin)?;
        let mut host: HashMap<&str, &str> = HashMap::new();
        let mut names = HashSet::new();
        let mut apis = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let field = |f: &str| format!("agent[{i}].{f}");
            if !valid_name(&agent.name) {
                return Err(invalid(
                    field("name"),
                    agent.name.clone(),
                    "use 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'",
                ));
            }
            if !names.insert(agent.name.as_str()) {
                return Err(invalid(
                    field("name"),
                    agent.name.clone(),
                    "duplicate agent name",
                ));
            }
            if !valid_host_port(&agent.api) {
                return Err(invalid(
                    field("api"),
                    agent.api.clone(),
                    "expected host:port",
                ));
            }
            if !apis.insert(agent.api.as_str()) {
                return Err(invalid(
                    field("api"),
                    agent.api.clone(),
                    "another agent has this address",
                ));
            }
            if agent.nodes.is_empty() {
                return Err(invalid(
                    field("nodes"),
                    "[]".into(),
                    "an agent hosts at least one node",
                ));
            }
            for node in &agent.nodes {
                if !self.nodes.iter().any(|n| &n.name == node) {
                    return Err(invalid(
                        field("nodes"),
                        node.clone(),
                        &format!("not a [[node]] ({})", all.node_names().join(", ")),
                    ));
                }
                if let Some(other) = host.insert(node.as_str(), agent.name.as_str()) {
                    return Err(invalid(
                        field("nodes"),
                        node.clone(),
                        &format!("already hosted by agent {other}"),
                    ));
                }
            }
            let own = Topology {
                api: None,
                nodes: self
                    .nodes
                    .iter()
                    .filter(|n| agent.nodes.contains(&n.name))
                    .cloned()
                    .collect(),
            };
            own.validate(&format!("{origin} (nodes of agent {})", agent.name))?;
        }
        if let Some(node) = self
            .nodes
            .iter()
            .find(|n| !host.contains_key(n.name.as_str()))
        {
            return Err(invalid(
                "agent[].nodes".into(),
                node.name.clone(),
                "no agent hosts this node",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[api]
listen = "127.0.0.1:7070"

[[agent]]
name = "h1"
api = "127.0.1.1:7071"
nodes = ["n1"]

[[agent]]
name = "h2"
api = "127.0.1.2:7071"
nodes = ["n2"]

[[node]]
name = "n1"
source_ips = ["127.0.1.1"]
[[node.endpoint]]
name = "peer"
listen = "0.0.0.0:12380"
upstream = "127.0.1.1:2380"

[[node]]
name = "n2"
source_ips = ["127.0.1.2"]
[[node.endpoint]]
name = "peer"
listen = "0.0.0.0:12380"
upstream = "127.0.1.2:2380"
"#;

    fn error_of(text: &str) -> String {
        ClusterTopology::parse(text, "c.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_and_round_trips() {
        let t = ClusterTopology::parse(GOOD, "c.toml").unwrap();
        assert_eq!(t.agents.len(), 2);
        assert_eq!(t.agent("h2").unwrap().nodes, vec!["n2"]);
        assert_eq!(ClusterTopology::parse(&t.to_toml(), "again").unwrap(), t);
    }

    #[test]
    fn bad_agents_name_field_and_value() {
        let e = error_of(&GOOD.replace("nodes = [\"n2\"]", "nodes = [\"n1\"]"));
        assert!(
            e.contains("agent[1].nodes") && e.contains("already hosted by agent h1"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("nodes = [\"n2\"]", "nodes = [\"n9\"]"));
        assert!(e.contains("\"n9\"") && e.contains("not a [[node]]"), "{e}");
        let e = error_of(&GOOD.replace("127.0.1.2:7071", "127.0.1.1:7071"));
        assert!(e.contains("agent[1].api"), "{e}");
        let e = error_of(&GOOD.replace("127.0.1.2:7071", "nohostport"));
        assert!(e.contains("\"nohostport\""), "{e}");
        let e = error_of(&GOOD.replace("name = \"h2\"", "name = \"h1\""));
        assert!(e.contains("duplicate agent name"), "{e}");
        let e = error_of(&GOOD.replace(
            "api = \"127.0.1.2:7071\"\nnodes = [\"n2\"]",
            "api = \"127.0.1.2:7071\"\nnodes = []",
        ));
        assert!(e.contains("agent[1].nodes"), "{e}");
        let e = error_of(&GOOD.replace(
            "source_ips = [\"127.0.1.2\"]",
            "source_ips = [\"127.0.1.1\"]",
        ));
        assert!(e.contains("already identifies another node"), "{e}");
        let e = error_of(&GOOD.replace(
            "[[agent]]\nname = \"h2\"\napi = \"127.0.1.2:7071\"\nnodes = [\"n2\"]\n",
            "",
        ));
        assert!(
            e.contains("no agent hosts this node") && e.contains("\"n2\""),
            "{e}"
        );
        let e = error_of(&GOOD.replace(
            "api = \"127.0.1.1:7071\"",
            "api = \"127.0.1.1:7071\"\nport = 3",
        ));
        assert!(e.contains("c.toml") && e.contains("port"), "{e}");
    }

    #[test]
    fn listen_addresses_must_differ_only_within_an_agent() {
        // Both agents listen on 0.0.0.0:12380: fine, they are different hosts.
        assert!(ClusterTopology::parse(GOOD, "c.toml").is_ok());
        let same_agent = GOOD
            .replace("nodes = [\"n1\"]", "nodes = [\"n1\", \"n2\"]")
            .replace(
                "[[agent]]\nname = \"h2\"\napi = \"127.0.1.2:7071\"\nnodes = [\"n2\"]\n",
                "",
            );
        let e = error_of(&same_agent);
        assert!(e.contains("agent h1") && e.contains("listen"), "{e}");
    }

    /// The topologies the Helm chart renders (kept equal to `helm template` by
    /// deploy/kubernetes/tests) are ones the controller accepts: pods' DNS names as agent
    /// APIs and source_hosts, every agent listening on the same 0.0.0.0 ports.
    #[test]
    fn the_helm_charts_topologies_parse() {
        for (origin, text, nodes) in [
            (
                "etcd-topology.toml",
                include_str!("../../../deploy/kubernetes/tests/fixtures/etcd-topology.toml"),
                3,
            ),
            (
                "kafka-topology.toml",
                include_str!("../../../deploy/kubernetes/tests/fixtures/kafka-topology.toml"),
                3,
            ),
        ] {
            let config = ClusterTopology::parse(text, origin).unwrap();
            assert_eq!(config.agents.len(), nodes, "{origin}");
            assert!(
                config
                    .nodes
                    .iter()
                    .all(|n| n.source_hosts.len() == 1 && n.source_ips.is_empty()),
                "{origin}"
            );
        }
    }
}
