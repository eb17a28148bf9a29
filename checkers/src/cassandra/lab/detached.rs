//! `rift lab up cassandra`: a Cassandra lab that outlives the command that started it.
//! rift runs as a background `rift proxy`, the nodes as detached JVMs; each is recorded
//! in the state directory's `lab.json` and a pid file before the next step, so `rift lab
//! down` (or the next `rift lab up` after a crash) finds and stops it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_proxy::topology::ApiConfig;

use super::plan::{CassandraLabOptions, CassandraPlan};
use crate::lab::process::{Registrar, free_ports, spawn_detached_proxy};
use crate::lab::{LabError, LabState, MemberRecord, ProcessRecord, clear_stale, now_rfc3339};

/// What `rift lab up cassandra` starts.
#[derive(Debug, Clone)]
pub struct DetachedOptions {
    pub nodes: usize,
    pub state_dir: PathBuf,
    pub lab: CassandraLabOptions,
}

/// Starts the lab and returns its recorded state. On failure everything started so far
/// is stopped; the files stay for the logs the error names.
pub async fn up_detached(options: DetachedOptions, rift: &Path) -> Result<LabState, LabError> {
    let dir = options.state_dir.clone();
    clear_stale(&dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    let mut lab_opts = options.lab.clone();
    lab_opts.work_dir = Some(dir.canonicalize().map_err(|e| LabError::io(&dir, e))?);
    let plan = CassandraPlan::new(options.nodes, &lab_opts)?;
    let api_port = free_ports(None, 1)?[0];
    let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
    let api_url = format!("http://{api}");

    let mut topology = plan.topology();
    topology.api = Some(ApiConfig { listen: api });
    let topo_path = plan.work_dir.join("topology.toml");
    std::fs::write(&topo_path, topology.to_toml()).map_err(|e| LabError::io(&topo_path, e))?;
    let mut state = LabState {
        system: "cassandra".into(),
        started_at: now_rfc3339(),
        api_url: Some(api_url.clone()),
        members: member_records(&plan),
        processes: Vec::new(),
        settings: plan.settings(),
    };
    state.save(&dir)?;
    let result = start(&plan, &mut state, &dir, rift, &topo_path, api, &lab_opts).await;
    if let Err(e) = result {
        crate::lab::stop_processes(&state);
        return Err(e);
    }
    Ok(state)
}

async fn start(
    plan: &CassandraPlan,
    state: &mut LabState,
    dir: &Path,
    rift: &Path,
    topo_path: &Path,
    api: SocketAddr,
    opts: &CassandraLabOptions,
) -> Result<(), LabError> {
    plan.write_configs()?;
    // Shared with the other labs: a new lab starts healed, `rift lab down` heals first.
    spawn_detached_proxy(state, dir, rift, topo_path, api).await?;
    let client = rift_proxy::client::ApiClient::new(&format!("http://{api}"));
    let registrar = Registrar::Http(&client);
    // /proc/PID/exe is the resolved binary, not the `java` symlink on PATH.
    let java_exe = std::fs::canonicalize(&plan.java).unwrap_or_else(|_| plan.java.clone());
    let mut procs = Vec::new();
    for n in &plan.nodes {
        let (process, log) = plan.spawn_node(n, true)?;
        state.add_process(
            dir,
            ProcessRecord {
                name: n.name.clone(),
                pid: process.pid,
                exe: java_exe.clone(),
                log: log.clone(),
            },
        )?;
        registrar.register(&n.name, process.pid).await?;
        procs.push((process, log));
    }
    super::wait_ready(
        plan,
        || {
            for (p, log) in procs.iter_mut() {
                if !p.is_running() {
                    return Err(LabError::Exited(p.name.clone(), log.clone()));
                }
            }
            Ok(())
        },
        opts.start_timeout,
    )
    .await
}

/// Nodes as `rift lab status` shows them: the native port through rift and direct,
/// and the storage port through rift in place of etcd's peer URL.
pub fn member_records(plan: &CassandraPlan) -> Vec<MemberRecord> {
    plan.nodes
        .iter()
        .map(|n| MemberRecord {
            name: n.name.clone(),
            client_url: n.rift_native(plan).to_string(),
            direct_client_url: n.native(plan).to_string(),
            peer_url: n.rift_storage(plan).to_string(),
        })
        .collect()
}

/// For `rift lab status`: each node's process and what its gossip says of every
/// endpoint, asked over CQL on the node's real native port. Fills `out` with the same
/// as JSON; returns the text table.
pub async fn status(
    state: &LabState,
    out: &mut serde_json::Value,
    process: impl Fn(&str) -> (Option<u32>, bool),
) -> String {
    let direct: Vec<(String, SocketAddr)> = state
        .members
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.direct_client_url.parse().ok()?)))
        .collect();
    let names: Vec<(std::net::IpAddr, String)> = state.settings["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| {
                    Some((
                        n["broadcast"].as_str()?.parse().ok()?,
                        n["node"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let observer = crate::cassandra::observer::CassandraObserver::new(direct, names);
    let mut t = format!(
        "{:<8} {:<8} {:<7} {:<22} {:<22} gossip (status@heartbeat of every endpoint)\n",
        "node", "pid", "running", "native (via rift)", "native (direct)"
    );
    let mut rows = Vec::new();
    for m in &state.members {
        let (pid, running) = process(&m.name);
        let view = observer.ring(&m.name, Duration::from_secs(2)).await;
        let gossip = match &view {
            Ok(v) => v.describe(),
            Err(e) => format!("(no answer: {e})"),
        };
        t += &format!(
            "{:<8} {:<8} {:<7} {:<22} {:<22} {}\n",
            m.name,
            pid.map_or("-".into(), |p| p.to_string()),
            if running { "yes" } else { "no" },
            m.client_url,
            m.direct_client_url,
            gossip
        );
        rows.push(serde_json::json!({
            "name": m.name, "pid": pid, "running": running,
            "client_url": m.client_url, "direct_client_url": m.direct_client_url,
            "storage_url": m.peer_url,
            "ring": view.as_ref().ok(),
            "error": view.as_ref().err().map(|e| e.to_string()),
        }));
    }
    out["members"] = rows.into();
    t
}
