//! `rift lab up kafka`: a Kafka lab that outlives the command that started it. rift
//! runs as a background `rift proxy` process, the brokers as detached JVMs; everything
//! is recorded in the state directory's `lab.json` and pid files before the next step,
//! so `rift lab down` (or the next `rift lab up` after a crash) finds and stops it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_proxy::topology::ApiConfig;

use super::plan::{KafkaLabOptions, KafkaPlan};
use crate::lab::process::{free_ports, spawn_detached_proxy};
use crate::lab::{LabError, LabState, MemberRecord, ProcessRecord, clear_stale, now_rfc3339};

/// What `rift lab up kafka` starts.
#[derive(Debug, Clone)]
pub struct DetachedOptions {
    pub nodes: usize,
    pub state_dir: PathBuf,
    /// First port of the lab's range; random when unset.
    pub base_port: Option<u16>,
    pub lab: KafkaLabOptions,
}

/// Starts the lab and returns its recorded state. On failure everything started so far
/// is stopped; the files stay for the logs the error names.
pub async fn up_detached(options: DetachedOptions, rift: &Path) -> Result<LabState, LabError> {
    let dir = options.state_dir.clone();
    clear_stale(&dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    let mut lab_opts = options.lab.clone();
    lab_opts.work_dir = Some(dir.canonicalize().map_err(|e| LabError::io(&dir, e))?);
    let plan = KafkaPlan::new(options.nodes, &lab_opts, options.base_port)?;
    let api_port = free_ports(options.base_port.map(|b| b + options.nodes as u16 * 6), 1)?[0];
    let api: SocketAddr = ([127, 0, 0, 1], api_port).into();
    let api_url = format!("http://{api}");

    let mut topology = plan.topology();
    topology.api = Some(ApiConfig { listen: api });
    let topo_path = plan.work_dir.join("topology.toml");
    std::fs::write(&topo_path, topology.to_toml()).map_err(|e| LabError::io(&topo_path, e))?;
    let mut state = LabState {
        system: "kafka".into(),
        started_at: now_rfc3339(),
        api_url: Some(api_url.clone()),
        members: member_records(&plan),
        processes: Vec::new(),
        settings: settings_with_controllers(&plan),
    };
    state.save(&dir)?;

    let result = start(
        &plan, &mut state, &dir, rift, &topo_path, api, &api_url, &lab_opts,
    )
    .await;
    if let Err(e) = result {
        crate::lab::stop_processes(&state);
        return Err(e);
    }
    Ok(state)
}

#[allow(clippy::too_many_arguments)]
async fn start(
    plan: &KafkaPlan,
    state: &mut LabState,
    dir: &Path,
    rift: &Path,
    topo_path: &Path,
    api: SocketAddr,
    api_url: &str,
    opts: &KafkaLabOptions,
) -> Result<(), LabError> {
    let configs = plan.write_and_format().await?;
    spawn_detached_proxy(state, dir, rift, topo_path, api).await?;
    let client = rift_proxy::client::ApiClient::new(api_url);
    // /proc/PID/exe is the resolved binary, not the `java` symlink on PATH.
    let java_exe = std::fs::canonicalize(&plan.java).unwrap_or_else(|_| plan.java.clone());
    let mut procs = Vec::new();
    for (b, config) in plan.brokers.iter().zip(&configs) {
        let (process, log) = plan.spawn_broker(b, config, true)?;
        state.add_process(
            dir,
            ProcessRecord {
                name: b.name.clone(),
                pid: process.pid,
                exe: java_exe.clone(),
                log: log.clone(),
            },
        )?;
        client
            .register_source(&b.name, &[process.pid], &[])
            .await
            .map_err(|e| {
                LabError::Proxy(format!("registering {} (pid {}): {e}", b.name, process.pid))
            })?;
        procs.push((process, log));
    }
    plan.wait_ready(
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

/// The plan's settings plus each broker's real controller listener, which
/// [`active_controller`] asks.
fn settings_with_controllers(plan: &KafkaPlan) -> serde_json::Value {
    let mut settings = plan.settings();
    let controllers: serde_json::Map<String, serde_json::Value> = plan
        .brokers
        .iter()
        .map(|b| (b.name.clone(), b.direct_controller.to_string().into()))
        .collect();
    settings["direct_controllers"] = controllers.into();
    settings
}

/// For `rift lab status`: the active KRaft controller of a recorded Kafka lab and its
/// epoch, asked of every broker's real controller listener (DescribeQuorum).
pub async fn active_controller(state: &LabState) -> Option<(String, i32)> {
    let controllers = state.settings.get("direct_controllers")?.as_object()?;
    let mut best: Option<(String, i32)> = None;
    for (name, addr) in controllers {
        let Some(addr) = addr.as_str().and_then(|a| a.parse().ok()) else {
            continue;
        };
        if let Ok(view) = crate::kafka::wire::describe_quorum(addr, Duration::from_secs(1)).await
            && view.is_leader()
            && best.as_ref().is_none_or(|(_, e)| *e < view.leader_epoch)
        {
            best = Some((name.clone(), view.leader_epoch));
        }
    }
    best
}

/// Members as `rift lab status` shows them: client through rift and direct, and the
/// controller listener through rift in place of etcd's peer URL.
pub fn member_records(plan: &KafkaPlan) -> Vec<MemberRecord> {
    plan.brokers
        .iter()
        .map(|b| MemberRecord {
            name: b.name.clone(),
            client_url: b.client.to_string(),
            direct_client_url: b.direct_client.to_string(),
            peer_url: b.controller.to_string(),
        })
        .collect()
}
