//! ZooKeeper as a scenario [`Cluster`]: starts a [`ZkLab`] (attaching to servers behind
//! a running `rift proxy` is not offered yet), resolves `leader` from the servers'
//! `srvr` answers, records one `zookeeper-srvr` observation per poll, and builds the
//! register workload and the register history checks from the scenario file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rift_history::{Entry, Observation, Recorder};
use serde::Deserialize;

use super::client::ZkRegister;
use super::lab::ZkLab;
use super::observer::{describe, quorum_leader, srvr, srvr_all};
use super::plan::{QUORUM_ENDPOINT, ZOOKEEPER_VERSION, ZkLabConfig};
use crate::lab::versions::Release;
use crate::register::checks::{
    MinorityRefusesWrites, NoLostWrites, NoSettings, StaleReads, StaleReadsConfig,
};
use crate::register::linearizable::{Linearizable, LinearizableConfig};
use crate::register::{RegisterConfig, RegisterWorkload};
use crate::scenario::check::CheckerImpl;
use crate::scenario::nemesis::Nemesis;
use crate::scenario::spec::{CheckerSpec, ClusterSpec, WorkloadSpec};
use crate::scenario::system::{AttachOptions, StartOptions, System};
use crate::scenario::{BoxFuture, Cluster, ScenarioError, Workload};

/// `[cluster]` keys for `system = "zookeeper"` besides `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZkSettings {
    /// `tickTime`.
    #[serde(default = "default_tick", with = "crate::scenario::spec::dur")]
    pub tick: Duration,
    /// `syncLimit`, in ticks.
    #[serde(default = "default_sync_limit")]
    pub sync_limit: u32,
    /// `initLimit`, in ticks.
    #[serde(default = "default_init_limit")]
    pub init_limit: u32,
}

fn default_tick() -> Duration {
    Duration::from_millis(200)
}
fn default_sync_limit() -> u32 {
    5
}
fn default_init_limit() -> u32 {
    5
}

/// Deadline of one `srvr` poll: the real client port answers even when the server's
/// quorum links are cut.
const POLL_DEADLINE: Duration = Duration::from_millis(500);

pub const CHECKERS: &[&str] = &[
    "linearizable",
    "minority-refuses-writes",
    "stale-reads",
    "no-lost-writes",
];

pub const RELEASES: &[Release] = &[Release {
    line: "3.9",
    version: ZOOKEEPER_VERSION,
}];

pub struct ZkCluster {
    lab: Option<ZkLab>,
    servers: Vec<(String, std::net::SocketAddr)>,
    nemesis: Nemesis,
    info: serde_json::Value,
}

impl ZkCluster {
    pub async fn start(
        spec: &ClusterSpec,
        origin: &str,
        options: &StartOptions,
    ) -> Result<Self, ScenarioError> {
        let s: ZkSettings = spec.parse(origin)?;
        let mut config = ZkLabConfig::new(spec.nodes, &options.state_dir);
        config.base_port = options.base_port;
        config.tick_ms = s.tick.as_millis() as u64;
        config.sync_limit = s.sync_limit;
        config.init_limit = s.init_limit;
        let lab = ZkLab::start(config).await?;
        let info = serde_json::json!({
            "system": "zookeeper",
            "mode": "lab",
            "rift_api": lab.api_url(),
            "settings": lab.plan.settings(),
        });
        Ok(ZkCluster {
            servers: lab.plan.clients(),
            nemesis: Nemesis::Local(lab.control()),
            lab: Some(lab),
            info,
        })
    }
}

/// ZooKeeper in the system registry ([`crate::scenario::system::REGISTRY`]).
pub struct ZooKeeper;

impl System for ZooKeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn checkers(&self) -> &'static [&'static str] {
        CHECKERS
    }

    fn releases(&self) -> &'static [Release] {
        RELEASES
    }

    fn start<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a StartOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(ZkCluster::start(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }

    fn attach<'a>(
        &'a self,
        _spec: &'a ClusterSpec,
        origin: &'a str,
        _options: &'a AttachOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Err(ScenarioError::Cluster(format!(
                "{origin}: attaching to a running ZooKeeper cluster is not supported yet; \
                 run the scenario without --api to start a lab"
            )))
        })
    }
}

impl Cluster for ZkCluster {
    fn system(&self) -> &'static str {
        "zookeeper"
    }

    fn nodes(&self) -> Vec<String> {
        self.servers.iter().map(|(n, _)| n.clone()).collect()
    }

    fn consensus_endpoint(&self) -> &'static str {
        QUORUM_ENDPOINT
    }

    fn nemesis(&self) -> &Nemesis {
        &self.nemesis
    }

    fn leader(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { quorum_leader(&srvr_all(&self.servers, POLL_DEADLINE).await) })
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>> {
        Box::pin(async move {
            let start = Instant::now();
            loop {
                let all = srvr_all(&self.servers, POLL_DEADLINE).await;
                let every = all.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_ok_and(|s| s.mode == "leader" || s.mode == "follower")
                });
                if every && quorum_leader(&all).is_some() {
                    return Ok(());
                }
                if start.elapsed() > timeout {
                    return Err(ScenarioError::Cluster(format!(
                        "not every server follows one leader after {timeout:?}: {}",
                        describe(&all)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn describe(&self) -> BoxFuture<'_, String> {
        Box::pin(
            async move { describe(&srvr_all(&self.servers, Duration::from_millis(300)).await) },
        )
    }

    fn checker(&self, spec: &CheckerSpec, _origin: &str) -> Result<CheckerImpl, ScenarioError> {
        let check: Box<dyn crate::scenario::check::HistoryCheck> = match spec.kind.as_str() {
            "linearizable" => {
                let config: LinearizableConfig = spec.parse()?;
                Box::new(Linearizable::new(config.validate(&spec.origin)?))
            }
            "minority-refuses-writes" => {
                let _: NoSettings = spec.parse()?;
                Box::new(MinorityRefusesWrites)
            }
            "stale-reads" => {
                let config: StaleReadsConfig = spec.parse()?;
                Box::new(StaleReads(config))
            }
            "no-lost-writes" => {
                let _: NoSettings = spec.parse()?;
                Box::new(NoLostWrites)
            }
            other => {
                return Err(ScenarioError::Field {
                    origin: spec.origin.clone(),
                    field: "kind".into(),
                    value: other.to_string(),
                    reason: format!("unknown zookeeper checker (known: {})", CHECKERS.join(", ")),
                });
            }
        };
        Ok(CheckerImpl::History(check))
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
                reason: "zookeeper workloads: register".into(),
            });
        }
        let config = RegisterConfig::from_spec(spec)?;
        let store = Arc::new(ZkRegister {
            servers: self.servers.clone(),
        });
        Ok(Box::new(RegisterWorkload::start(store, config, recorder)))
    }

    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let started = recorder.now();
            let addr = self
                .servers
                .iter()
                .find(|(n, _)| n == node)
                .map(|(_, a)| *a);
            let status = match addr {
                Some(a) => srvr(node, a, POLL_DEADLINE)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("{node} is not a server of this cluster")),
            };
            let time = recorder.now();
            let (value, error) = match status {
                Ok(s) => (serde_json::to_value(&s).unwrap_or_default(), None),
                Err(e) => (serde_json::Value::Null, Some(e)),
            };
            recorder.record(Entry::Observation(Observation {
                index: 0,
                time,
                started,
                observation: "zookeeper-srvr".into(),
                node: node.to_string(),
                value,
                error,
            }));
        })
    }

    fn info(&self) -> serde_json::Value {
        self.info.clone()
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(lab) = self.lab {
                lab.shutdown().await;
            }
        })
    }
}
