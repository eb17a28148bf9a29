//! `rift lab`: start, inspect and stop a local lab of real cluster members behind a
//! background `rift proxy`. The lab's state (pid files, logs, data, topology) lives in
//! a state directory; a lab left by a crashed run is detected and cleared, a running
//! one is never reused.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use rift_checkers::cassandra::lab::{CassandraLabOptions, detached as cassandra};
use rift_checkers::etcd::observer::{EtcdObserver, majority_leader_of};
use rift_checkers::lab::etcd::{EtcdLabConfig, up_detached as etcd_up};
use rift_checkers::lab::kafka::detached::{
    DetachedOptions, active_controller, up_detached as kafka_up,
};
use rift_checkers::lab::kafka::plan::KafkaLabOptions;
use rift_checkers::lab::{self, LabState};
use rift_checkers::mariadb::plan::MariaLabConfig;
use rift_checkers::zookeeper::lab::up_detached as zookeeper_up;
use rift_checkers::zookeeper::plan::ZkLabConfig;
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
    #[command(
        after_help = "Examples:\n  rift lab up etcd --nodes 5\n  rift lab up etcd --version 3.4\n  rift lab up kafka --nodes 3 --version 3.9\n\
etcd: 3.6 (default), 3.5 (built by scripts/setup.sh into /opt/rift/etcd/<version>), 3.4\n\
(Debian's etcd-server); ETCD_BIN runs any other etcd binary when --version is not given.\n\
Kafka: 4.4 (default; RIFT_KAFKA_LIBS or .rift/kafka-libs) or 3.9 (/opt/rift/kafka/<version>),\n\
Maven Central jars fetched by scripts/setup.sh, run on Java 17.\n\
ZooKeeper: 3.9 (RIFT_ZOOKEEPER_LIBS or .rift/zookeeper-libs, scripts/setup.d/35-zookeeper.sh).\n\
MariaDB: 10.11 (Debian's, scripts/setup.d/37-mariadb.sh): maria1 primary, the others its replicas\n\
through rift; semi-sync (2 s timeout) unless --async-replication.\n\
Cassandra: 5.0 (RIFT_CASSANDRA_LIBS or .rift/cassandra-libs, scripts/setup.d/36-cassandra.sh)."
    )]
    Up(UpArgs),
    /// Stop everything the lab started and remove its data.
    Down,
    /// Members, their client URLs through rift, and who leads (etcd: the Raft leader
    /// and its applied term; Kafka: the active KRaft controller and its epoch).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum System {
    Etcd,
    Kafka,
    Zookeeper,
    Mariadb,
    Cassandra,
}

#[derive(Args)]
struct UpArgs {
    system: System,
    /// Number of members: 3, 4 or 5 are the tested sizes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Release to run: a line (`3.5`) or an exact version (`3.5.35`) [default: the newest].
    #[arg(long)]
    version: Option<String>,
    /// First port to allocate (default: a random free range in 20000-29000).
    #[arg(long)]
    base_port: Option<u16>,
    /// etcd: run without --pre-vote (etcd 3.4's own default).
    #[arg(long)]
    no_pre_vote: bool,
    /// etcd: Raft heartbeat interval [default: 50ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    heartbeat: Option<Duration>,
    /// etcd: Raft election timeout, at least 5x the heartbeat [default: 500ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    election: Option<Duration>,
    /// kafka, zookeeper, cassandra: JVM heap per broker, server or node, in MiB
    /// [default: 384, 192, 512].
    #[arg(long)]
    heap_mb: Option<u32>,
    /// mariadb: asynchronous replication instead of semi-synchronous.
    #[arg(long)]
    async_replication: bool,
}

impl UpArgs {
    /// Flags of the other system are refused rather than silently ignored.
    fn check_flags(&self) -> anyhow::Result<()> {
        let given: &[(&str, bool)] = match self.system {
            System::Etcd => &[
                ("--heap-mb", self.heap_mb.is_some()),
                ("--async-replication", self.async_replication),
            ],
            System::Mariadb => &[
                ("--no-pre-vote", self.no_pre_vote),
                ("--heartbeat", self.heartbeat.is_some()),
                ("--election", self.election.is_some()),
                ("--version", self.version.is_some()),
                ("--heap-mb", self.heap_mb.is_some()),
            ],
            System::Zookeeper => &[
                ("--no-pre-vote", self.no_pre_vote),
                ("--heartbeat", self.heartbeat.is_some()),
                ("--election", self.election.is_some()),
                ("--version", self.version.is_some()),
                ("--async-replication", self.async_replication),
            ],
            System::Kafka => &[
                ("--async-replication", self.async_replication),
                ("--no-pre-vote", self.no_pre_vote),
                ("--heartbeat", self.heartbeat.is_some()),
                ("--election", self.election.is_some()),
            ],
            System::Cassandra => &[
                ("--no-pre-vote", self.no_pre_vote),
                ("--heartbeat", self.heartbeat.is_some()),
                ("--election", self.election.is_some()),
                ("--version", self.version.is_some()),
                ("--async-replication", self.async_replication),
            ],
        };
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            bail!(
                "{flag} does not apply to a {} lab",
                self.system.to_possible_value().expect("named").get_name()
            );
        }
        Ok(())
    }
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
    up.check_flags()?;
    let rift = std::env::current_exe().context("locating the rift executable")?;
    if let lab::Preflight::ClearedStale(old) = lab::clear_stale(&state_dir)? {
        eprintln!(
            "note: removed a {} lab left by a crashed run (started {})",
            old.system, old.started_at
        );
    }
    let state = match up.system {
        System::Etcd => {
            let mut config = EtcdLabConfig::new(up.nodes, &state_dir);
            config.pre_vote = !up.no_pre_vote;
            config.heartbeat_ms = up.heartbeat.map_or(50, |d| d.as_millis() as u64);
            config.election_ms = up.election.map_or(500, |d| d.as_millis() as u64);
            config.base_port = up.base_port;
            config.version = up.version.clone();
            with_progress(&state_dir, up.nodes, "members", etcd_up(config, &rift)).await?
        }
        System::Kafka => {
            let mut options = KafkaLabOptions {
                version: up.version.clone(),
                ..KafkaLabOptions::default()
            };
            if let Some(heap) = up.heap_mb {
                options.heap_mb = heap;
            }
            let options = DetachedOptions {
                nodes: up.nodes,
                state_dir: state_dir.clone(),
                base_port: up.base_port,
                lab: options,
            };
            with_progress(&state_dir, up.nodes, "brokers", kafka_up(options, &rift)).await?
        }
        System::Zookeeper => {
            let mut config = ZkLabConfig::new(up.nodes, &state_dir);
            config.base_port = up.base_port;
            if let Some(heap) = up.heap_mb {
                config.heap_mb = heap;
            }
            with_progress(&state_dir, up.nodes, "servers", zookeeper_up(config, &rift)).await?
        }
        System::Mariadb => {
            let mut config = MariaLabConfig::new(up.nodes, &state_dir);
            config.base_port = up.base_port;
            config.semi_sync = !up.async_replication;
            let start = rift_checkers::mariadb::lab::up_detached(config, &rift);
            with_progress(&state_dir, up.nodes, "servers", start).await?
        }
        System::Cassandra => {
            let mut lab = CassandraLabOptions {
                base_port: up.base_port,
                ..CassandraLabOptions::default()
            };
            if let Some(heap) = up.heap_mb {
                lab.heap_mb = heap;
            }
            let options = cassandra::DetachedOptions {
                nodes: up.nodes,
                state_dir: state_dir.clone(),
                lab,
            };
            with_progress(
                &state_dir,
                up.nodes,
                "nodes",
                cassandra::up_detached(options, &rift),
            )
            .await?
        }
    };
    if let Some(version) = state.settings.get("version").and_then(|v| v.as_str()) {
        println!("{} {version}", state.system);
    }
    print_members(&state);
    let api = state.api_url.clone().unwrap_or_default();
    let first = state.members.first().map_or("NODE", |m| m.name.as_str());
    println!("\nrift API: {api}");
    if state_dir == Path::new(lab::DEFAULT_STATE_DIR) {
        println!(
            "  commands run in this directory (or below) use it: rift isolate {first}, rift status, rift heal"
        );
    } else {
        println!(
            "  commands find it with RIFT_LAB_DIR={} (or --api {api}): rift isolate {first}, rift status",
            state_dir.display()
        );
    }
    println!("stop with: rift lab down");
    Ok(ExitCode::SUCCESS)
}

/// Runs a lab start while telling the user how far it got: the processes recorded in
/// `lab.json` so far, then the wait for the cluster to form. A terminal gets one
/// line rewritten in place; a log or pipe gets a line every few seconds.
async fn with_progress<T>(
    state_dir: &Path,
    nodes: usize,
    what: &str,
    start: impl Future<Output = Result<T, lab::LabError>>,
) -> Result<T, lab::LabError> {
    let tty = std::io::stderr().is_terminal();
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 5 }));
    tick.tick().await;
    tokio::pin!(start);
    let result = loop {
        tokio::select! {
            r = &mut start => break r,
            _ = tick.tick() => {
                // The proxy is recorded first, then one process per member.
                let started = LabState::load(state_dir)
                    .ok()
                    .flatten()
                    .map_or(0, |s| s.processes.len().saturating_sub(1));
                let phase = if started < nodes {
                    format!("{started} of {nodes} {what} started")
                } else {
                    format!("waiting for the {nodes} {what} to form a cluster")
                };
                let secs = began.elapsed().as_secs();
                if tty {
                    eprint!("\r\x1b[2K{phase} ({secs} s)");
                } else {
                    eprintln!("{phase} ({secs} s)");
                }
            }
        }
    };
    if tty && began.elapsed() >= Duration::from_secs(1) {
        eprint!("\r\x1b[2K");
    }
    if result.is_ok() {
        eprintln!("lab up in {:.1} s", began.elapsed().as_secs_f64());
    }
    result
}

fn print_members(state: &LabState) {
    // A Kafka lab records each broker's controller listener where etcd has its peer URL.
    let (member, peer) = match state.system.as_str() {
        "kafka" => ("broker", "controller (via rift)"),
        "mariadb" => ("member", "repl (via rift)"),
        "cassandra" => ("node", "storage (via rift)"),
        _ => ("member", "peer (via rift)"),
    };
    println!(
        "{member:<8} {:<26} {:<26} {peer}",
        "client (via rift)", "client (direct)"
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
    let healthy = state.is_healthy();
    let proxy = state.processes.iter().find(|p| p.name == "rift-proxy");
    let mut out = json!({
        "system": state.system,
        "state_dir": state_dir,
        "started_at": state.started_at,
        "healthy": healthy,
        "api_url": state.api_url,
        "proxy_running": proxy.is_some_and(|p| running.contains(&p.pid)),
        "settings": state.settings,
    });
    let process = |name: &str| {
        let p = state.processes.iter().find(|p| p.name == name);
        (
            p.map(|p| p.pid),
            p.is_some_and(|p| running.contains(&p.pid)),
        )
    };
    let table = match state.system.as_str() {
        "etcd" => etcd_status(&state, &mut out, process).await?,
        "kafka" => kafka_status(&state, &mut out, process).await,
        "zookeeper" => rift_checkers::zookeeper::lab::status(&state, &mut out, process).await,
        "mariadb" => rift_checkers::mariadb::lab::status(&state, &mut out, process).await,
        "cassandra" => cassandra::status(&state, &mut out, process).await,
        other => bail!(
            "{}: unknown lab system {other:?} (known: etcd, kafka, zookeeper, mariadb, cassandra)",
            LabState::path(&state_dir).display()
        ),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let version = state.settings.get("version").and_then(|v| v.as_str());
        println!(
            "{}{} lab in {} (started {}), rift API {}{}",
            state.system,
            version.map(|v| format!(" {v}")).unwrap_or_default(),
            state_dir.display(),
            state.started_at,
            state.api_url.as_deref().unwrap_or("-"),
            if healthy {
                ""
            } else {
                "  [DEGRADED: some processes are gone; `rift lab down` cleans up]"
            }
        );
        print!("{table}");
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn yes_no(v: &serde_json::Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "NO"
    }
}

fn or_dash(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "-".into(),
    }
}

/// Fills `out` with the etcd members and their leader; returns the text table.
async fn etcd_status(
    state: &LabState,
    out: &mut serde_json::Value,
    process: impl Fn(&str) -> (Option<u32>, bool),
) -> anyhow::Result<String> {
    let endpoints: Vec<(String, String)> = state
        .members
        .iter()
        .map(|m| (m.name.clone(), m.direct_client_url.clone()))
        .collect();
    let observer = EtcdObserver::connect(&endpoints).await?;
    let all = observer.status_all(Duration::from_millis(800)).await;
    let leader = majority_leader_of(&all, observer.quorum());
    let mut members = Vec::new();
    for m in &state.members {
        let (pid, running) = process(&m.name);
        let st = all.iter().find(|(n, _)| *n == m.name).map(|(_, s)| s);
        members.push(json!({
            "name": m.name,
            "pid": pid,
            "running": running,
            "client_url": m.client_url,
            "direct_client_url": m.direct_client_url,
            "peer_url": m.peer_url,
            "leader": st.and_then(|s| s.as_ref().ok()).and_then(|s| s.leader.clone()),
            "applied_term": st.and_then(|s| s.as_ref().ok()).map(|s| s.applied_term),
            "error": st.and_then(|s| s.as_ref().err()).map(|e| e.to_string()),
        }));
    }
    let mut t = match &leader {
        Some((l, term)) => format!("leader {l}, applied term {term}\n"),
        None => "no leader agreed by a majority\n".to_string(),
    };
    t += &format!(
        "{:<8} {:<8} {:<7} {:<8} {:<5} {:<26} client (direct)\n",
        "member", "pid", "running", "leader", "term", "client (via rift)"
    );
    for m in &members {
        t += &format!(
            "{:<8} {:<8} {:<7} {:<8} {:<5} {:<26} {}\n",
            or_dash(&m["name"]),
            or_dash(&m["pid"]),
            yes_no(&m["running"]),
            or_dash(&m["leader"]),
            or_dash(&m["applied_term"]),
            or_dash(&m["client_url"]),
            or_dash(&m["direct_client_url"]),
        );
    }
    out["leader"] = json!(leader.as_ref().map(|l| &l.0));
    out["term"] = json!(leader.as_ref().map(|l| l.1));
    out["members"] = members.into();
    Ok(t)
}

/// Fills `out` with the brokers and the active KRaft controller, asked of the
/// brokers' real controller listeners so a fault in place never hides it; returns the
/// text table.
async fn kafka_status(
    state: &LabState,
    out: &mut serde_json::Value,
    process: impl Fn(&str) -> (Option<u32>, bool),
) -> String {
    let active = active_controller(state).await;
    let direct_controllers = &state.settings["direct_controllers"];
    let mut brokers = Vec::new();
    for m in &state.members {
        let (pid, running) = process(&m.name);
        brokers.push(json!({
            "name": m.name,
            "pid": pid,
            "running": running,
            "client_url": m.client_url,
            "direct_client_url": m.direct_client_url,
            "controller_url": m.peer_url,
            "direct_controller_url": direct_controllers.get(&m.name),
            "active_controller": active.as_ref().is_some_and(|(a, _)| *a == m.name),
        }));
    }
    let mut t = match &active {
        Some((c, epoch)) => format!("active controller {c}, epoch {epoch}\n"),
        None => "no active controller answers DescribeQuorum\n".to_string(),
    };
    t += &format!(
        "{:<8} {:<8} {:<7} {:<10} {:<22} {:<22} controller (via rift)\n",
        "broker", "pid", "running", "controller", "client (via rift)", "client (direct)"
    );
    for b in &brokers {
        t += &format!(
            "{:<8} {:<8} {:<7} {:<10} {:<22} {:<22} {}\n",
            or_dash(&b["name"]),
            or_dash(&b["pid"]),
            yes_no(&b["running"]),
            if b["active_controller"] == true {
                "active"
            } else {
                "-"
            },
            or_dash(&b["client_url"]),
            or_dash(&b["direct_client_url"]),
            or_dash(&b["controller_url"]),
        );
    }
    out["active_controller"] = json!(active.as_ref().map(|a| &a.0));
    out["controller_epoch"] = json!(active.as_ref().map(|a| a.1));
    out["members"] = brokers.into();
    t
}
