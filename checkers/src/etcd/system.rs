//! etcd as a scenario [`Cluster`]: starts an [`EtcdLab`] (or attaches to members
//! behind a running `rift proxy`), resolves `leader`, and builds the etcd checkers and
//! the Put workload from the scenario file.

use std::time::{Duration, Instant};

use rift_history::{Entry, Observation, Recorder};
use serde::Deserialize;

use super::checks::{
    lost_writes::NoLostWrites, majority_leader::MajorityLeader, no_quorum::NoQuorum,
    quorum::QuorumAvailability, stability::LeaderStability, step_down::StepDown,
};
use super::observer::EtcdObserver;
use super::register::EtcdRegister;
use super::workload::{PutWorkload, PutWorkloadConfig, SharedHistory};
use crate::lab::etcd::{EtcdLab, EtcdLabConfig};
use crate::register::linearizable::{Linearizable, LinearizableConfig};
use crate::register::{RegisterConfig, RegisterWorkload};
use crate::scenario::check::CheckerImpl;
use crate::scenario::nemesis::Nemesis;
use crate::scenario::spec::{CheckerSpec, ClusterSpec, WorkloadSpec};
use crate::scenario::system::{AttachOptions, StartOptions, System};
use crate::scenario::{BoxFuture, Checker, Cluster, ScenarioError, Workload};

/// `[cluster]` keys for `system = "etcd"` besides `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    #[serde(default = "yes")]
    pub pre_vote: bool,
    #[serde(default = "default_heartbeat", with = "crate::scenario::spec::dur")]
    pub heartbeat: Duration,
    #[serde(default = "default_election", with = "crate::scenario::spec::dur")]
    pub election: Duration,
    /// The etcd release (`3.4`, `3.5`, `3.6`); the lab's newest when absent.
    #[serde(default)]
    pub version: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_heartbeat() -> Duration {
    Duration::from_millis(50)
}
fn default_election() -> Duration {
    Duration::from_millis(500)
}

/// Deadline of one Status poll. The member's own client port answers even when its
/// peer links are cut, so only a stopped or overloaded member runs into it.
const STATUS_DEADLINE: Duration = Duration::from_millis(500);

pub const CHECKERS: &[&str] = &[
    "leader-step-down",
    "quorum-availability",
    "no-quorum",
    "leader-stability",
    "majority-leader",
    "no-lost-writes",
    "linearizable",
    "pacelc",
];

pub struct EtcdCluster {
    observer: EtcdObserver,
    nodes: Vec<String>,
    nemesis: Nemesis,
    lab: Option<EtcdLab>,
    info: serde_json::Value,
    /// The workload's history, once `workload()` was called (no-lost-writes needs it).
    history: std::sync::Mutex<Option<SharedHistory>>,
    /// The election timeout the cluster runs with (attached: as the scenario states
    /// it): the scale of step-down limits.
    election: Duration,
}

impl EtcdCluster {
    pub async fn start(
        spec: &ClusterSpec,
        origin: &str,
        options: &StartOptions,
    ) -> Result<Self, ScenarioError> {
        let s: EtcdSettings = spec.parse(origin)?;
        let mut config = EtcdLabConfig::new(spec.nodes, &options.state_dir);
        config.pre_vote = s.pre_vote;
        config.heartbeat_ms = s.heartbeat.as_millis() as u64;
        config.election_ms = s.election.as_millis() as u64;
        config.base_port = options.base_port;
        config.version = s.version;
        let lab = EtcdLab::start(config).await?;
        let info = serde_json::json!({
            "system": "etcd",
            "mode": "lab",
            "rift_api": lab.api_url(),
            "settings": lab.plan.settings(),
            "members": lab.plan.member_records(),
        });
        Ok(Self {
            observer: lab.observer(),
            nodes: lab.plan.members.iter().map(|m| m.name.clone()).collect(),
            nemesis: Nemesis::Local(lab.control()),
            lab: Some(lab),
            info,
            history: Default::default(),
            election: s.election,
        })
    }

    pub async fn attach(
        spec: &ClusterSpec,
        origin: &str,
        options: &AttachOptions,
    ) -> Result<Self, ScenarioError> {
        // Settings describe a lab to start; when attaching they are only recorded.
        let s: EtcdSettings = spec.parse(origin)?;
        let client = rift_proxy::client::ApiClient::new(&options.api_url);
        let nemesis = Nemesis::Remote(client);
        let topology = nemesis.topology().await?;
        let names = topology.node_names();
        for (n, _) in &options.endpoints {
            if !names.contains(n) {
                return Err(ScenarioError::Cluster(format!(
                    "--endpoint {n}=...: {n} is not a node of the proxy's topology ({})",
                    names.join(", ")
                )));
            }
        }
        if options.endpoints.len() != spec.nodes {
            return Err(ScenarioError::Cluster(format!(
                "{origin}: cluster.nodes = {} but {} etcd endpoints were given",
                spec.nodes,
                options.endpoints.len()
            )));
        }
        let observer = EtcdObserver::connect(&options.endpoints)
            .await
            .map_err(|e| ScenarioError::Cluster(e.to_string()))?;
        Ok(Self {
            observer,
            nodes: options.endpoints.iter().map(|(n, _)| n.clone()).collect(),
            nemesis,
            lab: None,
            info: serde_json::json!({
                "system": "etcd",
                "mode": "attach",
                "rift_api": options.api_url,
                "pre_vote_stated": s.pre_vote,
                "members": options.endpoints,
            }),
            history: Default::default(),
            election: s.election,
        })
    }

    pub fn observer(&self) -> EtcdObserver {
        self.observer.clone()
    }
}

/// Etcd in the system registry ([`crate::scenario::system::REGISTRY`]).
pub struct Etcd;

impl System for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn checkers(&self) -> &'static [&'static str] {
        CHECKERS
    }

    fn releases(&self) -> &'static [crate::lab::versions::Release] {
        crate::lab::versions::ETCD_RELEASES
    }

    fn start<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a StartOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(EtcdCluster::start(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }

    fn attach<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a AttachOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(EtcdCluster::attach(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }
}

impl Cluster for EtcdCluster {
    fn system(&self) -> &'static str {
        "etcd"
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }

    fn consensus_endpoint(&self) -> &'static str {
        "peer"
    }

    fn nemesis(&self) -> &Nemesis {
        &self.nemesis
    }

    fn leader(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            self.observer
                .majority_leader(Duration::from_millis(500))
                .await
                .map(|(l, _)| l)
        })
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>> {
        Box::pin(async move {
            let start = Instant::now();
            loop {
                let all = self.observer.status_all(Duration::from_millis(500)).await;
                if super::observer::majority_leader_of(&all, all.len()).is_some() {
                    return Ok(());
                }
                if start.elapsed() > timeout {
                    return Err(ScenarioError::Cluster(format!(
                        "not every member follows one leader after {timeout:?}: {}",
                        super::observer::describe(&all)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn describe(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let all = self.observer.status_all(Duration::from_millis(300)).await;
            all.iter()
                .map(|(n, s)| match s {
                    Ok(s) => format!(
                        "{n}→{}",
                        s.leader
                            .as_deref()
                            .unwrap_or(if s.leader_id == 0 { "none" } else { "?" })
                    ),
                    Err(_) => format!("{n}→(no answer)"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    fn checker(&self, spec: &CheckerSpec, _origin: &str) -> Result<CheckerImpl, ScenarioError> {
        let o = self.observer.clone();
        let live = |c: Box<dyn Checker>| CheckerImpl::Live(c);
        Ok(match spec.kind.as_str() {
            "leader-step-down" => {
                CheckerImpl::History(Box::new(StepDown::new(spec.parse()?, self.election)))
            }
            "quorum-availability" => live(Box::new(QuorumAvailability::new(o, spec.parse()?))),
            "no-quorum" => live(Box::new(NoQuorum::new(o, spec.parse()?))),
            "leader-stability" => live(Box::new(LeaderStability::new(o, spec.parse()?))),
            "majority-leader" => live(Box::new(MajorityLeader::new(o, spec.parse()?))),
            "no-lost-writes" => {
                let _: NoSettings = spec.parse()?;
                let has_workload = self
                    .history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
                if !has_workload {
                    return Err(ScenarioError::Field {
                        origin: spec.origin.clone(),
                        field: "kind".into(),
                        value: spec.kind.clone(),
                        reason: "needs a [workload] (kind = \"puts\") whose writes it checks"
                            .into(),
                    });
                }
                CheckerImpl::History(Box::new(NoLostWrites))
            }
            "linearizable" => {
                let config: LinearizableConfig = spec.parse()?;
                CheckerImpl::History(Box::new(Linearizable::new(config.validate(&spec.origin)?)))
            }
            "pacelc" => {
                let settings: crate::pacelc::Settings = spec.parse()?;
                CheckerImpl::History(Box::new(crate::pacelc::Pacelc::new(
                    settings.validate(&spec.origin)?,
                )))
            }
            other => {
                return Err(ScenarioError::Field {
                    origin: spec.origin.clone(),
                    field: "kind".into(),
                    value: other.to_string(),
                    reason: format!("unknown etcd checker (known: {})", CHECKERS.join(", ")),
                });
            }
        })
    }

    fn workload(
        &self,
        spec: &WorkloadSpec,
        recorder: &Recorder,
    ) -> Result<Box<dyn Workload>, ScenarioError> {
        if spec.kind == "register" {
            let config = RegisterConfig::from_spec(spec)?;
            let store = std::sync::Arc::new(EtcdRegister(self.observer.clone()));
            return Ok(Box::new(RegisterWorkload::start(store, config, recorder)));
        }
        if spec.kind != "puts" {
            return Err(ScenarioError::Field {
                origin: spec.origin.clone(),
                field: "kind".into(),
                value: spec.kind.clone(),
                reason: "etcd workloads: puts, register".into(),
            });
        }
        let config: PutWorkloadConfig = spec.parse()?;
        let w = PutWorkload::start(self.observer.clone(), config, recorder);
        *self.history.lock().unwrap_or_else(|p| p.into_inner()) = Some(w.history());
        Ok(Box::new(w))
    }

    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let started = recorder.now();
            let status = self.observer.status(node, STATUS_DEADLINE).await;
            let time = recorder.now();
            let (value, error) = match status {
                Ok(s) => (serde_json::to_value(&s).unwrap_or_default(), None),
                Err(e) => (serde_json::Value::Null, Some(e.to_string())),
            };
            recorder.record(Entry::Observation(Observation {
                index: 0,
                time,
                started,
                observation: "etcd-status".into(),
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

/// Checkers without settings still reject unknown keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}
