//! The ZooKeeper lab: N real ZooKeeper 3.9 servers (zk1..zkN) on loopback, every quorum
//! and election link through rift ([`super::plan`] says how). rift starts first; each
//! server's JVM is spawned directly and its PID registered with rift right after, long
//! before its first dial.
//!
//! Timings: `tickTime` 200 ms, `initLimit` 5, `syncLimit` 5 ticks, so a follower that
//! stops hearing from its leader (or a leader from a quorum of followers) gives up after
//! about a second, instead of the 4–10 s of common production settings. Documented with
//! what they produced in docs/zookeeper.md.

use std::path::Path;
use std::time::{Duration, Instant};

use super::observer::{describe, quorum_leader, srvr_all};
use super::plan::{ZkLabConfig, ZkPlan};
use crate::lab::process::{LabProcess, Registrar, spawn_detached_proxy, wait_for_listen};
use crate::lab::{LabError, LabState, ProcessRecord, clear_stale};

/// How long a lab may take to elect its first leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Prepares the state directory: refuses a running lab, clears a crashed one, writes
/// configs, the topology and the initial state file.
fn prepare(plan: &ZkPlan, api_url: Option<String>, with_api: bool) -> Result<LabState, LabError> {
    let dir = &plan.config.state_dir;
    clear_stale(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    plan.write_files()?;
    let api = with_api.then(|| ([127, 0, 0, 1], plan.api_port).into());
    let topo = dir.join("topology.toml");
    std::fs::write(&topo, plan.topology(api).to_toml()).map_err(|e| LabError::io(&topo, e))?;
    let state = plan.initial_state(api_url);
    state.save(dir)?;
    Ok(state)
}

/// Spawns every server, registering its PID with rift and recording it in the state
/// file before the next one starts.
async fn spawn_servers(
    plan: &ZkPlan,
    state: &mut LabState,
    registrar: Registrar<'_>,
    detach: bool,
    procs: &mut Vec<LabProcess>,
) -> Result<(), LabError> {
    // /proc/PID/exe is the resolved binary, not the `java` symlink on PATH.
    let exe = std::fs::canonicalize(&plan.java).unwrap_or_else(|_| plan.java.clone());
    for (i, s) in plan.servers.iter().enumerate() {
        let p = plan.spawn(i, detach)?;
        state.add_process(
            &plan.config.state_dir,
            ProcessRecord {
                name: s.name.clone(),
                pid: p.pid,
                exe: exe.clone(),
                log: s.log.clone(),
            },
        )?;
        let pid = p.pid;
        procs.push(p);
        registrar.register(&s.name, pid).await?;
    }
    Ok(())
}

/// Waits until every server answers `srvr` as leader or follower of one leader.
async fn wait_ready(
    plan: &ZkPlan,
    procs: &mut [LabProcess],
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    let alive = |procs: &mut [LabProcess]| {
        for (p, s) in procs.iter_mut().zip(&plan.servers) {
            if !p.is_running() {
                return Err(LabError::Exited(s.name.clone(), s.log.clone()));
            }
        }
        Ok(())
    };
    for s in &plan.servers {
        let r = wait_for_listen(s.client, deadline.saturating_duration_since(Instant::now())).await;
        alive(procs)?;
        r?;
    }
    let clients = plan.clients();
    loop {
        alive(procs)?;
        let all = srvr_all(&clients, Duration::from_millis(500)).await;
        let every = all.iter().all(|(_, s)| {
            s.as_ref()
                .is_ok_and(|s| s.mode == "leader" || s.mode == "follower")
        });
        if every && quorum_leader(&all).is_some() {
            tracing::info!(
                servers = clients.len(),
                "zookeeper lab ready: {}",
                describe(&all)
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "zookeeper lab not ready after {timeout:?}: {}; logs in {}",
                describe(&all),
                plan.config.state_dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A ZooKeeper lab owned by this process, with rift in-process (tests and `rift
/// scenario run`). [`ZkLab::shutdown`] stops everything and removes the directory;
/// dropping it without shutdown kills the servers and keeps the logs.
pub struct ZkLab {
    pub plan: ZkPlan,
    proxy: Option<rift_proxy::server::RunningProxy>,
    procs: Vec<LabProcess>,
}

impl ZkLab {
    #[tracing::instrument(name = "zookeeper_lab", skip_all, fields(nodes = config.nodes, dir = %config.state_dir.display()))]
    pub async fn start(config: ZkLabConfig) -> Result<Self, LabError> {
        let plan = ZkPlan::new(config)?;
        let mut state = prepare(&plan, None, false)?;
        let options = rift_proxy::server::ProxyOptions {
            api_listen: Some(([127, 0, 0, 1], 0).into()),
            events_path: Some(plan.config.state_dir.join("events.jsonl")),
            ..Default::default()
        };
        let proxy = rift_proxy::server::start(plan.topology(None), options)
            .await
            .map_err(|e| LabError::Proxy(e.to_string()))?;
        state.api_url = Some(proxy.api_url());
        state.save(&plan.config.state_dir)?;
        let control = proxy.control();
        let mut lab = ZkLab {
            plan,
            proxy: Some(proxy),
            procs: Vec::new(),
        };
        let mut procs = Vec::new();
        let spawned = spawn_servers(
            &lab.plan,
            &mut state,
            Registrar::InProcess(&control),
            false,
            &mut procs,
        )
        .await;
        // Owned by the lab from here: its Drop stops them if anything below fails.
        lab.procs = procs;
        spawned?;
        wait_ready(&lab.plan, &mut lab.procs, READY_TIMEOUT).await?;
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

    pub async fn shutdown(mut self) {
        if let Some(p) = self.proxy.take() {
            p.shutdown().await;
        }
        // The data is deleted next: no clean shutdown needed.
        for mut p in self.procs.drain(..) {
            p.kill();
        }
        // RIFT_KEEP_LAB keeps configs and logs for a post-mortem, as the Kafka lab does.
        if std::env::var_os("RIFT_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.plan.config.state_dir);
        }
    }
}

impl Drop for ZkLab {
    fn drop(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
    }
}

/// `rift lab up zookeeper`: a detached `rift proxy` and detached servers that outlive
/// this command, all recorded in the state directory.
#[tracing::instrument(name = "zookeeper_lab_up", skip_all, fields(nodes = config.nodes, dir = %config.state_dir.display()))]
pub async fn up_detached(config: ZkLabConfig, rift: &Path) -> Result<LabState, LabError> {
    let plan = ZkPlan::new(config)?;
    let api_url = format!("http://127.0.0.1:{}", plan.api_port);
    let mut state = prepare(&plan, Some(api_url.clone()), true)?;
    let dir = plan.config.state_dir.clone();
    let result = async {
        let api = ([127, 0, 0, 1], plan.api_port).into();
        spawn_detached_proxy(&mut state, &dir, rift, &dir.join("topology.toml"), api).await?;
        let client = rift_proxy::client::ApiClient::new(&api_url);
        let mut procs = Vec::new();
        spawn_servers(
            &plan,
            &mut state,
            Registrar::Http(&client),
            true,
            &mut procs,
        )
        .await?;
        wait_ready(&plan, &mut procs, READY_TIMEOUT).await
    }
    .await;
    if let Err(e) = result {
        // Never leave half a lab running; the files stay for the logs.
        crate::lab::stop_processes(&state);
        return Err(e);
    }
    Ok(state)
}

/// For `rift lab status`: every server's `srvr` mode and epoch, as a table and into
/// `out["servers"]`. `process` names a member's PID and whether it runs.
pub async fn status(
    state: &LabState,
    out: &mut serde_json::Value,
    process: impl Fn(&str) -> (Option<u32>, bool),
) -> String {
    let servers: Vec<(String, std::net::SocketAddr)> = state
        .members
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.direct_client_url.parse().ok()?)))
        .collect();
    let all = srvr_all(&servers, Duration::from_millis(800)).await;
    let mut t = match quorum_leader(&all) {
        Some(l) => format!("leader {l}\n"),
        None => "no leader with a quorum answers srvr\n".to_string(),
    };
    t += &format!(
        "{:<8} {:<8} {:<7} {:<10} {:<7} {:<22} quorum (via rift)\n",
        "server", "pid", "running", "mode", "epoch", "client (direct)"
    );
    let mut rows = Vec::new();
    for m in &state.members {
        let (pid, running) = process(&m.name);
        let s = all
            .iter()
            .find(|(n, _)| *n == m.name)
            .and_then(|(_, s)| s.as_ref().ok());
        let mode = s.map_or("-".to_string(), |s| s.mode.clone());
        let epoch = s.and_then(|s| s.epoch);
        t += &format!(
            "{:<8} {:<8} {:<7} {:<10} {:<7} {:<22} {}\n",
            m.name,
            pid.map_or("-".into(), |p| p.to_string()),
            if running { "yes" } else { "no" },
            mode,
            epoch.map_or("-".into(), |e| e.to_string()),
            m.direct_client_url,
            m.peer_url
        );
        rows.push(serde_json::json!({
            "name": m.name, "pid": pid, "running": running, "mode": mode, "epoch": epoch,
            "client_url": m.direct_client_url, "quorum_url": m.peer_url,
        }));
    }
    out["servers"] = rows.into();
    t
}
