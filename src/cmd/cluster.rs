//! `rift controller` and `rift agent`: rift across hosts (see `docs/multihost.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rift_proxy::cluster::agent::{self, AgentOptions};
use rift_proxy::cluster::controller::{self, ControllerOptions};
use rift_proxy::cluster::tls::TlsFiles;
use rift_proxy::cluster::{ClusterStatus, ClusterTopology};

#[derive(Args)]
#[command(
    after_help = "Topology file: the proxy's (see `rift proxy --help`) plus one [[agent]] \
per host or pod:\n\n  \
[[agent]]\n  name = \"host1\"\n  api = \"10.0.0.11:7071\"   # where the controller reaches it\n  \
nodes = [\"etcd1\"]           # the nodes whose listeners it owns\n\n\
Every command that drives a proxy (partition, isolate, apply, heal, status, events, \
scenario run --attach) works unchanged with --api pointing at the controller."
)]
pub struct ControllerArgs {
    /// Topology file with [[agent]] entries.
    #[arg(long, short)]
    topology: PathBuf,
    /// Controller API address (overrides the topology's [api] listen).
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// Append every control event to this JSONL file.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Directory of extra profile files (*.toml) added to the built-in ones.
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// File holding the bearer token (else RIFT_TOKEN): required by this API and by the
    /// agents, and sent to them.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS between the controller and its agents (rustls).
#[derive(Args)]
pub struct TlsArgs {
    /// Serve this API over HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Dial the peers (agents, or the controller) over HTTPS and accept only
    /// certificates signed by this CA (PEM). The CLI takes it from RIFT_TLS_CA.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    fn files(self) -> TlsFiles {
        TlsFiles {
            cert: self.tls_cert,
            key: self.tls_key,
            ca: self.tls_ca,
        }
    }
}

#[derive(Args)]
pub struct AgentArgs {
    /// This agent's name in the controller's topology.
    #[arg(long)]
    name: String,
    /// The controller's API (URL or host:port).
    #[arg(long, env = "RIFT_CONTROLLER")]
    controller: String,
    /// Agent API address; default: the agent's `api` in the controller's topology.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// File holding the bearer token (else RIFT_TOKEN), the controller's.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Append every event (each switch of version) to this JSONL file.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Give up when the controller has not answered for this long (default: keep trying;
    /// no listener opens before the matrix is fetched).
    #[arg(long, value_parser = humantime::parse_duration)]
    fetch_timeout: Option<Duration>,
    #[command(flatten)]
    tls: TlsArgs,
}

pub async fn controller(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    let config = ClusterTopology::load(&args.topology)?;
    let options = ControllerOptions {
        api_listen: args.api_listen,
        events_path: args.events,
        profiles_dir: args.profiles,
        api_token: rift_proxy::auth::load_token(args.token_file.as_deref())?,
        tls: args.tls.files(),
    };
    let running = controller::start(config, options)
        .await
        .context("starting the controller")?;
    eprintln!(
        "rift controller API on {} (Ctrl-C to stop)",
        running.api_url()
    );
    running.run_until_signal().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let options = AgentOptions {
        name: args.name,
        controller: args.controller,
        api_listen: args.api_listen,
        token: rift_proxy::auth::load_token(args.token_file.as_deref())?,
        events_path: args.events,
        fetch_deadline: args.fetch_timeout,
        tls: args.tls.files(),
    };
    let name = options.name.clone();
    let running = agent::start(options)
        .await
        .with_context(|| format!("starting agent {name}"))?;
    for node in &running.topology().nodes {
        for endpoint in &node.endpoints {
            tracing::info!(node = %node.name, endpoint = %endpoint.name, listen = %endpoint.listen, upstream = %endpoint.upstream, "topology");
        }
    }
    eprintln!(
        "rift agent {name}: API on {} (Ctrl-C to stop)",
        running.api_url()
    );
    running.run_until_signal(false).await;
    Ok(ExitCode::SUCCESS)
}

/// The CLUSTER section of `rift status` against a controller.
pub fn render(cluster: &ClusterStatus) -> String {
    let us = |v: Option<f64>| v.map(|v| format!("{v:.0} µs")).unwrap_or("-".into());
    let mut out = format!(
        "\nCLUSTER (epoch {}): version {}, committed {}, {}\n",
        cluster.epoch,
        cluster.version,
        cluster.committed,
        if cluster.converged {
            "every agent holds it"
        } else {
            "NOT every agent holds it (retrying)"
        }
    );
    let width = cluster
        .agents
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    out.push_str(&format!(
        "  {:<width$}  {:<22}  {:<4}  {:<7}  {:<16}  ERROR\n",
        "AGENT", "API", "UP", "VERSION", "NODES"
    ));
    for a in &cluster.agents {
        out.push_str(&format!(
            "  {:<width$}  {:<22}  {:<4}  {:<7}  {:<16}  {}\n",
            a.name,
            a.api,
            if a.up { "yes" } else { "NO" },
            a.version.map(|v| v.to_string()).unwrap_or("-".into()),
            a.nodes.join(","),
            a.last_error.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!(
        "  switch skew over {} change(s) (first to last agent, agents' clocks, ns resolution): \
         p50 {}, p99 {}, max {}\n",
        cluster.skew.changes,
        us(cluster.skew.p50_us),
        us(cluster.skew.p99_us),
        us(cluster.skew.max_us)
    ));
    if let Some(last) = cluster.changes.last() {
        out.push_str(&format!(
            "  last change: version {} on {} agent(s), skew {:.0} µs (at most {:.0} µs by the controller's clock)\n",
            last.version, last.agents, last.skew_us, last.window_us
        ));
    }
    out
}
