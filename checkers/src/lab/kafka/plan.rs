//! What a Kafka lab is made of, before anything runs: ports, rift's topology, broker
//! properties (with the test timings), storage formatting, and the JVM command line.
//! Shared by the in-process lab ([`super::KafkaLab`]) and the detached one that
//! `rift lab up kafka` leaves running ([`super::detached`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rift_proxy::topology::{Endpoint, Node, Topology};

use super::runtime::{broker_jar_version, find_java, locate_libs, random_cluster_id};
use crate::lab::LabError;
use crate::lab::process::{LabProcess, Spawn, free_ports, wait_for_listen};
use crate::lab::versions;

/// Endpoint names of every broker in the topology.
pub const CLIENT_ENDPOINT: &str = "client";
pub const REPLICATION_ENDPOINT: &str = "replication";
pub const CONTROLLER_ENDPOINT: &str = "controller";

/// Timings tuned so failure detection takes seconds instead of the defaults' 10–30 s
/// (documented in docs/kafka.md). `replica.fetch.wait.max.ms` must stay below both
/// `replica.socket.timeout.ms` and `replica.lag.time.max.ms` or the broker refuses to
/// start; `controller.quorum.fetch.timeout.ms` below 1000 makes elections flap.
pub const TEST_TIMINGS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("replica.socket.timeout.ms", "3000"),
    ("replica.fetch.wait.max.ms", "500"),
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "3000"),
    ("controller.quorum.fetch.timeout.ms", "1000"),
    ("controller.quorum.election.timeout.ms", "500"),
    ("controller.quorum.election.backoff.max.ms", "500"),
    ("controller.quorum.request.timeout.ms", "1000"),
    ("request.timeout.ms", "3000"),
    ("controller.socket.timeout.ms", "3000"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("auto.leader.rebalance.enable", "false"),
];

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct KafkaLabOptions {
    /// Directory holding the Kafka jars (default: the release named by `version`;
    /// for the newest, `$RIFT_KAFKA_LIBS`, then `.rift/kafka-libs` in the working
    /// directory or the source checkout).
    pub libs_dir: Option<PathBuf>,
    /// The release to run (`3.9`, `4.4` or an exact version; `None`: the newest).
    pub version: Option<String>,
    /// Where configs, data and logs go (default: a fresh directory under the temp dir).
    pub work_dir: Option<PathBuf>,
    /// JVM heap per broker; the CI machine has 2 cores and runs 3–4 brokers.
    pub heap_mb: u32,
    /// Extra broker properties, applied after the test timings.
    pub overrides: Vec<(String, String)>,
    /// How long the whole cluster may take to come up.
    pub start_timeout: Duration,
    /// Keep the work directory after a clean shutdown.
    pub keep_work_dir: bool,
}

impl Default for KafkaLabOptions {
    fn default() -> Self {
        Self {
            libs_dir: None,
            version: None,
            work_dir: None,
            heap_mb: 384,
            overrides: Vec::new(),
            start_timeout: Duration::from_secs(90),
            keep_work_dir: std::env::var_os("RIFT_KEEP_LAB").is_some(),
        }
    }
}

/// One broker's name, id and addresses: rift's listeners and the real ones.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    pub name: String,
    pub id: i32,
    pub client: SocketAddr,
    pub replication: SocketAddr,
    pub controller: SocketAddr,
    pub direct_client: SocketAddr,
    pub direct_replication: SocketAddr,
    pub direct_controller: SocketAddr,
}

/// A planned lab: brokers, files and the programs that will run them.
#[derive(Debug, Clone)]
pub struct KafkaPlan {
    pub brokers: Vec<BrokerPlan>,
    pub cluster_id: String,
    pub work_dir: PathBuf,
    pub java: PathBuf,
    pub libs: PathBuf,
    /// The Kafka version of the broker jar in `libs`.
    pub version: String,
    pub heap_mb: u32,
    pub overrides: Vec<(String, String)>,
}

impl KafkaPlan {
    /// Checks Java and the jars, picks ports (from `base_port` upwards, or a random
    /// range) and a cluster id. Nothing is written yet.
    pub fn new(
        nodes: usize,
        opts: &KafkaLabOptions,
        base_port: Option<u16>,
    ) -> Result<Self, LabError> {
        if !(3..=5).contains(&nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: nodes.to_string(),
                reason: "a Kafka lab has 3 to 5 brokers".into(),
            });
        }
        let java = find_java()?;
        let install = versions::kafka(opts.version.as_deref())?;
        let libs = locate_libs(opts.libs_dir.as_deref().or(install.libs.as_deref()))?;
        let version = broker_jar_version(&libs).unwrap_or_else(|| install.release.version.into());
        let work_dir = match &opts.work_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!(
                "rift-kafka-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )),
        };
        let ports = free_ports(base_port, nodes * 6)?;
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let brokers = (0..nodes)
            .map(|i| {
                let p = &ports[i * 6..i * 6 + 6];
                BrokerPlan {
                    name: format!("kafka{}", i + 1),
                    id: i as i32 + 1,
                    client: addr(p[0]),
                    replication: addr(p[1]),
                    controller: addr(p[2]),
                    direct_client: addr(p[3]),
                    direct_replication: addr(p[4]),
                    direct_controller: addr(p[5]),
                }
            })
            .collect();
        Ok(Self {
            brokers,
            cluster_id: random_cluster_id(),
            work_dir,
            java,
            libs,
            version,
            heap_mb: opts.heap_mb,
            overrides: opts.overrides.clone(),
        })
    }

    /// rift's topology: one node per broker with `client`, `replication` and
    /// `controller` endpoints.
    pub fn topology(&self) -> Topology {
        lab_topology(&self.brokers)
    }

    /// Writes every broker's properties and formats its storage; returns the
    /// properties files in broker order.
    pub async fn write_and_format(&self) -> Result<Vec<PathBuf>, LabError> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| LabError::io(&self.work_dir, e))?;
        let voters = self
            .brokers
            .iter()
            .map(|b| format!("{}@{}", b.id, b.controller))
            .collect::<Vec<_>>()
            .join(",");
        let mut configs = Vec::new();
        for b in &self.brokers {
            let data = self.work_dir.join(format!("{}-data", b.name));
            let text = broker_properties(b, &voters, &data, self.brokers.len(), &self.overrides);
            let path = self.work_dir.join(format!("{}.properties", b.name));
            std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
            configs.push(path);
        }
        format_storage(
            &self.java,
            &self.libs,
            &self.cluster_id,
            &configs,
            &self.work_dir,
        )
        .await?;
        Ok(configs)
    }

    /// Spawns broker `b`'s JVM directly (its PID owns its sockets), logging to
    /// `<work_dir>/<name>.log`.
    pub fn spawn_broker(
        &self,
        b: &BrokerPlan,
        config: &Path,
        detach: bool,
    ) -> Result<(LabProcess, PathBuf), LabError> {
        let log = self.work_dir.join(format!("{}.log", b.name));
        let args = vec![
            format!("-Xmx{}m", self.heap_mb),
            "-Xms64m".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Xss512k".into(),
            "-Djava.awt.headless=true".into(),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info".into(),
            "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS".into(),
            "-cp".into(),
            format!("{}/*", self.libs.display()),
            "kafka.Kafka".into(),
            config.display().to_string(),
        ];
        let process = LabProcess::spawn(
            &b.name,
            Spawn {
                program: &self.java,
                args,
                log: log.clone(),
                detach,
            },
        )?;
        Ok((process, log))
    }

    /// Waits until every broker listens and every broker's own metadata lists all
    /// brokers as live (registered and unfenced). `alive` reports a broker that
    /// exited early, so a crash ends the wait with its log instead of a timeout.
    pub async fn wait_ready(
        &self,
        mut alive: impl FnMut() -> Result<(), LabError>,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        for b in &self.brokers {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = wait_for_listen(b.direct_client, left).await {
                alive()?;
                return Err(e);
            }
        }
        let want = self.brokers.len();
        loop {
            alive()?;
            let mut ready = 0;
            for b in &self.brokers {
                let seen =
                    crate::kafka::client::broker_ids(b.direct_client, Duration::from_secs(2))
                        .await
                        .unwrap_or_default();
                if seen.len() == want {
                    ready += 1;
                }
            }
            if ready == want {
                tracing::info!(brokers = want, "kafka lab ready");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "only {ready} of {want} brokers see the whole cluster after {timeout:?}; logs in {}",
                    self.work_dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The knobs the verdicts depend on, for reports and `lab.json`.
    pub fn settings(&self) -> serde_json::Value {
        let timings: serde_json::Map<String, serde_json::Value> = TEST_TIMINGS
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        serde_json::json!({
            "system": "kafka",
            "brokers": self.brokers.len(),
            "version": self.version,
            "cluster_id": self.cluster_id,
            "heap_mb": self.heap_mb,
            "timings": timings,
            "overrides": self.overrides,
        })
    }
}

fn lab_topology(plans: &[BrokerPlan]) -> Topology {
    let endpoint = |name: &str, listen: SocketAddr, upstream: SocketAddr| Endpoint {
        name: name.to_string(),
        listen,
        upstream: upstream.to_string(),
    };
    Topology {
        api: None,
        nodes: plans
            .iter()
            .map(|p| Node {
                name: p.name.clone(),
                source_ips: Vec::new(),
                source_pids: Vec::new(),
                source_hosts: Vec::new(),
                region: None,
                endpoints: vec![
                    endpoint(CLIENT_ENDPOINT, p.client, p.direct_client),
                    endpoint(REPLICATION_ENDPOINT, p.replication, p.direct_replication),
                    endpoint(CONTROLLER_ENDPOINT, p.controller, p.direct_controller),
                ],
            })
            .collect(),
    }
}

fn broker_properties(
    plan: &BrokerPlan,
    voters: &str,
    data: &Path,
    nodes: usize,
    overrides: &[(String, String)],
) -> String {
    let rf = nodes.min(3);
    let mut props: Vec<(String, String)> = vec![
        ("process.roles".into(), "broker,controller".into()),
        ("node.id".into(), plan.id.to_string()),
        ("controller.quorum.voters".into(), voters.to_string()),
        (
            "listeners".into(),
            format!(
                "CLIENT://{},REPLICATION://{},CONTROLLER://{}",
                plan.direct_client, plan.direct_replication, plan.direct_controller
            ),
        ),
        // CONTROLLER is advertised too: the Raft leader hands out its advertised
        // controller address, and followers would otherwise bypass rift.
        (
            "advertised.listeners".into(),
            format!(
                "CLIENT://{},REPLICATION://{},CONTROLLER://{}",
                plan.client, plan.replication, plan.controller
            ),
        ),
        (
            "listener.security.protocol.map".into(),
            "CLIENT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("inter.broker.listener.name".into(), "REPLICATION".into()),
        ("controller.listener.names".into(), "CONTROLLER".into()),
        ("log.dirs".into(), data.display().to_string()),
        ("num.partitions".into(), "1".into()),
        ("default.replication.factor".into(), rf.to_string()),
        ("auto.create.topics.enable".into(), "false".into()),
        ("offsets.topic.replication.factor".into(), rf.to_string()),
        (
            "transaction.state.log.replication.factor".into(),
            rf.to_string(),
        ),
        ("transaction.state.log.min.isr".into(), "1".into()),
        (
            "share.coordinator.state.topic.replication.factor".into(),
            rf.to_string(),
        ),
        ("share.coordinator.state.topic.min.isr".into(), "1".into()),
        ("num.network.threads".into(), "2".into()),
        ("num.io.threads".into(), "2".into()),
        ("num.replica.fetchers".into(), "1".into()),
        ("background.threads".into(), "2".into()),
        ("log.cleaner.enable".into(), "false".into()),
    ];
    props.extend(
        TEST_TIMINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    for (k, v) in overrides {
        props.retain(|(key, _)| key != k);
        props.push((k.clone(), v.clone()));
    }
    let mut text = format!("# rift Kafka lab: {}\n", plan.name);
    for (k, v) in props {
        text.push_str(&format!("{k}={v}\n"));
    }
    text
}

/// Formats every broker's storage with `kafka.tools.StorageTool` (in parallel: each
/// run is a JVM start).
async fn format_storage(
    java: &Path,
    libs: &Path,
    cluster_id: &str,
    configs: &[PathBuf],
    work_dir: &Path,
) -> Result<(), LabError> {
    let classpath = format!("{}/*", libs.display());
    let mut children = Vec::new();
    for config in configs {
        let log = config.with_extension("format.log");
        let out = std::fs::File::create(&log).map_err(|e| LabError::io(&log, e))?;
        let err = out.try_clone().map_err(|e| LabError::io(&log, e))?;
        let child = tokio::process::Command::new(java)
            .args([
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "-cp",
            ])
            .arg(&classpath)
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
            ])
            .arg("--config")
            .arg(config)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LabError::Spawn {
                program: java.display().to_string(),
                error: e,
            })?;
        children.push((child, log));
    }
    for (mut child, log) in children {
        let status = child.wait().await.map_err(|e| LabError::io(work_dir, e))?;
        if !status.success() {
            return Err(LabError::Exited(
                format!("kafka.tools.StorageTool format ({status})"),
                log,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_advertise_rift_and_listen_on_real_ports() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let plan = BrokerPlan {
            name: "kafka1".into(),
            id: 1,
            client: a(1),
            replication: a(2),
            controller: a(3),
            direct_client: a(4),
            direct_replication: a(5),
            direct_controller: a(6),
        };
        let text = broker_properties(
            &plan,
            "1@127.0.0.1:3",
            Path::new("/d"),
            3,
            &[("replica.lag.time.max.ms".into(), "5000".into())],
        );
        assert!(text.contains(
            "\nlisteners=CLIENT://127.0.0.1:4,REPLICATION://127.0.0.1:5,CONTROLLER://127.0.0.1:6\n"
        ));
        assert!(text.contains("\nadvertised.listeners=CLIENT://127.0.0.1:1,REPLICATION://127.0.0.1:2,CONTROLLER://127.0.0.1:3\n"));
        assert!(text.contains("\ncontroller.quorum.voters=1@127.0.0.1:3\n"));
        assert!(text.contains("\nreplica.lag.time.max.ms=5000\n"));
        assert!(!text.contains("replica.lag.time.max.ms=3000"));
    }
}
