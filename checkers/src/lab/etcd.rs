//! The etcd lab: N real etcd members (etcd1..etcdN) on loopback, every peer link and
//! every member's client endpoint routed through rift.
//!
//! Each member listens on real ports and ADVERTISES rift's listeners: its
//! `--initial-advertise-peer-urls` (and the `--initial-cluster` every member gets) name
//! rift's peer listener for it, so every member-to-member dial goes through rift, which
//! recognises the dialing member by the PID owning the socket. rift is therefore
//! started first and each member's PID is registered right after its spawn.
//! `--advertise-client-urls` names rift's client listener so that users' clients can be
//! placed on a side of a partition; observers use the real client port instead.
//!
//! Raft timings default to heartbeat 50 ms / election 500 ms (etcd's defaults are
//! 100 ms / 1000 ms): failures are detected in about half a second, which keeps the
//! scenarios short, and 10 heartbeats per election timeout keep spurious elections away
//! on a loaded 2-core machine. `--pre-vote` is on unless asked otherwise (etcd 3.4's
//! default is off).

use std::path::Path;
use std::time::Duration;

pub use super::etcd_plan::{EtcdLabConfig, EtcdLabPlan, EtcdMemberPlan};
pub use super::process::Registrar;
use super::process::{LabProcess, Spawn, spawn_detached_proxy, wait_for_listen};
use super::{LabError, LabState, ProcessRecord, clear_stale};
use crate::etcd::observer::EtcdObserver;

/// Prepares the state directory: refuses a running lab, clears a crashed one, writes
/// the topology and the initial state file.
pub fn prepare(plan: &EtcdLabPlan, api_url: Option<String>) -> Result<LabState, LabError> {
    let dir = &plan.config.state_dir;
    clear_stale(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let topo_path = dir.join("topology.toml");
    std::fs::write(&topo_path, plan.topology().to_toml())
        .map_err(|e| LabError::io(&topo_path, e))?;
    let state = plan.initial_state(api_url);
    state.save(dir)?;
    Ok(state)
}

/// Spawns every member, registering each PID with rift right after its spawn, and
/// recording it in the state file before the next one starts.
#[tracing::instrument(skip_all)]
pub async fn spawn_members(
    plan: &EtcdLabPlan,
    state: &mut LabState,
    registrar: Registrar<'_>,
    detach: bool,
    procs: &mut Vec<LabProcess>,
) -> Result<(), LabError> {
    let exe = plan.etcd_exe.clone();
    for (i, m) in plan.members.iter().enumerate() {
        let p = LabProcess::spawn(
            &m.name,
            Spawn {
                program: &exe,
                args: plan.member_args(i),
                log: m.log.clone(),
                detach,
            },
        )?;
        state.add_process(
            &plan.config.state_dir,
            ProcessRecord {
                name: m.name.clone(),
                pid: p.pid,
                exe: exe.clone(),
                log: m.log.clone(),
            },
        )?;
        let pid = p.pid;
        tracing::debug!(member = %m.name, pid, "spawned");
        procs.push(p);
        registrar.register(&m.name, pid).await?;
    }
    Ok(())
}

/// Waits until every member answers and a majority agrees on a leader.
pub async fn wait_ready(
    plan: &EtcdLabPlan,
    procs: &mut [LabProcess],
    timeout: Duration,
) -> Result<EtcdObserver, LabError> {
    for m in &plan.members {
        let addr = ([127, 0, 0, 1], m.client_port).into();
        let r = wait_for_listen(addr, timeout).await;
        check_alive(plan, procs)?;
        r?;
    }
    let observer = EtcdObserver::connect(&plan.observer_endpoints())
        .await
        .map_err(|e| LabError::Proxy(e.to_string()))?;
    let start = std::time::Instant::now();
    loop {
        check_alive(plan, procs)?;
        let all = observer.status_all(Duration::from_millis(500)).await;
        let answered = all.iter().filter(|(_, s)| s.is_ok()).count();
        let leader = crate::etcd::observer::majority_leader_of(&all, plan.members.len());
        if answered == plan.members.len() && leader.is_some() {
            return Ok(observer);
        }
        if start.elapsed() > timeout {
            return Err(LabError::Timeout(format!(
                "etcd lab not ready after {timeout:?}: {}",
                crate::etcd::observer::describe(&all)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_alive(plan: &EtcdLabPlan, procs: &mut [LabProcess]) -> Result<(), LabError> {
    for (p, m) in procs.iter_mut().zip(&plan.members) {
        if !p.is_running() {
            return Err(LabError::Exited(m.name.clone(), m.log.clone()));
        }
    }
    Ok(())
}

/// An etcd lab owned by this process, with rift running in-process (tests and
/// `rift scenario run`). Members are stopped and the state directory removed on
/// [`EtcdLab::shutdown`], or on drop if the owner panicked.
pub struct EtcdLab {
    pub plan: EtcdLabPlan,
    proxy: Option<rift_proxy::server::RunningProxy>,
    procs: Vec<LabProcess>,
    observer: EtcdObserver,
}

impl EtcdLab {
    #[tracing::instrument(name = "etcd_lab", skip_all, fields(nodes = config.nodes, dir = %config.state_dir.display()))]
    pub async fn start(config: EtcdLabConfig) -> Result<Self, LabError> {
        let plan = EtcdLabPlan::new(config)?;
        let mut state = prepare(&plan, None)?;
        let options = rift_proxy::server::ProxyOptions {
            api_listen: Some(([127, 0, 0, 1], 0).into()),
            events_path: Some(plan.config.state_dir.join("events.jsonl")),
            ..Default::default()
        };
        let proxy = rift_proxy::server::start(plan.topology(), options)
            .await
            .map_err(|e| LabError::Proxy(e.to_string()))?;
        state.api_url = Some(proxy.api_url());
        state.save(&plan.config.state_dir)?;
        let control = proxy.control();
        let mut lab = Self {
            procs: vec![],
            proxy: Some(proxy),
            observer: EtcdObserver::connect(&plan.observer_endpoints())
                .await
                .map_err(|e| LabError::Proxy(e.to_string()))?,
            plan,
        };
        let mut procs = Vec::new();
        let spawned = spawn_members(
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
        lab.observer = wait_ready(&lab.plan, &mut lab.procs, Duration::from_secs(30)).await?;
        tracing::info!(nodes = lab.plan.members.len(), api = %state.api_url.as_deref().unwrap_or(""), "etcd lab ready");
        Ok(lab)
    }

    pub fn observer(&self) -> EtcdObserver {
        self.observer.clone()
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

    /// PIDs of the members, in member order (tests kill one to simulate a crash).
    pub fn member_pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    pub async fn shutdown(mut self) {
        // The proxy goes first so members dying one by one do not show up as failed
        // upstream dials; the data is deleted next, so the members are simply killed.
        if let Some(p) = self.proxy.take() {
            p.shutdown().await;
        }
        for mut p in self.procs.drain(..) {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.plan.config.state_dir);
    }
}

impl Drop for EtcdLab {
    fn drop(&mut self) {
        // Only reached without shutdown (a panic, a failed start): stop the members
        // but keep the files, whose logs explain the failure; the next start in this
        // directory clears them as a dead lab.
        for p in &mut self.procs {
            p.kill();
        }
    }
}

/// `rift lab up etcd`: starts `rift proxy` (the executable `rift`) and the members as
/// detached processes that outlive this command, all recorded in the state directory.
#[tracing::instrument(name = "etcd_lab_up", skip_all, fields(nodes = config.nodes, dir = %config.state_dir.display()))]
pub async fn up_detached(config: EtcdLabConfig, rift: &Path) -> Result<LabState, LabError> {
    let plan = EtcdLabPlan::new(config)?;
    let api_url = format!("http://127.0.0.1:{}", plan.api_port);
    let mut state = prepare(&plan, Some(api_url.clone()))?;
    let dir = plan.config.state_dir.clone();
    let result = async {
        let api = ([127, 0, 0, 1], plan.api_port).into();
        spawn_detached_proxy(&mut state, &dir, rift, &dir.join("topology.toml"), api).await?;
        let client = rift_proxy::client::ApiClient::new(&api_url);
        let mut procs = Vec::new();
        spawn_members(
            &plan,
            &mut state,
            Registrar::Http(&client),
            true,
            &mut procs,
        )
        .await?;
        wait_ready(&plan, &mut procs, Duration::from_secs(30)).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Never leave half a lab running. The files stay for the logs the error points
        // at; the next `rift lab up` sees a dead lab and clears it.
        super::stop_processes(&state);
        return Err(e);
    }
    Ok(state)
}
