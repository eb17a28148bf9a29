//! rift-bench: measures what rift costs on the data path, side by side with a direct
//! connection and peer proxies (HAProxy, socat, Toxiproxy), in one interleaved run.
//!
//! Each target fronts its own echo server on 127.0.0.1. Workloads run round-robin over
//! the targets, round after round, so slow drift on the machine hits every target alike.
//! Results are ratios against the direct connection and rift against each peer, written
//! as markdown and JSON; speed is reported, never asserted.

mod blocking;
mod echo;
mod goals;
mod kafka;
mod many;
mod report;
mod riftapi;
mod run;
mod skew;
mod sys;
mod targets;
mod toxibench;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::targets::{Binaries, Kind};

#[derive(Debug, Parser)]
#[command(
    name = "rift-bench",
    version,
    about = "Overhead of rift against a direct connection and peer proxies"
)]
pub struct Args {
    /// Smoke mode: small counts, a few seconds; proves the harness works, not the speed.
    #[arg(long)]
    pub quick: bool,
    /// Targets to run, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = Kind::ALL.to_vec())]
    pub targets: Vec<Kind>,
    /// Write results.md and results.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rounds of each latency/throughput workload (default: 15, or 1 with --quick).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Idle connections opened through each proxy (default: 10000, or 200 with --quick).
    #[arg(long)]
    pub idle_conns: Option<usize>,
    /// Live connections cut by the partition workload (default: 10000, or 200 with --quick).
    #[arg(long)]
    pub partition_conns: Option<usize>,
    /// Also measure Kafka produce latency (acks=all) on a 3-broker lab, direct and through
    /// rift: needs Java and the Kafka jars (scripts/setup.sh) and about a minute.
    #[arg(long)]
    pub kafka: bool,
    /// The rift binary to benchmark.
    #[arg(long, env = "RIFT_BIN", default_value_os_t = default_rift_bin())]
    pub rift_bin: PathBuf,
    #[arg(long, default_value = "haproxy")]
    pub haproxy_bin: String,
    #[arg(long, default_value = "socat")]
    pub socat_bin: String,
    #[arg(long, default_value = "toxiproxy-server")]
    pub toxiproxy_bin: String,
    /// Internal: run as the echo server process and print its address.
    #[arg(long, hide = true)]
    pub serve_echo: bool,
}

/// The `rift` built next to this binary (same target directory and profile), so a
/// release rift-bench measures a release rift.
fn default_rift_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("rift")))
        .unwrap_or_else(|| PathBuf::from("target/release/rift"))
}

fn main() -> Result<std::process::ExitCode> {
    let args = Args::parse();
    if args.serve_echo {
        echo::serve_process().context("echo server process")?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let plan = run::Plan::new(&args);
    let bins = Binaries {
        rift: args.rift_bin.clone(),
        haproxy: args.haproxy_bin.clone(),
        socat: args.socat_bin.clone(),
        toxiproxy: args.toxiproxy_bin.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the harness runtime")?;
    let report = run::run(&rt, &plan, &args.targets, &bins, args.out.as_deref())?;
    let markdown = report.to_markdown() + &goals::rift_vs_peers_markdown(&report);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("results.md"), &markdown)
            .with_context(|| format!("writing {}/results.md", dir.display()))?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&report)?,
        )
        .with_context(|| format!("writing {}/results.json", dir.display()))?;
        eprintln!(
            "rift-bench: wrote {0}/results.md and {0}/results.json",
            dir.display()
        );
    }
    println!("{markdown}");
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!("rift-bench: FAILED: {f}");
    }
    Ok(std::process::ExitCode::FAILURE)
}
