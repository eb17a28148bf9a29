//! The Cassandra lab: a real Apache Cassandra 5.0 cluster (3 to 5 nodes, one JVM each)
//! on loopback with rift on every storage (internode) and native (CQL) link.
//!
//! Start order: rift first, then each JVM spawned directly (never through a shell:
//! rift identifies a node's outgoing connections by the PID that owns the socket) and
//! registered as that node's source right after the spawn. All nodes are seeds with
//! their tokens given, so they start together without bootstrap streaming.
//! Observers and the workload use the nodes' real native ports, so a fault never cuts
//! a client from its coordinator; users' drivers use rift's native listeners (the
//! nodes' `broadcast_rpc_address`) and are placed by a fault as the identity `client`.
//!
//! - [`plan`]: addresses, ports, topology, `cassandra.yaml`, JVM command line.
//! - [`CassandraLab`]: rift in-process and the nodes as children (tests, scenarios).
//! - [`detached`]: a background `rift proxy` and detached JVMs (`rift lab up cassandra`).

pub mod detached;
pub mod plan;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rift_proxy::server::{ProxyOptions, RunningProxy};
use rift_proxy::topology::Topology;

pub use plan::{CassandraLabOptions, CassandraPlan, NATIVE_ENDPOINT, STORAGE_ENDPOINT};

use super::observer::CassandraObserver;
use crate::lab::LabError;
use crate::lab::process::{LabProcess, wait_for_listen};

/// One running node.
#[derive(Debug)]
pub struct CassandraNode {
    pub name: String,
    pub log: PathBuf,
    process: LabProcess,
}

impl CassandraNode {
    pub fn pid(&self) -> u32 {
        self.process.pid
    }
}

/// A running Cassandra lab. Dropping it kills the nodes (keeping their logs);
/// [`CassandraLab::shutdown`] stops them and removes the work directory.
pub struct CassandraLab {
    pub plan: CassandraPlan,
    pub nodes: Vec<CassandraNode>,
    pub topology: Topology,
    proxy: Option<RunningProxy>,
    keep_work_dir: bool,
}

impl CassandraLab {
    /// Starts rift and an `nodes`-node cluster behind it, and waits until every node
    /// sees every other as NORMAL through gossip.
    #[tracing::instrument(name = "cassandra_lab", skip(opts))]
    pub async fn start(nodes: usize, opts: CassandraLabOptions) -> Result<Self, LabError> {
        let plan = CassandraPlan::new(nodes, &opts)?;
        plan.write_configs()?;
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
        let mut lab = CassandraLab {
            plan: plan.clone(),
            nodes: Vec::new(),
            topology,
            proxy: Some(proxy),
            keep_work_dir: opts.keep_work_dir,
        };
        for n in &plan.nodes {
            let (process, log) = plan.spawn_node(n, false)?;
            // Registered before the JVM has loaded its first class: long before its
            // first dial reaches rift.
            let pid = process.pid;
            lab.nodes.push(CassandraNode {
                name: n.name.clone(),
                log,
                process,
            });
            control
                .register_source(&n.name, &[pid], &[])
                .map_err(|e| LabError::Proxy(e.to_string()))?;
            tracing::info!(node = %n.name, pid, "cassandra node started");
        }
        let nodes = &mut lab.nodes;
        wait_ready(
            &plan,
            || {
                for n in nodes.iter_mut() {
                    if !n.process.is_running() {
                        return Err(LabError::Exited(n.name.clone(), n.log.clone()));
                    }
                }
                Ok(())
            },
            opts.start_timeout,
        )
        .await?;
        Ok(lab)
    }

    pub fn control(&self) -> rift_proxy::control::Control {
        self.proxy
            .as_ref()
            .expect("proxy runs until shutdown")
            .control()
    }

    pub fn api_url(&self) -> String {
        self.proxy
            .as_ref()
            .expect("proxy runs until shutdown")
            .api_url()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Heals every fault, stops the nodes (SIGTERM, then SIGKILL) and rift.
    pub async fn shutdown(mut self) {
        if let Some(proxy) = self.proxy.as_ref() {
            proxy.control().heal();
        }
        // The data is deleted next: no drain or flush to wait for.
        for n in &mut self.nodes {
            n.process.kill();
        }
        self.nodes.clear();
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown().await;
        }
        if !self.keep_work_dir {
            let _ = std::fs::remove_dir_all(&self.plan.work_dir);
        }
    }
}

impl Drop for CassandraLab {
    fn drop(&mut self) {
        // Reached without shutdown() only when a start or a test failed: kill hard and
        // keep the logs for the post-mortem.
        for n in &mut self.nodes {
            n.process.kill();
        }
        if !self.nodes.is_empty() {
            eprintln!(
                "cassandra lab logs kept in {}",
                self.plan.work_dir.display()
            );
        }
    }
}

/// Waits until every node listens on its real native port and, asked over CQL, sees
/// every other node as NORMAL in its gossip state. `alive` reports a node that exited,
/// so a crash ends the wait with its log instead of a timeout.
pub async fn wait_ready(
    plan: &CassandraPlan,
    mut alive: impl FnMut() -> Result<(), LabError>,
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    for n in &plan.nodes {
        loop {
            alive()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LabError::Timeout(format!(
                    "{} does not listen on {} after {timeout:?}; logs in {}",
                    n.name,
                    n.native(plan),
                    plan.work_dir.display()
                )));
            }
            // Short waits so that a JVM that died is reported with its log.
            if wait_for_listen(n.native(plan), left.min(Duration::from_secs(2)))
                .await
                .is_ok()
            {
                break;
            }
        }
    }
    let observer = CassandraObserver::new(plan.direct_natives(), plan.rift_addresses());
    let want = plan.nodes.len();
    loop {
        alive()?;
        let mut ready = 0;
        let mut views = Vec::new();
        for n in &plan.nodes {
            match observer.ring(&n.name, Duration::from_secs(3)).await {
                Ok(view) => {
                    if view.normal_peers() == want {
                        ready += 1;
                    }
                    views.push(format!("{}: {}", n.name, view.describe()));
                }
                Err(e) => views.push(format!("{}: {e}", n.name)),
            }
        }
        if ready == want {
            tracing::info!(nodes = want, "cassandra lab ready");
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "only {ready} of {want} nodes see the whole ring as NORMAL after {timeout:?} \
                 ({}); logs in {}",
                views.join("; "),
                plan.work_dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
