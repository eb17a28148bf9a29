//! Cassandra as a scenario [`Cluster`]: starts a [`CassandraLab`] (or attaches to
//! nodes behind a running `rift proxy`), creates the workload's keyspace, polls every
//! node's gossip view, and builds the register workload and the checks.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rift_history::{Entry, Observation, Recorder};
use serde::Deserialize;

use super::checks::{self, CHECKERS};
use super::cql::Sessions;
use super::lab::{CassandraLab, CassandraLabOptions, STORAGE_ENDPOINT};
use super::observer::CassandraObserver;
use super::workload::{RegisterConfig, RegisterWorkload, TABLE, ensure_schema};
use crate::lab::versions::Release;
use crate::scenario::check::CheckerImpl;
use crate::scenario::nemesis::Nemesis;
use crate::scenario::spec::{CheckerSpec, ClusterSpec, WorkloadSpec};
use crate::scenario::system::{AttachOptions, StartOptions, System};
use crate::scenario::{BoxFuture, Cluster, ScenarioError, Workload};

/// The releases a lab runs (the pin of compose/cassandra-lab/pom.xml).
pub const CASSANDRA_RELEASES: &[Release] = &[Release {
    line: "5.0",
    version: super::lab::plan::CASSANDRA_VERSION,
}];

/// `[cluster]` keys for `system = "cassandra"` besides `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraSettings {
    /// JVM heap per node in MiB.
    #[serde(default = "default_heap")]
    pub heap_mb: u32,
}

fn default_heap() -> u32 {
    512
}

/// Deadline of one poll of one node (two local reads of virtual tables).
const OBSERVE_DEADLINE: Duration = Duration::from_secs(1);

pub struct CassandraCluster {
    observer: CassandraObserver,
    nodes: Vec<String>,
    nemesis: Nemesis,
    lab: Option<CassandraLab>,
    info: serde_json::Value,
}

impl CassandraCluster {
    pub async fn start(
        spec: &ClusterSpec,
        origin: &str,
        options: &StartOptions,
    ) -> Result<Self, ScenarioError> {
        let s: CassandraSettings = spec.parse(origin)?;
        let opts = CassandraLabOptions {
            heap_mb: s.heap_mb,
            base_port: options.base_port,
            work_dir: Some(options.state_dir.clone()),
            ..CassandraLabOptions::default()
        };
        let lab = CassandraLab::start(spec.nodes, opts).await?;
        let observer = CassandraObserver::new(lab.plan.direct_natives(), lab.plan.rift_addresses());
        let info = serde_json::json!({
            "system": "cassandra",
            "mode": "lab",
            "rift_api": lab.api_url(),
            "settings": lab.plan.settings(),
        });
        let cluster = CassandraCluster {
            observer,
            nodes: lab.node_names(),
            nemesis: Nemesis::Local(lab.control()),
            lab: Some(lab),
            info,
        };
        cluster.schema().await?;
        Ok(cluster)
    }

    pub async fn attach(
        spec: &ClusterSpec,
        origin: &str,
        options: &AttachOptions,
    ) -> Result<Self, ScenarioError> {
        let _: CassandraSettings = spec.parse(origin)?;
        let nemesis = Nemesis::Remote(rift_proxy::client::ApiClient::new(&options.api_url));
        let topology = nemesis.topology().await?;
        let names = topology.node_names();
        let mut direct = Vec::new();
        for (n, url) in &options.endpoints {
            if !names.contains(n) {
                return Err(ScenarioError::Cluster(format!(
                    "--endpoint {n}=...: {n} is not a node of the proxy's topology ({})",
                    names.join(", ")
                )));
            }
            let addr: SocketAddr = url.trim_start_matches("tcp://").parse().map_err(|_| {
                ScenarioError::Cluster(format!(
                    "--endpoint {n}={url}: expected the node's native address as IP:PORT"
                ))
            })?;
            direct.push((n.clone(), addr));
        }
        if direct.len() != spec.nodes {
            return Err(ScenarioError::Cluster(format!(
                "{origin}: cluster.nodes = {} but {} Cassandra endpoints were given",
                spec.nodes,
                direct.len()
            )));
        }
        // Gossip names endpoints by their broadcast address: rift's storage listener.
        let rift_names: Vec<(IpAddr, String)> = topology
            .nodes
            .iter()
            .filter_map(|n| {
                let ep = n.endpoints.iter().find(|e| e.name == STORAGE_ENDPOINT)?;
                Some((ep.listen.ip(), n.name.clone()))
            })
            .collect();
        let cluster = CassandraCluster {
            observer: CassandraObserver::new(direct.clone(), rift_names),
            nodes: direct.iter().map(|(n, _)| n.clone()).collect(),
            nemesis,
            lab: None,
            info: serde_json::json!({
                "system": "cassandra",
                "mode": "attach",
                "rift_api": options.api_url,
                "nodes": options.endpoints,
            }),
        };
        cluster.schema().await?;
        Ok(cluster)
    }

    /// Creates the workload's keyspace and table through the first node.
    async fn schema(&self) -> Result<(), ScenarioError> {
        let sessions = self.observer.sessions(Duration::from_secs(20));
        let first = &self.nodes[0];
        let session = sessions
            .get(first)
            .await
            .map_err(|e| ScenarioError::Cluster(e.to_string()))?;
        ensure_schema(&session)
            .await
            .map_err(|e| ScenarioError::Cluster(format!("{first}: {e}")))
    }

    /// A write at ALL through every node: each coordinator reaches every replica.
    async fn probe_all(&self, sessions: &Sessions) -> Result<(), String> {
        for node in &self.nodes {
            let session = sessions.get(node).await.map_err(|e| e.to_string())?;
            let mut st = scylla::statement::unprepared::Statement::new(format!(
                "INSERT INTO {TABLE} (key, value) VALUES (?, ?)"
            ));
            st.set_consistency(scylla::frame::types::Consistency::All);
            if let Err(e) = session
                .query_unpaged(st, (format!("health/{node}"), 0i64))
                .await
            {
                sessions.forget(node).await;
                return Err(format!("{node}: write at ALL: {e}"));
            }
        }
        Ok(())
    }
}

/// Cassandra in the system registry ([`crate::scenario::system::REGISTRY`]).
pub struct Cassandra;

impl System for Cassandra {
    fn name(&self) -> &'static str {
        "cassandra"
    }

    fn checkers(&self) -> &'static [&'static str] {
        CHECKERS
    }

    fn releases(&self) -> &'static [Release] {
        CASSANDRA_RELEASES
    }

    fn start<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a StartOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(CassandraCluster::start(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }

    fn attach<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a AttachOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(
                Box::new(CassandraCluster::attach(spec, origin, options).await?)
                    as Box<dyn Cluster>,
            )
        })
    }
}

impl Cluster for CassandraCluster {
    fn system(&self) -> &'static str {
        "cassandra"
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }

    fn consensus_endpoint(&self) -> &'static str {
        // Replication, gossip and Paxos all cross the storage port.
        STORAGE_ENDPOINT
    }

    fn nemesis(&self) -> &Nemesis {
        &self.nemesis
    }

    fn leader(&self) -> BoxFuture<'_, Option<String>> {
        // Leaderless: every node coordinates.
        Box::pin(async { None })
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>> {
        Box::pin(async move {
            let start = Instant::now();
            let sessions = self.observer.sessions(Duration::from_secs(3));
            loop {
                let e = match self.probe_all(&sessions).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                };
                if start.elapsed() > timeout {
                    return Err(ScenarioError::Cluster(format!(
                        "not every node reaches every replica after {timeout:?}: {e}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    fn describe(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let mut parts = Vec::new();
            for n in &self.nodes {
                parts.push(
                    match self.observer.ring(n, Duration::from_millis(500)).await {
                        Ok(v) => format!("{n}: {}", v.describe()),
                        Err(_) => format!("{n}: (no answer)"),
                    },
                );
            }
            parts.join("  ")
        })
    }

    fn checker(&self, spec: &CheckerSpec, _origin: &str) -> Result<CheckerImpl, ScenarioError> {
        checks::build(spec)
    }

    fn workload(
        &self,
        spec: &WorkloadSpec,
        recorder: &Recorder,
    ) -> Result<Box<dyn Workload>, ScenarioError> {
        if spec.kind != "register" {
            return Err(ScenarioError::Field {
                origin: spec.origin.clone(),
                field: "kind".into(),
                value: spec.kind.clone(),
                reason: "Cassandra workloads: register".into(),
            });
        }
        let config = RegisterConfig::from_spec(spec)?;
        let sessions = self.observer.sessions(config.timeout);
        Ok(Box::new(RegisterWorkload::start(
            sessions, config, recorder,
        )))
    }

    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let started = recorder.now();
            let view = self.observer.ring(node, OBSERVE_DEADLINE).await;
            let time = recorder.now();
            let (value, error) = match view {
                Ok(v) => (serde_json::to_value(&v).unwrap_or_default(), None),
                Err(e) => (serde_json::Value::Null, Some(e.to_string())),
            };
            recorder.record(Entry::Observation(Observation {
                index: 0,
                time,
                started,
                observation: "cassandra-ring".into(),
                node: node.to_string(),
                value,
                error,
            }));
        })
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn info(&self) -> serde_json::Value {
        self.info.clone()
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let CassandraCluster { observer, lab, .. } = *self;
            // Sessions first: a driver whose node is killed under it logs every
            // reconnect attempt.
            drop(observer);
            if let Some(lab) = lab {
                lab.shutdown().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::spec::Scenario;

    /// Every shipped Cassandra scenario (and the cap-map file) parses: settings,
    /// workload and checkers, with no cluster started.
    #[test]
    fn shipped_cassandra_scenarios_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<_> = std::fs::read_dir(root.join("profiles/scenarios"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("cassandra-"))
            })
            .collect();
        let cap_map = root.join("profiles/cap-map/cassandra.toml");
        if cap_map.exists() {
            files.push(cap_map);
        }
        assert!(!files.is_empty());
        for path in files {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.cluster.system, "cassandra", "{}", path.display());
            let _: CassandraSettings = s.cluster.parse(&s.origin).unwrap();
            let w = s.workload.as_ref().expect("a workload");
            assert_eq!(w.kind, "register");
            RegisterConfig::from_spec(w).unwrap_or_else(|e| panic!("{e}"));
            for c in &s.checkers {
                checks::build(c).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    #[test]
    fn a_bad_workload_setting_names_file_and_field() {
        let text = "name = \"x\"\n[cluster]\nsystem = \"cassandra\"\nnodes = 3\n\
                    [fault]\nprofile = \"minority-isolation\"\n\
                    [timeline]\nbaseline = \"1s\"\nhold = \"1s\"\nsettle = \"1s\"\n\
                    [[checker]]\nkind = \"no-lost-writes\"\n\
                    [workload]\nkind = \"register\"\nconsistency = [\"one\", \"all\"]\n";
        let s = Scenario::parse(text, "f.toml").unwrap();
        let e = RegisterConfig::from_spec(s.workload.as_ref().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml") && e.contains("all"), "{e}");
        let text = text.replace("\"all\"", "\"one\"");
        let s = Scenario::parse(&text, "f.toml").unwrap();
        let e = RegisterConfig::from_spec(s.workload.as_ref().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("workload.consistency") && e.contains("listed twice"),
            "{e}"
        );
    }
}
