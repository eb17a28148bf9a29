//! `rift lab`: start, inspect and stop a local lab of real cluster members behind a
//! background `rift proxy`. The lab's state (pid files, logs, data, topology) lives in
//! a state directory; a lab left by a crashed run is detected and cleared, a running
//! one is never reused.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use rift_checkers::etcd::observer::{EtcdObserver, majority_leader_of};
use rift_checkers::lab::etcd::{EtcdLabConfig, up_detached};
use rift_checkers::lab::{self, LabState};
use serde_json::json;

#[derive(Args)]
pub struct LabArgs {
    /// Where the lab keeps its state (pid files, logs, data, topology).
    #[arg(long, env = "RIFT_LAB_DIR", default_value = lab::DEFAULT_STATE_DIR, global = true)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Start real members and a background `rift proxy` on every link between them.
    #[command(after_help = "Example: rift lab up etcd --nodes 5\n\
etcd is Debian's etcd-server 3.4 at /usr/bin/etcd, or the binary in ETCD_BIN.")]
    Up(UpArgs),
    /// Stop everything the lab started and remove its data.
    Down,
    /// Members, their client URLs, the leader and its applied term.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum System {
    Etcd,
}

#[derive(Args)]
struct UpArgs {
    system: System,
    /// Number of members: 3, 4 or 5 are the tested sizes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Run without --pre-vote (etcd 3.4's own default).
    #[arg(long)]
    no_pre_vote: bool,
    /// Raft heartbeat interval.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Raft election timeout (at least 5x the heartbeat).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    election: Duration,
    /// First port to allocate (default: a random free range in 20000-29000).
    #[arg(long)]
    base_port: Option<u16>,
}

pub async fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Up(up) => up_cmd(args.state_dir, up).await,
        LabCommand::Down => {
            let state = lab::down(&args.state_dir)?;
            println!(
                "stopped the {} lab ({} processes) and removed {}",
                state.system,
                state.processes.len(),
                args.state_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { json } => status_cmd(args.state_dir, json).await,
    }
}

async fn up_cmd(state_dir: PathBuf, up: UpArgs) -> anyhow::Result<ExitCode> {
    let System::Etcd = up.system;
    let mut config = EtcdLabConfig::new(up.nodes, &state_dir);
    config.pre_vote = !up.no_pre_vote;
    config.heartbeat_ms = up.heartbeat.as_millis() as u64;
    config.election_ms = up.election.as_millis() as u64;
    config.base_port = up.base_port;
    let rift = std::env::current_exe().context("locating the rift executable")?;
    if let lab::Preflight::ClearedStale(old) = lab::clear_stale(&state_dir)? {
        eprintln!(
            "note: removed a {} lab left by a crashed run (started {})",
            old.system, old.started_at
        );
    }
    let state = up_detached(config, &rift).await?;
    print_members(&state);
    let api = state.api_url.clone().unwrap_or_default();
    println!("\nrift API: {api}");
    println!("  export RIFT_API={api}    # then: rift isolate etcd1, rift status, rift heal");
    println!("stop with: rift lab down");
    Ok(ExitCode::SUCCESS)
}

fn print_members(state: &LabState) {
    println!(
        "{:<8} {:<26} {:<26} peer (via rift)",
        "member", "client (via rift)", "client (direct)"
    );
    for m in &state.members {
        println!(
            "{:<8} {:<26} {:<26} {}",
            m.name, m.client_url, m.direct_client_url, m.peer_url
        );
    }
}

async fn status_cmd(state_dir: PathBuf, as_json: bool) -> anyhow::Result<ExitCode> {
    let state =
        LabState::load(&state_dir)?.ok_or_else(|| lab::LabError::NotRunning(state_dir.clone()))?;
    let running: Vec<u32> = state.running().iter().map(|p| p.pid).collect();
    let endpoints: Vec<(String, String)> = state
        .members
        .iter()
        .map(|m| (m.name.clone(), m.direct_client_url.clone()))
        .collect();
    let observer = EtcdObserver::connect(&endpoints).await?;
    let all = observer.status_all(Duration::from_millis(800)).await;
    let leader = majority_leader_of(&all, observer.quorum());
    let healthy = state.is_healthy();
    let mut members = Vec::new();
    for m in &state.members {
        let proc_ = state.processes.iter().find(|p| p.name == m.name);
        let st = all.iter().find(|(n, _)| *n == m.name).map(|(_, s)| s);
        members.push(json!({
            "name": m.name,
            "pid": proc_.map(|p| p.pid),
            "running": proc_.is_some_and(|p| running.contains(&p.pid)),
            "client_url": m.client_url,
            "direct_client_url": m.direct_client_url,
            "peer_url": m.peer_url,
            "leader": st.and_then(|s| s.as_ref().ok()).and_then(|s| s.leader.clone()),
            "applied_term": st.and_then(|s| s.as_ref().ok()).map(|s| s.applied_term),
            "error": st.and_then(|s| s.as_ref().err()).map(|e| e.to_string()),
        }));
    }
    let proxy = state.processes.iter().find(|p| p.name == "rift-proxy");
    let out = json!({
        "system": state.system,
        "state_dir": state_dir,
        "started_at": state.started_at,
        "healthy": healthy,
        "api_url": state.api_url,
        "proxy_running": proxy.is_some_and(|p| running.contains(&p.pid)),
        "settings": state.settings,
        "leader": leader.as_ref().map(|l| &l.0),
        "term": leader.as_ref().map(|l| l.1),
        "members": members,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} lab in {} (started {}), rift API {}{}",
            state.system,
            state_dir.display(),
            state.started_at,
            state.api_url.as_deref().unwrap_or("-"),
            if healthy {
                ""
            } else {
                "  [DEGRADED: some processes are gone; `rift lab down` cleans up]"
            }
        );
        match &leader {
            Some((l, t)) => println!("leader {l}, applied term {t}"),
            None => println!("no leader agreed by a majority"),
        }
        println!(
            "{:<8} {:<8} {:<7} {:<8} {:<5} {:<26} client (direct)",
            "member", "pid", "running", "leader", "term", "client (via rift)"
        );
        for m in &members {
            println!(
                "{:<8} {:<8} {:<7} {:<8} {:<5} {:<26} {}",
                m["name"].as_str().unwrap_or(""),
                m["pid"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .unwrap_or("-".into()),
                if m["running"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "NO"
                },
                m["leader"].as_str().unwrap_or("-"),
                m["applied_term"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .unwrap_or("-".into()),
                m["client_url"].as_str().unwrap_or(""),
                m["direct_client_url"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
