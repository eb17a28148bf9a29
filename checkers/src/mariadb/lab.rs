//! The MariaDB lab: a primary (maria1) and replicas (maria2, ...) as separate
//! `mariadbd` processes on loopback, each with its own datadir and port, replication
//! through rift.
//!
//! rift starts first; each `mariadbd` PID is registered with it right after the spawn,
//! so rift recognises which member dialed a replication connection (every member dials
//! from 127.0.0.1) by the process owning the socket, as in the etcd lab. The datadir
//! is made once with `mariadb-install-db` and copied for the other members.

use std::path::Path;
use std::time::Duration;

use super::observer::MariaObserver;
use super::plan::{MariaLabConfig, MariaLabPlan};
use super::replication::{self, Member};
use crate::lab::process::Registrar;
use crate::lab::process::{LabProcess, Spawn, wait_for_listen};
use crate::lab::{LabError, LabState, ProcessRecord, clear_stale};

/// How long members may take to accept connections and replicate.
const READY: Duration = Duration::from_secs(60);

fn prepare(plan: &MariaLabPlan, api_url: Option<String>) -> Result<LabState, LabError> {
    let dir = &plan.config.state_dir;
    clear_stale(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let topo = dir.join("topology.toml");
    std::fs::write(&topo, plan.topology().to_toml()).map_err(|e| LabError::io(&topo, e))?;
    let init = plan.init_file();
    std::fs::write(&init, plan.init_sql()).map_err(|e| LabError::io(&init, e))?;
    let state = plan.initial_state(api_url);
    state.save(dir)?;
    Ok(state)
}

/// One `mariadb-install-db`, then a copy of its datadir for every member.
fn install(plan: &MariaLabPlan) -> Result<(), LabError> {
    let dir = &plan.config.state_dir;
    let template = dir.join("template.data");
    let log = dir.join("install-db.log");
    let out = std::fs::File::create(&log).map_err(|e| LabError::io(&log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(&log, e))?;
    let status = std::process::Command::new(&plan.install_db)
        .args(plan.install_args(&template))
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|error| LabError::Spawn {
            program: plan.install_db.display().to_string(),
            error,
        })?;
    if !status.success() {
        // The tail goes into the error itself: the next start in this directory
        // removes the log.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        return Err(LabError::State {
            path: log,
            message: format!(
                "mariadb-install-db failed ({status}); its log ends: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        });
    }
    for m in &plan.members {
        copy_dir(&template, &m.data_dir)?;
    }
    std::fs::remove_dir_all(&template).map_err(|e| LabError::io(&template, e))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(to).map_err(|e| LabError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| LabError::io(from, e))? {
        let entry = entry.map_err(|e| LabError::io(from, e))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| LabError::io(&target, e))?;
        }
    }
    Ok(())
}

/// Spawns every member, registering each PID with rift before the next starts.
async fn spawn_members(
    plan: &MariaLabPlan,
    state: &mut LabState,
    registrar: Registrar<'_>,
    detach: bool,
    procs: &mut Vec<LabProcess>,
) -> Result<(), LabError> {
    for (i, m) in plan.members.iter().enumerate() {
        let p = LabProcess::spawn(
            &m.name,
            Spawn {
                program: &plan.mariadbd,
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
                exe: plan.mariadbd.clone(),
                log: m.log.clone(),
            },
        )?;
        let pid = p.pid;
        procs.push(p);
        registrar.register(&m.name, pid).await?;
    }
    Ok(())
}

/// The members as replication sees them, primary first.
pub fn members(plan: &MariaLabPlan) -> Vec<Member> {
    plan.members
        .iter()
        .map(|m| Member {
            name: m.name.clone(),
            port: m.port,
            rift_repl_port: m.rift_repl_port,
        })
        .collect()
}

pub fn observer(plan: &MariaLabPlan) -> MariaObserver {
    MariaObserver::new(
        plan.members
            .iter()
            .map(|m| (m.name.clone(), m.port))
            .collect(),
    )
}

/// Waits for every member to listen, then sets replication up.
async fn wait_ready(plan: &MariaLabPlan, procs: &mut [LabProcess]) -> Result<(), LabError> {
    for (p, m) in procs.iter_mut().zip(&plan.members) {
        let r = wait_for_listen(([127, 0, 0, 1], m.port).into(), READY).await;
        if !p.is_running() {
            return Err(LabError::Exited(m.name.clone(), m.log.clone()));
        }
        r?;
    }
    let all = members(plan);
    let (primary, replicas) = all.split_first().expect("validated: at least 2 members");
    replication::configure(
        &observer(plan),
        primary,
        replicas,
        plan.config.semi_sync,
        READY,
    )
    .await
    .map_err(|e| LabError::Timeout(format!("setting replication up: {e}")))
}

/// A MariaDB lab owned by this process, with rift running in-process.
pub struct MariaLab {
    pub plan: MariaLabPlan,
    proxy: Option<rift_proxy::server::RunningProxy>,
    procs: Vec<LabProcess>,
}

impl MariaLab {
    #[tracing::instrument(name = "mariadb_lab", skip_all, fields(nodes = config.nodes, dir = %config.state_dir.display()))]
    pub async fn start(config: MariaLabConfig) -> Result<Self, LabError> {
        let plan = MariaLabPlan::new(config)?;
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
            plan,
            proxy: Some(proxy),
            procs: vec![],
        };
        install(&lab.plan)?;
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
        wait_ready(&lab.plan, &mut lab.procs).await?;
        tracing::info!(nodes = lab.plan.members.len(), "mariadb lab ready");
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
        // The data is deleted next, so the members are simply killed.
        for mut p in self.procs.drain(..) {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.plan.config.state_dir);
    }
}

impl Drop for MariaLab {
    fn drop(&mut self) {
        // Only reached without shutdown: stop the members, keep the logs.
        for p in &mut self.procs {
            p.kill();
        }
    }
}

/// `rift lab up mariadb`: `rift proxy` and the members as detached processes that
/// outlive this command, all recorded in the state directory.
pub async fn up_detached(config: MariaLabConfig, rift: &Path) -> Result<LabState, LabError> {
    let plan = MariaLabPlan::new(config)?;
    let api_url = format!("http://127.0.0.1:{}", plan.api_port);
    let mut state = prepare(&plan, Some(api_url.clone()))?;
    let dir = plan.config.state_dir.clone();
    let result = async {
        // The shared start: a new lab starts healed, and `rift lab down` heals first.
        let api = ([127, 0, 0, 1], plan.api_port).into();
        crate::lab::process::spawn_detached_proxy(
            &mut state,
            &dir,
            rift,
            &dir.join("topology.toml"),
            api,
        )
        .await?;
        install(&plan)?;
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
        wait_ready(&plan, &mut procs).await
    }
    .await;
    if let Err(e) = result {
        crate::lab::stop_processes(&state);
        return Err(e);
    }
    Ok(state)
}

/// `rift lab status` of a MariaDB lab: each member's role (writable primary, or the
/// port of the primary it replicates from, rift's listener), GTID position and
/// semi-sync state, polled on its real port. Fills `out["members"]`; returns the table.
pub async fn status(
    state: &LabState,
    out: &mut serde_json::Value,
    process: impl Fn(&str) -> (Option<u32>, bool),
) -> String {
    let ports: Vec<(String, u16)> = state
        .members
        .iter()
        .filter_map(|m| {
            let port = m.direct_client_url.rsplit(':').next()?.parse().ok()?;
            Some((m.name.clone(), port))
        })
        .collect();
    let observer = MariaObserver::new(ports);
    let mut t = format!(
        "{:<8} {:<8} {:<7} {:<28} {:<16} {:<10} client (direct)\n",
        "member", "pid", "running", "role", "gtid", "semi-sync"
    );
    let mut rows = Vec::new();
    for m in &state.members {
        let (pid, running) = process(&m.name);
        let s = observer
            .status(&m.name, Duration::from_millis(800))
            .await
            .ok();
        let role = match &s {
            None => "(no answer)".to_string(),
            Some(s) => match &s.replica {
                Some(r) => format!("replica of :{} (io {})", r.master_port, r.io_running),
                None if s.read_only => "read-only".into(),
                None => "primary (writable)".into(),
            },
        };
        let gtid = s
            .as_ref()
            .map_or("-".into(), |s| s.gtid_current_pos.clone());
        // A replica's side of semi-sync is its acknowledgements; a primary's is whether
        // commits still wait for one or fell back to asynchronous.
        let semi = s
            .as_ref()
            .map_or("-", |s| match (&s.replica, &s.semi_sync) {
                (Some(_), ss) if ss.slave_status => "acks",
                (Some(_), _) => "off",
                (None, ss) if !ss.master_enabled => "off",
                (None, ss) if ss.master_status => "on",
                (None, _) => "fell back",
            });
        t += &format!(
            "{:<8} {:<8} {:<7} {:<28} {:<16} {:<10} {}\n",
            m.name,
            pid.map_or("-".into(), |p| p.to_string()),
            if running { "yes" } else { "no" },
            role,
            gtid,
            semi,
            m.direct_client_url
        );
        rows.push(serde_json::json!({
            "name": m.name, "pid": pid, "running": running, "role": role, "status": s,
            "client_url": m.direct_client_url, "repl_url": m.peer_url,
        }));
    }
    out["members"] = rows.into();
    t
}
