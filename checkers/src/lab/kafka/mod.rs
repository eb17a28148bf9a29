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
//!
//! - [`plan`]: ports, topology, broker properties and timings, storage format, JVM.
//! - [`KafkaLab`]: rift in-process and brokers as children (tests, `rift scenario`).
//! - [`detached`]: a background `rift proxy` and detached brokers (`rift lab up kafka`).

pub mod detached;
pub mod plan;
pub mod runtime;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rift_proxy::server::{ProxyOptions, RunningProxy};
use rift_proxy::topology::Topology;

pub use plan::{
    CLIENT_ENDPOINT, CONTROLLER_ENDPOINT, KafkaLabOptions, KafkaPlan, REPLICATION_ENDPOINT,
    TEST_TIMINGS,
};
pub use runtime::{broker_jar_version, find_java, locate_libs, random_cluster_id};

use super::LabError;
use super::process::LabProcess;

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
    plan: KafkaPlan,
    proxy: Option<RunningProxy>,
    keep_work_dir: bool,
}

impl KafkaLab {
    /// Starts rift and a `nodes`-broker KRaft cluster behind it, and waits until every
    /// broker is registered and unfenced.
    #[tracing::instrument(skip(opts))]
    pub async fn start(nodes: usize, opts: KafkaLabOptions) -> Result<KafkaLab, LabError> {
        let plan = KafkaPlan::new(nodes, &opts, None)?;
        let configs = plan.write_and_format().await?;
        let topology = plan.topology();
        let proxy = rift_proxy::server::start(
            topology.clone(),
            ProxyOptions {
                api_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                events_path: Some(plan.work_dir.join("events.jsonl")),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| LabError::Proxy(e.to_string()))?;
        let control = proxy.control();
        let mut lab = KafkaLab {
            brokers: Vec::new(),
            cluster_id: plan.cluster_id.clone(),
            work_dir: plan.work_dir.clone(),
            topology,
            plan: plan.clone(),
            proxy: Some(proxy),
            keep_work_dir: opts.keep_work_dir,
        };
        for (b, config) in plan.brokers.iter().zip(configs) {
            let (process, log) = plan.spawn_broker(b, &config, false)?;
            // Registered before the JVM has loaded its first class: long before its
            // first dial reaches rift.
            control
                .register_source(&b.name, &[process.pid], &[])
                .map_err(|e| LabError::Proxy(e.to_string()))?;
            tracing::info!(broker = %b.name, pid = process.pid, "broker started");
            lab.brokers.push(KafkaBroker {
                name: b.name.clone(),
                id: b.id,
                client: b.client,
                replication: b.replication,
                controller: b.controller,
                direct_client: b.direct_client,
                direct_replication: b.direct_replication,
                direct_controller: b.direct_controller,
                log,
                config,
                process,
            });
        }
        let brokers = &mut lab.brokers;
        lab.plan
            .wait_ready(
                || {
                    for b in brokers.iter_mut() {
                        if !b.process.is_running() {
                            return Err(LabError::Exited(b.name.clone(), b.log.clone()));
                        }
                    }
                    Ok(())
                },
                opts.start_timeout,
            )
            .await?;
        Ok(lab)
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

    /// The lab's settings for reports: the knobs the verdicts depend on.
    pub fn settings(&self) -> serde_json::Value {
        self.plan.settings()
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

fn join_addrs(addrs: impl Iterator<Item = SocketAddr>) -> String {
    addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}
