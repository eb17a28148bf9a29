//! MariaDB as a scenario [`Cluster`]: a [`MariaLab`] (primary + replicas behind rift),
//! the `promote` action, the poller's `mariadb-status` observation, the register
//! workload and the history checks.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rift_history::{Entry, Observation, Recorder};
use serde::Deserialize;

use super::checks::{
    AsyncCommit, AsyncCommitConfig, NoLostWrites, NoSettings, STATUS, SemiSyncWait,
};
use super::lab::{MariaLab, members, observer};
use super::observer::{MariaObserver, POLL_DEADLINE};
use super::plan::MariaLabConfig;
use super::replication::{self, Member};
use super::workload::{MariaRegisterConfig, MariaRegisterWorkload, Primary};
use crate::lab::versions::Release;
use crate::scenario::check::CheckerImpl;
use crate::scenario::nemesis::Nemesis;
use crate::scenario::spec::{CheckerSpec, ClusterSpec, WorkloadSpec};
use crate::scenario::system::{AttachOptions, StartOptions, System};
use crate::scenario::{BoxFuture, Cluster, ScenarioError, Workload};

/// `[cluster]` keys for `system = "mariadb"` besides `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MariaSettings {
    /// `"semi-sync"` (default) or `"async"`.
    #[serde(default = "default_replication")]
    pub replication: String,
    /// `rpl_semi_sync_master_timeout`.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub semi_sync_timeout: Duration,
}

fn default_replication() -> String {
    "semi-sync".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

pub const CHECKERS: &[&str] = &["semi-sync-wait", "async-commit", "no-lost-writes"];
pub const ACTIONS: &[&str] = &["promote"];

/// Debian 12's MariaDB, the one release the lab runs.
pub const RELEASES: &[Release] = &[Release {
    line: "10.11",
    version: "10.11",
}];

const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct MariaCluster {
    lab: Option<MariaLab>,
    observer: MariaObserver,
    members: Vec<Member>,
    primary: Primary,
    nemesis: Nemesis,
    info: serde_json::Value,
    semi_sync: bool,
}

impl MariaCluster {
    pub async fn start(
        spec: &ClusterSpec,
        origin: &str,
        options: &StartOptions,
    ) -> Result<Self, ScenarioError> {
        let s: MariaSettings = spec.parse(origin)?;
        let semi_sync = match s.replication.as_str() {
            "semi-sync" => true,
            "async" => false,
            other => {
                return Err(ScenarioError::Field {
                    origin: origin.to_string(),
                    field: "cluster.replication".into(),
                    value: other.to_string(),
                    reason: "\"semi-sync\" or \"async\"".into(),
                });
            }
        };
        let mut config = MariaLabConfig::new(spec.nodes, &options.state_dir);
        config.semi_sync = semi_sync;
        config.semi_sync_timeout_ms = s.semi_sync_timeout.as_millis() as u64;
        config.base_port = options.base_port;
        let lab = MariaLab::start(config).await?;
        let members = members(&lab.plan);
        let info = serde_json::json!({
            "system": "mariadb",
            "mode": "lab",
            "rift_api": lab.api_url(),
            "settings": lab.plan.settings(),
            "members": lab.plan.member_records(),
        });
        Ok(Self {
            observer: observer(&lab.plan),
            primary: Arc::new(RwLock::new(members[0].name.clone())),
            members,
            nemesis: Nemesis::Local(lab.control()),
            lab: Some(lab),
            info,
            semi_sync,
        })
    }

    fn primary(&self) -> String {
        self.primary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The promoted replica takes the writers: what an HA tool's virtual IP or proxy
    /// switch does for real clients.
    async fn promote(&self) -> Result<serde_json::Value, ScenarioError> {
        let old = self.primary();
        let replicas: Vec<Member> = self
            .members
            .iter()
            .filter(|m| m.name != old)
            .cloned()
            .collect();
        let p = replication::promote(&old, &replicas)
            .await
            .map_err(|e| ScenarioError::Cluster(format!("promote: {e}")))?;
        *self.primary.write().unwrap_or_else(|p| p.into_inner()) = p.new_primary.clone();
        Ok(serde_json::to_value(&p).unwrap_or_default())
    }
}

/// MariaDB in the system registry ([`crate::scenario::system::REGISTRY`]).
pub struct Mariadb;

impl System for Mariadb {
    fn name(&self) -> &'static str {
        "mariadb"
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
            Ok(Box::new(MariaCluster::start(spec, origin, options).await?) as Box<dyn Cluster>)
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
                "{origin}: mariadb scenarios start their own lab; --attach is not offered for mariadb yet"
            )))
        })
    }
}

impl Cluster for MariaCluster {
    fn system(&self) -> &'static str {
        "mariadb"
    }

    fn nodes(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    fn consensus_endpoint(&self) -> &'static str {
        "repl"
    }

    fn nemesis(&self) -> &Nemesis {
        &self.nemesis
    }

    /// The primary (the member writes go to), as the lab and `promote` set it.
    fn leader(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { Some(self.primary()) })
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>> {
        Box::pin(async move {
            let primary = self.primary();
            let replicas: Vec<String> =
                self.nodes().into_iter().filter(|n| *n != primary).collect();
            let start = Instant::now();
            replication::wait_replicating(
                &self.observer,
                &primary,
                &replicas,
                self.semi_sync,
                timeout,
            )
            .await
            .map_err(|e| ScenarioError::Cluster(format!("after {:?}: {e}", start.elapsed())))
        })
    }

    fn describe(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let mut parts = vec![format!("primary {}", self.primary())];
            for n in self.nodes() {
                match self.observer.status(&n, Duration::from_millis(300)).await {
                    Ok(s) => parts.push(format!("{n}: {}", replication::describe(&s))),
                    Err(_) => parts.push(format!("{n}: (no answer)")),
                }
            }
            parts.join(" | ")
        })
    }

    fn checker(&self, spec: &CheckerSpec, _origin: &str) -> Result<CheckerImpl, ScenarioError> {
        Ok(match spec.kind.as_str() {
            "semi-sync-wait" => {
                let _: NoSettings = spec.parse()?;
                CheckerImpl::History(Box::new(SemiSyncWait))
            }
            "async-commit" => {
                let c: AsyncCommitConfig = spec.parse()?;
                CheckerImpl::History(Box::new(AsyncCommit(c)))
            }
            "no-lost-writes" => {
                let _: NoSettings = spec.parse()?;
                CheckerImpl::History(Box::new(NoLostWrites))
            }
            other => {
                return Err(ScenarioError::Field {
                    origin: spec.origin.clone(),
                    field: "kind".into(),
                    value: other.to_string(),
                    reason: format!("unknown mariadb checker (known: {})", CHECKERS.join(", ")),
                });
            }
        })
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
                reason: "mariadb workloads: register".into(),
            });
        }
        let config = MariaRegisterConfig::from_spec(spec)?;
        let ports = self
            .members
            .iter()
            .map(|m| (m.name.clone(), m.port))
            .collect();
        Ok(Box::new(MariaRegisterWorkload::start(
            ports,
            self.primary.clone(),
            config,
            recorder,
        )))
    }

    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let started = recorder.now();
            let status = self.observer.status(node, POLL_DEADLINE).await;
            let time = recorder.now();
            let (value, error) = match status {
                Ok(s) => (serde_json::to_value(&s).unwrap_or_default(), None),
                Err(e) => (serde_json::Value::Null, Some(e.to_string())),
            };
            recorder.record(Entry::Observation(Observation {
                index: 0,
                time,
                started,
                observation: STATUS.into(),
                node: node.to_string(),
                value,
                error,
            }));
        })
    }

    fn poll_interval(&self) -> Duration {
        POLL_INTERVAL
    }

    fn actions(&self) -> &'static [&'static str] {
        ACTIONS
    }

    fn act<'a>(
        &'a self,
        name: &'a str,
        _recorder: &'a Recorder,
    ) -> BoxFuture<'a, Result<serde_json::Value, ScenarioError>> {
        Box::pin(async move {
            match name {
                "promote" => self.promote().await,
                other => Err(ScenarioError::Cluster(format!(
                    "mariadb clusters have no action {other:?}"
                ))),
            }
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
