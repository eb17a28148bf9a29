//! Kafka as a scenario [`Cluster`]: starts a [`KafkaLab`] (or attaches to brokers
//! behind a running `rift proxy`), names the active KRaft controller as the `leader`
//! role, and builds the Kafka checkers from a scenario's `[[checker]]` tables.
//!
//! ```toml
//! [cluster]
//! system = "kafka"
//! nodes = 3
//! heap_mb = 384                      # per broker JVM
//! broker = { "replica.lag.time.max.ms" = "3000" }   # extra broker properties
//! ```
//!
//! Kafka checkers drive their own producers (each checker's driver), so Kafka
//! scenarios take no `[workload]`; every checker judges the recorded history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rift_history::Recorder;
use serde::Deserialize;

use super::checks::{KafkaTimings, acks, active_controller, isr, leadership, loss, quorum};
use super::{BrokerInfo, ClusterInfo, client};
use crate::lab::kafka::{CONTROLLER_ENDPOINT, KafkaLab, KafkaLabOptions};
use crate::scenario::check::CheckerImpl;
use crate::scenario::nemesis::Nemesis;
use crate::scenario::spec::{CheckerSpec, ClusterSpec, WorkloadSpec};
use crate::scenario::system::{AttachOptions, StartOptions, System};
use crate::scenario::{BoxFuture, Cluster, ScenarioError, Workload};

/// `[cluster]` keys for `system = "kafka"` besides `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    #[serde(default = "default_heap")]
    pub heap_mb: u32,
    /// Extra broker properties, applied after the lab's test timings.
    #[serde(default)]
    pub broker: BTreeMap<String, toml::Value>,
    /// The Kafka release (`3.9`, `4.4`); the lab's newest when absent.
    #[serde(default)]
    pub version: Option<String>,
}

fn default_heap() -> u32 {
    384
}

pub const CHECKERS: &[&str] = &[
    "isr-shrink",
    "acks-all-rejection",
    "leader-isolation-acks",
    "leader-step-down",
    "quorum-availability",
    "no-lost-records",
    "log",
    "pacelc",
];

pub struct KafkaCluster {
    info: ClusterInfo,
    /// The failure-detection settings limits derive from.
    timings: KafkaTimings,
    nemesis: Nemesis,
    lab: Option<KafkaLab>,
    report_info: serde_json::Value,
}

impl KafkaCluster {
    pub async fn start(
        spec: &ClusterSpec,
        origin: &str,
        options: &StartOptions,
    ) -> Result<Self, ScenarioError> {
        let s: KafkaSettings = spec.parse(origin)?;
        let mut overrides = Vec::new();
        for (k, v) in &s.broker {
            let value = match v {
                toml::Value::String(t) => t.clone(),
                toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                    v.to_string()
                }
                other => {
                    return Err(ScenarioError::Field {
                        origin: origin.to_string(),
                        field: format!("cluster.broker.{k}"),
                        value: other.to_string(),
                        reason: "a broker property is a string, number or boolean".into(),
                    });
                }
            };
            overrides.push((k.clone(), value));
        }
        let opts = KafkaLabOptions {
            work_dir: Some(options.state_dir.join("kafka")),
            heap_mb: s.heap_mb,
            overrides,
            version: s.version,
            ..Default::default()
        };
        Ok(Self::from_lab(KafkaLab::start(spec.nodes, opts).await?))
    }

    /// Wraps a lab started by the caller (tests share one lab across scenarios).
    pub fn from_lab(lab: KafkaLab) -> Self {
        let info = ClusterInfo::from_lab(&lab);
        let report_info = serde_json::json!({
            "system": "kafka",
            "mode": "lab",
            "rift_api": lab.api_url(),
            "settings": lab.settings(),
            "brokers": info.brokers,
        });
        Self {
            nemesis: Nemesis::Local(lab.control()),
            timings: KafkaTimings::from_settings(&lab.settings()),
            info,
            lab: Some(lab),
            report_info,
        }
    }

    /// Attaches to brokers behind a running `rift proxy` whose topology names, per
    /// node, `client` and `controller` endpoints (rift's listen address and the real
    /// upstream); broker ids are read from the brokers' own metadata. `endpoints`
    /// (NAME=HOST:PORT) may override a broker's real client address.
    pub async fn attach(
        spec: &ClusterSpec,
        origin: &str,
        options: &AttachOptions,
    ) -> Result<Self, ScenarioError> {
        let _: KafkaSettings = spec.parse(origin)?;
        let nemesis = Nemesis::Remote(rift_proxy::client::ApiClient::new(&options.api_url));
        let topology = nemesis.topology().await?;
        let names = topology.node_names();
        if let Some((n, _)) = options.endpoints.iter().find(|(n, _)| !names.contains(n)) {
            return Err(ScenarioError::Cluster(format!(
                "--endpoint {n}=...: {n} is not a node of the proxy's topology ({})",
                names.join(", ")
            )));
        }
        let mut brokers = Vec::new();
        for node in &topology.nodes {
            let endpoint = |name: &str| {
                node.endpoints
                    .iter()
                    .find(|e| e.name == name)
                    .ok_or_else(|| {
                        ScenarioError::Cluster(format!(
                            "topology node {} has no `{name}` endpoint",
                            node.name
                        ))
                    })
            };
            let client_ep = endpoint("client")?;
            let ctl_ep = endpoint(CONTROLLER_ENDPOINT)?;
            let resolve = |upstream: &str| -> Result<std::net::SocketAddr, ScenarioError> {
                use std::net::ToSocketAddrs;
                upstream
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        ScenarioError::Cluster(format!(
                            "topology node {}: cannot resolve {upstream:?} from here (give --endpoint {}=HOST:PORT)",
                            node.name, node.name
                        ))
                    })
            };
            // An --endpoint NAME=HOST:PORT names the broker's real client listener
            // when the topology's upstream is not reachable from here.
            let direct_client = match options.endpoints.iter().find(|(n, _)| *n == node.name) {
                Some((_, url)) => resolve(strip_scheme(url))?,
                None => resolve(&client_ep.upstream)?,
            };
            let view = client::metadata_from(direct_client, None, Duration::from_secs(5))
                .await
                .map_err(|e| ScenarioError::Cluster(format!("{}: {e}", node.name)))?;
            let md_id = broker_id_at(direct_client, client_ep.listen).await;
            let id = md_id.ok_or_else(|| {
                ScenarioError::Cluster(format!(
                    "{}: no broker in {:?} advertises {}",
                    node.name, view.brokers, client_ep.listen
                ))
            })?;
            brokers.push(BrokerInfo {
                name: node.name.clone(),
                id,
                client: client_ep.listen,
                direct_client,
                direct_controller: resolve(&ctl_ep.upstream)?,
            });
        }
        if brokers.len() != spec.nodes {
            return Err(ScenarioError::Cluster(format!(
                "{origin}: cluster.nodes = {} but the proxy's topology has {} nodes",
                spec.nodes,
                brokers.len()
            )));
        }
        let info = ClusterInfo { brokers };
        Ok(Self {
            report_info: serde_json::json!({
                "system": "kafka",
                "mode": "attach",
                "rift_api": options.api_url,
                "brokers": info.brokers,
            }),
            info,
            // Not started by rift: Kafka's own defaults (a scenario may set limits).
            timings: KafkaTimings::default(),
            nemesis,
            lab: None,
        })
    }

    pub fn info(&self) -> &ClusterInfo {
        &self.info
    }

    pub fn lab(&self) -> Option<&KafkaLab> {
        self.lab.as_ref()
    }
}

fn strip_scheme(url: &str) -> &str {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/')
}

/// The id of the broker that advertises `advertised` as its client listener.
async fn broker_id_at(
    direct: std::net::SocketAddr,
    advertised: std::net::SocketAddr,
) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", direct.to_string())
            .set("group.id", "rift-attach")
            .create()
            .ok()?;
        let md = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
        // rift may listen on 0.0.0.0 while brokers advertise a concrete address.
        md.brokers()
            .iter()
            .find(|b| {
                b.port() == i32::from(advertised.port())
                    && (advertised.ip().is_unspecified() || b.host() == advertised.ip().to_string())
            })
            .map(|b| b.id())
    })
    .await
    .ok()
    .flatten()
}

/// Kafka in the system registry ([`crate::scenario::system::REGISTRY`]).
pub struct Kafka;

impl System for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn checkers(&self) -> &'static [&'static str] {
        CHECKERS
    }

    fn releases(&self) -> &'static [crate::lab::versions::Release] {
        crate::lab::versions::KAFKA_RELEASES
    }

    fn start<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a StartOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(KafkaCluster::start(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }

    fn attach<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a AttachOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>> {
        Box::pin(async move {
            Ok(Box::new(KafkaCluster::attach(spec, origin, options).await?) as Box<dyn Cluster>)
        })
    }
}

impl Cluster for KafkaCluster {
    fn system(&self) -> &'static str {
        "kafka"
    }

    fn nodes(&self) -> Vec<String> {
        self.info.names()
    }

    fn consensus_endpoint(&self) -> &'static str {
        CONTROLLER_ENDPOINT
    }

    fn nemesis(&self) -> &Nemesis {
        &self.nemesis
    }

    fn leader(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { active_controller(&self.info).await.map(|(n, _)| n) })
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>> {
        Box::pin(async move {
            let start = Instant::now();
            let want: Vec<i32> = {
                let mut ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
                ids.sort_unstable();
                ids
            };
            loop {
                let mut healthy = active_controller(&self.info).await.is_some();
                let mut seen = Vec::new();
                for b in &self.info.brokers {
                    let ids = client::broker_ids(b.direct_client, Duration::from_secs(2)).await;
                    healthy &= ids.as_ref().is_ok_and(|ids| *ids == want);
                    seen.push((b.name.clone(), ids.map_err(|e| e.to_string())));
                }
                if healthy {
                    return Ok(());
                }
                if start.elapsed() > timeout {
                    return Err(ScenarioError::Cluster(format!(
                        "brokers do not all see {want:?} with an active controller after {timeout:?}: {seen:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    fn describe(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            match active_controller(&self.info).await {
                Some((n, v)) => format!("controller {n} (epoch {})", v.leader_epoch),
                None => "no active controller".to_string(),
            }
        })
    }

    fn checker(&self, spec: &CheckerSpec, _origin: &str) -> Result<CheckerImpl, ScenarioError> {
        fn driven(
            (driver, check): (
                impl crate::scenario::check::Driver + 'static,
                impl crate::scenario::check::HistoryCheck,
            ),
        ) -> CheckerImpl {
            CheckerImpl::Driven {
                driver: Box::new(driver),
                check: Box::new(check),
            }
        }
        let (i, t) = (&self.info, self.timings);
        Ok(match spec.kind.as_str() {
            "isr-shrink" => driven(isr::build(i, spec.parse()?, t)),
            "acks-all-rejection" => driven(acks::build(i, spec.parse()?, t)),
            "leader-isolation-acks" => driven(loss::leader_isolation::build(i, spec.parse()?)),
            "leader-step-down" => driven(leadership::build(i, spec.parse()?, t)),
            "quorum-availability" => driven(quorum::build(i, spec.parse()?, t)),
            "no-lost-records" => driven(loss::no_lost::build(i, spec.parse()?)),
            "log" => driven(super::log_check::build(i, spec.parse()?)),
            "pacelc" => driven(crate::pacelc::kafka::build(i, spec.parse()?, &spec.origin)?),
            other => {
                return Err(ScenarioError::Field {
                    origin: spec.origin.clone(),
                    field: "kind".into(),
                    value: other.to_string(),
                    reason: format!("unknown kafka checker (known: {})", CHECKERS.join(", ")),
                });
            }
        })
    }

    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(b) = self.info.by_name(node) {
                super::observe::observe_broker(b, recorder).await;
            }
        })
    }

    fn poll_interval(&self) -> Duration {
        super::observe::POLL_INTERVAL
    }

    fn workload(
        &self,
        spec: &WorkloadSpec,
        _recorder: &Recorder,
    ) -> Result<Box<dyn Workload>, ScenarioError> {
        Err(ScenarioError::Field {
            origin: spec.origin.clone(),
            field: "kind".into(),
            value: spec.kind.clone(),
            reason:
                "kafka scenarios take no [workload]: the kafka checkers run their own producers"
                    .into(),
        })
    }

    fn info(&self) -> serde_json::Value {
        self.report_info.clone()
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(lab) = self.lab {
                lab.shutdown().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_lose_their_scheme() {
        assert_eq!(strip_scheme("kafka://127.0.0.1:9092/"), "127.0.0.1:9092");
        assert_eq!(strip_scheme("127.0.0.1:9092"), "127.0.0.1:9092");
    }

    #[test]
    fn settings_reject_unknown_keys_and_bad_values() {
        let spec = |text: &str| ClusterSpec {
            system: "kafka".into(),
            nodes: 3,
            settings: toml::from_str(text).unwrap(),
        };
        let ok: KafkaSettings = spec("heap_mb = 256\nbroker = { \"num.io.threads\" = 2 }")
            .parse("f.toml")
            .unwrap();
        assert_eq!(ok.heap_mb, 256);
        let err = spec("heapmb = 1")
            .parse::<KafkaSettings>("f.toml")
            .unwrap_err();
        assert!(err.to_string().contains("heapmb"), "{err}");
    }
}
