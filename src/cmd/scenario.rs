//! `rift scenario`: run a scenario file (a fault timeline with checkers) against a
//! real cluster that rift starts, or one already running behind a `rift proxy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rift_checkers::capture::scenario::{self as no_crossing, no_crossing_specs};
use rift_checkers::report::Report;
use rift_checkers::scenario::Status;
use rift_checkers::scenario::runner::{RunOptions, run as run_scenario};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{AttachOptions, StartOptions, attach_cluster, start_cluster};

#[derive(Args)]
pub struct ScenarioArgs {
    #[command(subcommand)]
    command: ScenarioCommand,
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Start a cluster (or attach to one), apply the fault, hold, heal, settle, judge.
    #[command(
        after_help = "Examples:\n  rift scenario run profiles/scenarios/etcd-leader-isolation.toml\n  \
rift scenario run FILE --runs 20 --out reports/leader-isolation\n  \
rift scenario run FILE --attach http://127.0.0.1:7070\n  \
rift scenario run FILE --attach http://127.0.0.1:7070 --endpoint etcd1=http://etcd1.lan:2379 ...\n\
With --attach, members' real client addresses come from the proxy's topology (the\n\
upstream of each node's `client` endpoint); --endpoint overrides them.\n\
Exit status: 0 when every checker passes, 1 when one fails, 3 when none fails but one\n\
is UNKNOWN (the evidence it needs is missing), 2 on a usage or setup error."
    )]
    Run(RunArgs),
    /// Run scenarios on several releases of their system (a fresh lab each) and print
    /// one table: scenario x version -> verdicts and key timings; matrix.json beside it.
    #[command(
        after_help = "Examples:\n  rift scenario matrix profiles/scenarios/etcd-leader-isolation.toml --versions 3.4,3.5,3.6\n  \
rift scenario matrix profiles/scenarios/kafka-leader-isolation.toml --versions 3.9,4.4 --hold 5s\n\
Exit status: 0 when every run passes, 1 otherwise."
    )]
    Matrix(super::matrix::MatrixArgs),
    /// Parse scenario files and report errors, without running anything.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The scenario TOML file.
    file: PathBuf,
    /// Report directory (default: .rift/reports/<scenario>-<UTC timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use the running proxy at this control API instead of starting a lab.
    #[arg(long)]
    attach: Option<String>,
    /// With --attach: a member's real client address, as NAME=URL (etcd:
    /// http://HOST:PORT; Kafka: HOST:PORT). Repeat per member. Default: the upstream of
    /// each node's `client` endpoint in the proxy's topology.
    #[arg(long = "endpoint", value_parser = parse_endpoint)]
    endpoints: Vec<(String, String)>,
    /// State directory of the lab started for this run (default: .rift/scenario/<scenario>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// First port of the lab's port range (default: a random free range).
    #[arg(long)]
    base_port: Option<u16>,
    /// No progress lines while waiting.
    #[arg(long)]
    quiet: bool,
    /// Run the scenario this many times, each on a fresh cluster, and print a summary
    /// (verdict counts per checker; median, p90, min and max of each timing) also
    /// written as summary.json; each run's reports go to run-NN/ under --out.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Record the traffic between rift and the members into the report directory
    /// (capture.pcap, capture-sockets.json, capture-events.jsonl; needs CAP_NET_RAW)
    /// and judge the scenario's `no-crossing` checkers from it after the run.
    #[arg(long)]
    capture: bool,
}

fn parse_endpoint(text: &str) -> Result<(String, String), String> {
    let (name, url) = text
        .split_once('=')
        .filter(|(n, u)| !n.is_empty() && !u.is_empty())
        .ok_or_else(|| format!("{text:?}: expected NAME=URL, e.g. etcd1=http://127.0.0.1:2379"))?;
    Ok((name.to_string(), url.to_string()))
}

/// The members' real client addresses for `--attach`: the `--endpoint` flags when
/// given, else derived from the proxy's topology. Kafka's attach reads the topology
/// itself, so for it the flags are passed through as given.
async fn attach_endpoints(
    system: &str,
    api: &str,
    given: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    if system != "etcd" {
        return Ok(given.to_vec());
    }
    if let Some((name, url)) = given
        .iter()
        .find(|(_, u)| !u.starts_with("http://") && !u.starts_with("https://"))
    {
        bail!("--endpoint {name}={url}: an etcd client URL must start with http:// or https://");
    }
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let topology = rift_proxy::client::ApiClient::new(api)
        .topology()
        .await
        .with_context(|| format!("--attach {api}: reading the proxy's topology"))?;
    let mut endpoints = Vec::new();
    for node in &topology.nodes {
        let Some(client) = node.endpoints.iter().find(|e| e.name == "client") else {
            bail!(
                "--attach {api}: topology node {} has no `client` endpoint to derive its client URL from; \
                 give --endpoint NAME=URL for every member",
                node.name
            );
        };
        // A compose topology names containers this host may not resolve; say which
        // flag fixes it rather than failing later inside the etcd client.
        if std::net::ToSocketAddrs::to_socket_addrs(client.upstream.as_str()).is_err() {
            bail!(
                "--attach {api}: node {}'s client upstream {:?} does not resolve from here; \
                 give --endpoint {}=http://HOST:PORT for every member",
                node.name,
                client.upstream,
                node.name
            );
        }
        endpoints.push((node.name.clone(), format!("http://{}", client.upstream)));
    }
    Ok(endpoints)
}

pub async fn run(args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ScenarioCommand::Run(r) => match run_cmd(r).await {
            Ok(code) => Ok(code),
            // A run that could not complete (bad file, lab that would not start, a
            // proxy that refused the fault) has no verdict: 2, like a usage error.
            Err(e) => {
                eprintln!("error: {e:#}");
                Ok(ExitCode::from(2))
            }
        },
        ScenarioCommand::Matrix(m) => super::matrix::run(m).await,
        ScenarioCommand::Check { files } => {
            let mut failed = 0;
            for f in &files {
                match Scenario::load(f)
                    .map_err(anyhow::Error::from)
                    .and_then(|s| {
                        check_profile(&s)?;
                        no_crossing_specs(&s)?;
                        Ok(s)
                    }) {
                    Ok(s) => println!(
                        "{}: ok ({}: {} on {} nodes, {} checker(s))",
                        f.display(),
                        s.name,
                        s.cluster.system,
                        s.cluster.nodes,
                        s.checkers.len()
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e:#}");
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn run_cmd(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(&args.file)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name));
    if args.runs <= 1 {
        let report = run_once(&args, &scenario, &out).await?;
        return finish(&report, &out);
    }
    // Each run on a fresh cluster (a lab started for it; with --attach the same
    // cluster, healed after each run), its reports in run-NN/ under the output
    // directory, then the summary over all of them.
    let mut results = Vec::new();
    for run in 1..=args.runs {
        let dir = out.join(format!("run-{run:02}"));
        eprintln!("run {run} of {}", args.runs);
        let result = match run_once(&args, &scenario, &dir).await {
            Ok(report) => {
                println!("{}", report.table());
                report
                    .write_all(&dir)
                    .with_context(|| format!("writing the report into {}", dir.display()))?;
                Ok(report)
            }
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
            Err(e) => {
                eprintln!("run {run}: error: {e:#}");
                Err(format!("{e:#}"))
            }
        };
        results.push((run as usize, dir.display().to_string(), result));
    }
    let summary = rift_checkers::report::summary::summarize(&scenario.name, &results);
    println!("{}", summary.table());
    let path = summary
        .write(&out)
        .with_context(|| format!("writing the summary into {}", out.display()))?;
    println!("summary: {}", path.display());
    Ok(match summary.status {
        Some(status) => exit_code(status),
        None => ExitCode::from(2),
    })
}

/// Ctrl-C during a run: the fault was healed and the lab stopped; no further runs.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Starts (or attaches to) the cluster, runs the scenario once, and stops the cluster.
/// With --capture the run's packets go to `dir`, and the scenario's no-crossing
/// checkers are judged from them.
async fn run_once(args: &RunArgs, scenario: &Scenario, dir: &Path) -> anyhow::Result<Report> {
    let no_crossing = no_crossing_specs(scenario)?;
    let cluster = match &args.attach {
        Some(api) => {
            let endpoints =
                attach_endpoints(&scenario.cluster.system, api, &args.endpoints).await?;
            let options = AttachOptions {
                api_url: api.clone(),
                endpoints,
            };
            attach_cluster(&scenario.cluster, &scenario.origin, &options).await?
        }
        None => {
            if !args.endpoints.is_empty() {
                bail!("--endpoint is only used with --attach");
            }
            // A lab's proxy knows the built-in profiles: catch a typo before starting it.
            check_profile(scenario)?;
            let state_dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".rift/scenario").join(&scenario.name));
            eprintln!(
                "starting a {}-node {} lab in {}",
                scenario.cluster.nodes,
                scenario.cluster.system,
                state_dir.display()
            );
            let options = StartOptions {
                state_dir,
                base_port: args.base_port,
            };
            start_cluster(&scenario.cluster, &scenario.origin, &options).await?
        }
    };
    let capture = if args.capture {
        let api = match &args.attach {
            Some(api) => Some(api.clone()),
            None => cluster.info()["rift_api"].as_str().map(str::to_string),
        };
        let started = match api {
            Some(api) => super::capture::start_for_scenario(&api, dir).await,
            None => Err(anyhow::anyhow!("--capture: the cluster names no rift API")),
        };
        match started {
            Ok(c) => Some(c),
            Err(e) => {
                cluster.shutdown().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let options = RunOptions { quiet: args.quiet };
    let work = async {
        // Ctrl-C must not leave a fault in place or members running.
        tokio::select! {
            r = run_scenario(scenario, cluster.as_ref(), &options) => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Interrupted)),
        }
    };
    let (result, captured) = match capture {
        Some(c) => c.during(work).await,
        None => (
            work.await,
            Err("no packet capture: run with --capture to judge it".to_string()),
        ),
    };
    if result.is_err() {
        let _ = cluster.nemesis().heal().await;
    }
    cluster.shutdown().await;
    let mut report = result?;
    for (at, settings) in &no_crossing {
        let v = no_crossing::verdict(dir, settings, captured.clone());
        report.verdicts.insert((*at).min(report.verdicts.len()), v);
    }
    report.status = Status::combine(report.verdicts.iter().map(|v| v.status));
    Ok(report)
}

fn finish(report: &Report, out: &Path) -> anyhow::Result<ExitCode> {
    println!("{}", report.table());
    let files = report
        .write_all(out)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    println!("reports:");
    for f in files {
        println!("  {}", f.display());
    }
    Ok(exit_code(report.status))
}

/// 0 when every checker passed, 1 when one failed, 3 when none failed but one lacked
/// the evidence it needed (UNKNOWN). A usage or setup error is 2.
fn exit_code(status: Status) -> ExitCode {
    match status {
        Status::Pass => ExitCode::SUCCESS,
        Status::Fail => ExitCode::FAILURE,
        Status::Unknown => ExitCode::from(3),
    }
}

fn check_profile(s: &Scenario) -> anyhow::Result<()> {
    for p in s.profiles() {
        rift_proxy::profile::ProfileLibrary::builtin()
            .get(&p)
            .with_context(|| format!("{}: profile {p}", s.origin))?;
    }
    Ok(())
}

fn default_out(name: &str) -> PathBuf {
    let stamp: String = rift_checkers::lab::now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    PathBuf::from(".rift/reports").join(format!("{name}-{stamp}"))
}
