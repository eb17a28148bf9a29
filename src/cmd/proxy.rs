//! `rift proxy`: runs the data plane and the control API until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rift_proxy::control::StatePath;
use rift_proxy::server::{self, ProxyOptions};
use rift_proxy::topology::Topology;

#[derive(Args)]
#[command(after_help = "Topology file (TOML):\n\n  \
[api]\n  listen = \"127.0.0.1:7070\"\n\n  \
[[node]]\n  name = \"etcd1\"\n  source_ips = [\"172.28.0.11\"]   # or source_pids = [1234]\n  \
[[node.endpoint]]\n  name = \"peer\"\n  listen = \"0.0.0.0:12380\"\n  upstream = \"172.28.0.11:2380\"\n\n\
Connections from unknown sources are the identity `client`.\n\n\
Restarts: the faults in force are kept in .rift/proxy/<hash of the command line>.json in\n\
the working directory. `rift proxy` started again with the same command line in the same\n\
directory (after a crash, kill -9 or an upgrade) puts them back before it accepts a\n\
connection, with their expiry times; faults that expired meanwhile stay healed. `rift heal`\n\
removes the file. SIGTERM or Ctrl-C stops accepting, closes every connection and exits 0,\n\
keeping the faults for the next start unless --heal-on-exit.")]
pub struct ProxyArgs {
    /// Topology file: nodes, their endpoints and how to recognise them as sources.
    #[arg(long, short)]
    topology: PathBuf,
    /// Control API address (overrides the topology's [api] listen).
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// Append every control event to this JSONL file.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Directory of extra profile files (*.toml) added to the built-in ones.
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Worker threads of the data plane. One gives the lowest added latency (no
    /// cross-thread wake-ups); raise it for many busy connections on many cores.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// File holding the bearer token the control API requires (else RIFT_TOKEN). Needed
    /// when the API listens anywhere but loopback.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C, heal every fault (and clear the state file) before exiting,
    /// instead of keeping the faults for the next start.
    #[arg(long)]
    heal_on_exit: bool,
    /// Most connections open at once on each listener; more are reset on accept (metric
    /// rift_connections_refused_total, one log line each time a listener fills up).
    /// Each relayed connection holds two descriptors.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
}

impl ProxyArgs {
    pub fn threads(&self) -> usize {
        usize::from(self.threads)
    }
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let topology = Topology::load(&args.topology)?;
    let options = ProxyOptions {
        api_listen: args.api_listen,
        events_path: args.events,
        profiles_dir: args.profiles,
        api_token: rift_proxy::auth::load_token(args.token_file.as_deref())?,
        state: Some(state_path()?),
        max_connections: Some(args.max_connections as usize),
    };
    let running = server::start(topology, options)
        .await
        .context("starting the proxy")?;
    for node in &running.topology().nodes {
        for endpoint in &node.endpoints {
            tracing::info!(node = %node.name, endpoint = %endpoint.name, listen = %endpoint.listen, upstream = %endpoint.upstream, "listening");
        }
    }
    eprintln!("rift control API on {} (Ctrl-C to stop)", running.api_url());
    running.run_until_signal(args.heal_on_exit).await;
    Ok(ExitCode::SUCCESS)
}

/// The state file of this command line in this directory.
fn state_path() -> anyhow::Result<StatePath> {
    let dir = std::env::current_dir().context("the working directory")?;
    let command: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let state = StatePath::for_command(&dir, &command);
    tracing::debug!(path = %state.path.display(), "state file");
    Ok(state)
}
