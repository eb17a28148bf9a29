//! The `rift` command line: run the proxy, drive it through its control API, and run
//! scenarios against real clusters. Each sub-command lives in `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rift",
    version,
    about = "TCP-level fault-injecting proxy for Kafka and etcd clusters",
    long_about = "rift sits on the links between cluster members, cuts them according to \
partition profiles (split, isolation, two-vs-two, bridge, one-way...) and checks what the \
real cluster did.\n\nStart the proxy with `rift proxy --topology FILE`, then drive it from \
another shell: `rift isolate n2`, `rift partition --groups n1,n2 n3`, `rift apply split`, \
`rift status`, `rift heal`.",
    after_help = "Every command that talks to a running proxy uses --api (or RIFT_API); without \
either, the running lab's API (`rift lab up`, found in .rift/lab of this directory or a parent, \
or RIFT_LAB_DIR), else http://127.0.0.1:7070. --verbose says which."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy: one listener per (node, endpoint) of the topology, plus the control API.
    Proxy(cmd::proxy::ProxyArgs),
    /// Hold the link matrix of a cluster of agents and drive them (rift across hosts).
    Controller(cmd::cluster::ControllerArgs),
    /// Proxy the members of one host or pod, driven by a controller.
    Agent(cmd::cluster::AgentArgs),
    /// Cut every link between groups of nodes (both directions).
    Partition(cmd::control::PartitionArgs),
    /// Cut one node from all the others (both directions).
    Isolate(cmd::control::IsolateArgs),
    /// Apply a partition profile by name (see `rift profiles`) or from a TOML file.
    Apply(cmd::control::ApplyArgs),
    /// Remove every fault (or one, with --id). Healing a healthy proxy is fine.
    Heal(cmd::control::HealArgs),
    /// Show active faults, cut links, live connections and registered sources.
    Status(cmd::control::StatusArgs),
    /// List partition profiles with one-line descriptions.
    Profiles(cmd::control::ProfilesArgs),
    /// Tell a running proxy that a process or IP address is a node (for members started after rift).
    Sources(cmd::control::SourcesArgs),
    /// Print the proxy's event log (every apply, expiry, heal) as JSON lines.
    Events(cmd::control::EventsArgs),
    /// Start, inspect or stop a local lab of real members behind rift (`rift lab up etcd`).
    Lab(cmd::lab::LabArgs),
    /// Run a scenario file: fault timeline, real cluster, checkers, reports.
    Scenario(cmd::scenario::ScenarioArgs),
    /// Serve cluster gauges (leader per node, Raft term, ISR size) read from the real cluster.
    Watch(cmd::watch::WatchArgs),
    /// Judge a recorded history offline: `rift history check FILE` (linearizability).
    History(cmd::history::HistoryArgs),
    /// Measure the CAP map: each system with a minority cut off, labelled CP/AP from its history.
    CapMap(cmd::cap_map::CapMapArgs),
    /// Capture the packets between rift and the members (pcap) and judge that no byte crossed a cut.
    Capture(cmd::capture::CaptureArgs),
    /// Serve Toxiproxy 2.12's HTTP API (drop-in for toxiproxy-server; also -host/-port/-config).
    Toxiproxy(cmd::toxiproxy::ToxiproxyArgs),
}

fn main() -> std::process::ExitCode {
    cmd::init_logging();
    let cli = Cli::parse_from(cmd::toxiproxy::toxiproxy_server_args(
        std::env::args_os().collect(),
    ));
    if !matches!(
        cli.command,
        Command::Proxy(_)
            | Command::Controller(_)
            | Command::Agent(_)
            | Command::Lab(_)
            | Command::Scenario(_)
            | Command::Watch(_)
            | Command::Capture(_)
            | Command::CapMap(_)
            | Command::Toxiproxy(_)
    ) {
        rift_proxy::restore_default_sigpipe();
    }
    let mut runtime = match &cli.command {
        // One thread runs the data plane and its I/O driver: a relayed chunk never
        // wakes a second thread.
        Command::Proxy(args) if args.threads() == 1 => {
            tokio::runtime::Builder::new_current_thread()
        }
        Command::Proxy(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(args.threads());
            builder
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let result = match cli.command {
        Command::Proxy(args) => cmd::proxy::run(args).await,
        Command::Controller(args) => cmd::cluster::controller(args).await,
        Command::Agent(args) => cmd::cluster::agent(args).await,
        Command::Partition(args) => cmd::control::partition(args).await,
        Command::Isolate(args) => cmd::control::isolate(args).await,
        Command::Apply(args) => cmd::control::apply(args).await,
        Command::Heal(args) => cmd::control::heal(args).await,
        Command::Status(args) => cmd::control::status(args).await,
        Command::Profiles(args) => cmd::control::profiles(args).await,
        Command::Sources(args) => cmd::control::sources(args).await,
        Command::Events(args) => cmd::control::events(args).await,
        Command::Lab(args) => cmd::lab::run(args).await,
        Command::Scenario(args) => cmd::scenario::run(args).await,
        Command::Watch(args) => cmd::watch::run(args).await,
        Command::History(args) => cmd::history::run(args).await,
        Command::Capture(args) => cmd::capture::run(args).await,
        Command::CapMap(args) => cmd::cap_map::run(args).await,
        Command::Toxiproxy(args) => cmd::toxiproxy::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
