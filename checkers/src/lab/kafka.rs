//! The Kafka lab: a real Apache Kafka 4.x KRaft cluster (3 or 4 brokers in combined
//! broker+controller mode) on loopback, with rift in the middle of every link.
//!
//! Each broker listens on real ports for three listeners (CLIENT, REPLICATION,
//! CONTROLLER) but advertises rift's per-broker listeners for all three, and the static
//! `controller.quorum.voters` names rift's controller listeners too. So every Raft
//! fetch, heartbeat, AlterPartition, replica fetch and client request crosses rift,
//! where it can be cut per (source node, destination node, endpoint).
//!
//! Start order matters: rift first (in-process), then each broker JVM spawned directly
//! (never through a shell: rift identifies a broker's outgoing connections by the PID
//! that owns the socket) and registered as that node's source right after the spawn.
//! Observers use the brokers' real ports ([`KafkaBroker::direct_client`]) so a fault
//! never blinds them; workloads use rift's ports and are placed by the fault as the
//! identity `client`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rift_proxy::server::{ProxyOptions, RunningProxy};
use rift_proxy::topology::{Endpoint, Node, Topology};

use super::LabError;
use super::process::{LabProcess, Spawn, free_ports, wait_for_listen};

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
    /// Directory holding the Kafka jars (default: `$RIFT_KAFKA_LIBS`, then
    /// `.rift/kafka-libs` in the working directory or the source checkout).
    pub libs_dir: Option<PathBuf>,
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
            work_dir: None,
            heap_mb: 384,
            overrides: Vec::new(),
            start_timeout: Duration::from_secs(90),
            keep_work_dir: std::env::var_os("RIFT_KEEP_LAB").is_some(),
        }
    }
}

/// One broker: its node name and id, ports, and process.
#[derive(Debug)]
pub struct KafkaBroker {
    pub name: String,
    pub id: i32,
    /// rift's listeners for this broker (what the cluster advertises).
    pub client: SocketAddr,
    pub replication: SocketAddr,
    pub controller: SocketAddr,
    /// The broker's real listeners.
    pub direct_client: SocketAddr,
    pub direct_replication: SocketAddr,
    pub direct_controller: SocketAddr,
    pub log: PathBuf,
    pub config: PathBuf,
    process: LabProcess,
}

impl KafkaBroker {
    pub fn pid(&self) -> u32 {
        self.process.pid
    }
}

/// A running Kafka lab. Dropping it kills the brokers; [`KafkaLab::shutdown`] stops
/// them cleanly and removes the work directory.
pub struct KafkaLab {
    pub brokers: Vec<KafkaBroker>,
    pub cluster_id: String,
    pub work_dir: PathBuf,
    pub topology: Topology,
    proxy: Option<RunningProxy>,
    keep_work_dir: bool,
}

impl KafkaLab {
    /// Starts rift and a `nodes`-broker KRaft cluster behind it, and waits until every
    /// broker is registered and unfenced.
    #[tracing::instrument(skip(opts))]
    pub async fn start(nodes: usize, opts: KafkaLabOptions) -> Result<KafkaLab, LabError> {
        if !(3..=5).contains(&nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: nodes.to_string(),
                reason: "a Kafka lab has 3 to 5 brokers".into(),
            });
        }
        let java = find_java()?;
        let libs = locate_libs(opts.libs_dir.as_deref())?;
        let work_dir = match &opts.work_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!(
                "rift-kafka-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )),
        };
        std::fs::create_dir_all(&work_dir).map_err(|e| LabError::io(&work_dir, e))?;

        let ports = free_ports(None, nodes * 6)?;
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut plans = Vec::new();
        for i in 0..nodes {
            let p = &ports[i * 6..i * 6 + 6];
            plans.push(BrokerPlan {
                name: format!("kafka{}", i + 1),
                id: i as i32 + 1,
                client: addr(p[0]),
                replication: addr(p[1]),
                controller: addr(p[2]),
                direct_client: addr(p[3]),
                direct_replication: addr(p[4]),
                direct_controller: addr(p[5]),
            });
        }
        let topology = lab_topology(&plans);
        let cluster_id = random_cluster_id();
        let voters = plans
            .iter()
            .map(|b| format!("{}@{}", b.id, b.controller))
            .collect::<Vec<_>>()
            .join(",");

        let mut configs = Vec::new();
        for plan in &plans {
            let data = work_dir.join(format!("{}-data", plan.name));
            let text = broker_properties(plan, &voters, &data, nodes, &opts.overrides);
            let path = work_dir.join(format!("{}.properties", plan.name));
            std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
            configs.push(path);
        }
        format_storage(&java, &libs, &cluster_id, &configs, &work_dir).await?;

        let proxy = rift_proxy::server::start(
            topology.clone(),
            ProxyOptions {
                api_listen: Some(addr(0)),
                events_path: Some(work_dir.join("events.jsonl")),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| LabError::Proxy(e.to_string()))?;
        let control = proxy.control();

        let mut lab = KafkaLab {
            brokers: Vec::new(),
            cluster_id,
            work_dir: work_dir.clone(),
            topology,
            proxy: Some(proxy),
            keep_work_dir: opts.keep_work_dir,
        };
        let classpath = format!("{}/*", libs.display());
        for (plan, config) in plans.into_iter().zip(configs) {
            let log = work_dir.join(format!("{}.log", plan.name));
            let args = vec![
                format!("-Xmx{}m", opts.heap_mb),
                "-Xms64m".into(),
                "-XX:+UseSerialGC".into(),
                "-XX:TieredStopAtLevel=1".into(),
                "-Xss512k".into(),
                "-Djava.awt.headless=true".into(),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info".into(),
                "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS".into(),
                "-cp".into(),
                classpath.clone(),
                "kafka.Kafka".into(),
                config.display().to_string(),
            ];
            let process = LabProcess::spawn(
                &plan.name,
                Spawn {
                    program: &java,
                    args,
                    log: log.clone(),
                    detach: false,
                },
            )?;
            // Registered before the JVM has loaded its first class: long before its
            // first dial reaches rift.
            control
                .register_source(&plan.name, &[process.pid], &[])
                .map_err(|e| LabError::Proxy(e.to_string()))?;
            tracing::info!(broker = %plan.name, pid = process.pid, "broker started");
            lab.brokers.push(KafkaBroker {
                name: plan.name,
                id: plan.id,
                client: plan.client,
                replication: plan.replication,
                controller: plan.controller,
                direct_client: plan.direct_client,
                direct_replication: plan.direct_replication,
                direct_controller: plan.direct_controller,
                log,
                config,
                process,
            });
        }
        lab.wait_ready(opts.start_timeout).await?;
        Ok(lab)
    }

    /// Waits until every broker listens and all brokers are unfenced, as seen by
    /// every broker's own metadata.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.brokers.len() {
            let addr = self.brokers[i].direct_client;
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = wait_for_listen(addr, left).await {
                self.check_alive()?;
                return Err(e);
            }
        }
        let want = self.brokers.len();
        loop {
            self.check_alive()?;
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

    fn check_alive(&mut self) -> Result<(), LabError> {
        for b in &mut self.brokers {
            if !b.process.is_running() {
                return Err(LabError::Exited(b.name.clone(), b.log.clone()));
            }
        }
        Ok(())
    }

    /// The handle to rift's control plane (apply faults, heal, status).
    pub fn control(&self) -> rift_proxy::control::Control {
        self.proxy
            .as_ref()
            .expect("proxy runs until shutdown")
            .control()
    }

    /// rift's control API URL.
    pub fn api_url(&self) -> String {
        self.proxy
            .as_ref()
            .expect("proxy runs until shutdown")
            .api_url()
    }

    /// The broker with node name `name`.
    pub fn broker(&self, name: &str) -> Option<&KafkaBroker> {
        self.brokers.iter().find(|b| b.name == name)
    }

    /// The broker with Kafka node id `id`.
    pub fn broker_by_id(&self, id: i32) -> Option<&KafkaBroker> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Bootstrap list through rift (workloads placed by faults as `client`).
    pub fn bootstrap(&self) -> String {
        join_addrs(self.brokers.iter().map(|b| b.client))
    }

    /// Bootstrap list through rift limited to some brokers (a client on one side).
    pub fn bootstrap_of(&self, names: &[String]) -> String {
        join_addrs(
            self.brokers
                .iter()
                .filter(|b| names.contains(&b.name))
                .map(|b| b.client),
        )
    }

    pub fn node_names(&self) -> Vec<String> {
        self.brokers.iter().map(|b| b.name.clone()).collect()
    }

    /// The lab's settings for reports: versions of the knobs the verdicts depend on.
    pub fn settings(&self) -> serde_json::Value {
        let timings: serde_json::Map<String, serde_json::Value> = TEST_TIMINGS
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        serde_json::json!({
            "system": "kafka",
            "brokers": self.brokers.len(),
            "cluster_id": self.cluster_id,
            "timings": timings,
        })
    }

    /// Heals every fault, stops the brokers (SIGTERM, then SIGKILL) and rift.
    pub async fn shutdown(mut self) {
        if let Some(proxy) = self.proxy.as_ref() {
            proxy.control().heal();
        }
        // Brokers stop in parallel: a controlled shutdown waits on the controller.
        let mut handles = Vec::new();
        for mut b in std::mem::take(&mut self.brokers) {
            handles.push(tokio::task::spawn_blocking(move || {
                b.process.stop(Duration::from_secs(10));
            }));
        }
        for h in handles {
            let _ = h.await;
        }
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown().await;
        }
        if !self.keep_work_dir {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
    }
}

impl Drop for KafkaLab {
    fn drop(&mut self) {
        // Reached without shutdown() only when a test failed: kill hard and keep the
        // logs for the post-mortem.
        for b in &mut self.brokers {
            b.process.kill();
        }
        if !self.brokers.is_empty() {
            eprintln!("kafka lab logs kept in {}", self.work_dir.display());
        }
    }
}

struct BrokerPlan {
    name: String,
    id: i32,
    client: SocketAddr,
    replication: SocketAddr,
    controller: SocketAddr,
    direct_client: SocketAddr,
    direct_replication: SocketAddr,
    direct_controller: SocketAddr,
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
                source: e,
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

/// `$JAVA_HOME/bin/java`, else `java` on PATH; Java 17 or newer.
pub fn find_java() -> Result<PathBuf, LabError> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(PathBuf::from(home).join("bin/java"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("java")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Spawn {
            program: "java".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no java in $JAVA_HOME/bin or PATH; Java 17 is required",
            ),
        })
}

/// The directory with the Kafka jars, checked to contain the broker jar.
pub fn locate_libs(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    let dir = match explicit {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("RIFT_KAFKA_LIBS") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = PathBuf::from(".rift/kafka-libs");
                if cwd.is_dir() {
                    cwd
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rift/kafka-libs")
                }
            }
        },
    };
    let has_broker = std::fs::read_dir(&dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with("kafka_2.13-") && name.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    if !has_broker {
        return Err(LabError::Config {
            field: "RIFT_KAFKA_LIBS".into(),
            value: dir.display().to_string(),
            reason: "no kafka_2.13-*.jar there; run scripts/setup.sh (scripts/setup.d/30-kafka.sh)"
                .into(),
        });
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

fn join_addrs(addrs: impl Iterator<Item = SocketAddr>) -> String {
    addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

/// A random cluster id in Kafka's format: 16 bytes, URL-safe base64 without padding.
pub fn random_cluster_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    // Kafka reserves the all-zero id and ids starting with '-' are awkward on a
    // command line; the top bits of the first byte pick the first character.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    base64_url(&bytes)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_kafka_shaped() {
        let id = random_cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(!id.starts_with('-'));
        assert_eq!(base64_url(b"Man"), "TWFu");
        assert_eq!(base64_url(b"Ma"), "TWE");
    }

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

    #[test]
    fn missing_jars_name_the_setup_script() {
        let err = locate_libs(Some(Path::new("/nonexistent/kafka-libs"))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/kafka-libs"), "{text}");
        assert!(text.contains("scripts/setup.sh"), "{text}");
    }
}
