//! `rift capture`: record the packets between rift and the members (pnet, classic
//! pcap) together with the proxy's socket map and fault events, and judge a recording
//! with the `no-crossing` checker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rift_checkers::capture::files;
use rift_checkers::capture::judge::{Judgement, Scope, Settings};

#[derive(Args)]
pub struct CaptureArgs {
    #[command(subcommand)]
    command: CaptureCommand,
}

#[derive(Subcommand)]
enum CaptureCommand {
    /// Capture the lab's traffic until --duration passes or Ctrl-C.
    #[command(
        after_help = "Example: rift capture record --out /tmp/cut --duration 20s\n\
Writes capture.pcap (read it with `tcpdump -r` or Wireshark), capture-sockets.json and\n\
capture-events.jsonl into --out. Needs root or CAP_NET_RAW."
    )]
    Record(RecordArgs),
    /// Judge a recording: did payload reach the destination of a cut link while it was cut?
    #[command(
        after_help = "Exit status: 0 PASS, 1 FAIL or error, 2 UNKNOWN (the capture lacks the evidence)."
    )]
    Check(CheckArgs),
}

#[derive(Args)]
struct RecordArgs {
    /// URL of the proxy's control API [default: the running lab's, else
    /// http://127.0.0.1:7070].
    #[arg(long, env = "RIFT_API")]
    api: Option<String>,
    /// Say which control API is used and why.
    #[arg(long, short)]
    verbose: bool,
    /// Directory for the recording (created).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this long, e.g. 30s (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Interface to capture on (default: the one carrying the proxy's listeners; `lo` in a lab).
    #[arg(long)]
    interface: Option<String>,
    /// Bytes kept of each frame (headers plus the start of the payload), 64..=65535.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=65535))]
    snaplen: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    /// The endpoints each fault rule names.
    Rule,
    /// Every endpoint of each cut (from, to) pair.
    Pair,
}

#[derive(Args)]
struct CheckArgs {
    /// A directory written by `rift capture record` or `rift scenario run --capture`.
    dir: PathBuf,
    #[arg(long, value_enum, default_value = "rule")]
    scope: ScopeArg,
    /// Margin inside each fault window's edges, in ms (0..=10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    grace_ms: u64,
    /// Print the whole judgement as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CaptureCommand::Record(args) => record(args).await,
        CaptureCommand::Check(args) => check(args),
    }
}

#[cfg(feature = "capture")]
async fn record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    use rift_checkers::capture::record::{RecordOptions, Recording};
    let target = super::target::resolve(args.api.as_deref());
    target.report(args.verbose);
    let mut recording = Recording::start(RecordOptions {
        api: target.url,
        dir: args.out.clone(),
        interface: args.interface,
        snaplen: args.snaplen,
    })
    .await?;
    eprintln!(
        "capturing TCP on {} ports into {}; {}",
        recording.ports().len(),
        args.out.join(files::PCAP).display(),
        match args.duration {
            Some(d) => format!("stopping after {}", humantime::format_duration(d)),
            None => "Ctrl-C stops".to_string(),
        }
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let ran = recording.run(args.duration, stop).await;
    let stats = recording.finish().await?;
    ran?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "capture"))]
async fn record(_args: RecordArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this rift was built without packet capture: rebuild with `--features capture`")
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        scope: match args.scope {
            ScopeArg::Rule => Scope::Rule,
            ScopeArg::Pair => Scope::Pair,
        },
        grace_ms: args.grace_ms,
    };
    let verdict = files::judge_dir(&args.dir, settings)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        println!("no-crossing: {:?}: {}", verdict.status, verdict.summary);
        for link in &verdict.links {
            println!(
                "  fault {} {} {}: {:?}: {}",
                link.fault_id,
                link.fault,
                if link.endpoints.is_empty() {
                    "all endpoints".to_string()
                } else {
                    link.endpoints.join(",")
                },
                link.status,
                link.reason
            );
        }
        println!(
            "  {} segments, {} with payload on no known connection; {}",
            verdict.segments, verdict.unmapped_payload_segments, verdict.resolution
        );
    }
    Ok(match verdict.status {
        Judgement::Pass => ExitCode::SUCCESS,
        Judgement::Fail => ExitCode::FAILURE,
        Judgement::Unknown => ExitCode::from(2),
    })
}

/// The packet recording of one scenario run (`rift scenario run --capture`), written
/// into the run's report directory; the same recording as `rift capture record`.
pub(crate) struct ScenarioCapture {
    #[cfg(feature = "capture")]
    recording: rift_checkers::capture::record::Recording,
}

/// Starts recording the traffic of the proxy at `api` into `dir`: fails here, before
/// the run, without CAP_NET_RAW (the error names the capability and how to grant it).
#[cfg(feature = "capture")]
pub(crate) async fn start_for_scenario(
    api: &str,
    dir: &std::path::Path,
) -> anyhow::Result<ScenarioCapture> {
    use rift_checkers::capture::live::DEFAULT_SNAPLEN;
    use rift_checkers::capture::record::{RecordOptions, Recording};
    let recording = Recording::start(RecordOptions {
        api: api.to_string(),
        dir: dir.to_path_buf(),
        interface: None,
        snaplen: DEFAULT_SNAPLEN,
    })
    .await?;
    eprintln!(
        "capturing TCP on {} ports into {}",
        recording.ports().len(),
        dir.join(files::PCAP).display()
    );
    Ok(ScenarioCapture { recording })
}

#[cfg(not(feature = "capture"))]
pub(crate) async fn start_for_scenario(
    _api: &str,
    _dir: &std::path::Path,
) -> anyhow::Result<ScenarioCapture> {
    anyhow::bail!(
        "--capture: this rift was built without packet capture: rebuild with `--features capture`"
    )
}

impl ScenarioCapture {
    /// Keeps recording while `work` runs, then writes the capture's files. The
    /// outcome of the recording is `Err(why)` when it broke off or could not be
    /// written: the no-crossing verdicts then say so (UNKNOWN).
    #[cfg(feature = "capture")]
    pub(crate) async fn during<T>(
        mut self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Result<(), String>) {
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let work = async {
            let out = work.await;
            let _ = done.send(());
            out
        };
        let record = self.recording.run(None, async {
            let _ = finished.await;
        });
        let (out, ran) = tokio::join!(work, record);
        let written = self.recording.finish().await;
        let outcome = match (ran, written) {
            (Ok(()), Ok(stats)) => {
                eprintln!(
                    "capture: {} frames written ({} loopback copies dropped)",
                    stats.frames_written, stats.loopback_copies_dropped
                );
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => Err(format!("the capture broke off: {e}")),
        };
        (out, outcome)
    }

    #[cfg(not(feature = "capture"))]
    pub(crate) async fn during<T>(
        self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Result<(), String>) {
        (work.await, Err("built without packet capture".into()))
    }
}
