//! `rift history check`: judge a recorded history offline. Reads rift's
//! `history.jsonl` or a Jepsen register log, checks it for linearizability against a
//! register per key, prints the verdict with its evidence (or JSON), optionally writes
//! the HTML view, and exits 0 linearizable, 1 not, 3 unknown, 2 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use rift_history::html::{Page, TimeUnit};
use rift_history::linear::{self, OpRef, Verdict};
use rift_history::{History, jepsen};

#[derive(Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    command: HistoryCommand,
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Check a history for linearizability (exit 0 yes, 1 no, 3 unknown, 2 bad input).
    Check(CheckArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// rift's history.jsonl (one JSON object a line; docs/history.md).
    Rift,
    /// Jepsen's etcd register log (`INFO  jepsen.util - 3 :invoke :write 4`).
    Jepsen,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    /// One register per key: read, write, cas; values are integers or null.
    Register,
}

#[derive(Args)]
struct CheckArgs {
    /// The history file.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "rift")]
    format: Format,
    #[arg(long, value_enum, default_value = "register")]
    model: ModelArg,
    /// Also write the HTML view of the history and the verdict here.
    #[arg(long, value_name = "OUT")]
    html: Option<PathBuf>,
    /// Stop searching after this long and answer UNKNOWN.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    budget: Duration,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Count serializable reads as if they were linearizable.
    #[arg(long)]
    include_serializable: bool,
}

pub async fn run(args: HistoryArgs) -> Result<ExitCode> {
    match args.command {
        HistoryCommand::Check(args) => tokio::task::spawn_blocking(move || check(&args))
            .await
            .context("the check thread stopped")?,
    }
}

/// A history and the line each entry came from.
struct Loaded {
    history: History,
    lines: Vec<usize>,
    unit: TimeUnit,
}

/// Bad input: printed as `FILE:LINE: ...` and answered with exit code 2.
struct BadInput(String);

fn load(path: &Path, format: Format) -> Result<Loaded, BadInput> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("{shown}: {e}")))?;
    match format {
        Format::Rift => {
            let history = rift_history::read_jsonl(text.as_bytes(), &shown)
                .map_err(|e| BadInput(e.to_string()))?;
            // read_jsonl skips blank lines; entry i is the i-th non-blank line.
            let lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, _)| i + 1)
                .collect();
            Ok(Loaded {
                history,
                lines,
                unit: TimeUnit::Nanos,
            })
        }
        Format::Jepsen => {
            let log = jepsen::read_jepsen(text.as_bytes(), &shown)
                .map_err(|e| BadInput(e.to_string()))?;
            Ok(Loaded {
                history: log.history,
                lines: log.lines,
                unit: TimeUnit::Lines,
            })
        }
    }
}

fn check(args: &CheckArgs) -> Result<ExitCode> {
    let ModelArg::Register = args.model;
    let shown = args.file.display().to_string();
    let loaded = match load(&args.file, args.format) {
        Ok(loaded) => loaded,
        Err(BadInput(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let line_of = |entry: usize| loaded.lines.get(entry).copied().unwrap_or(0);
    let options = linear::Options {
        budget: args.budget,
        include_serializable: args.include_serializable,
        threads: 0,
    };
    let report = match linear::check(&loaded.history, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "error: {shown}:{}: field `{}`: {}",
                line_of(e.entry),
                e.field,
                e.reason
            );
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let unit = loaded.unit;
        let locate = |op: &OpRef| match (unit, op.completion_entry) {
            (TimeUnit::Lines, Some(done)) => {
                format!("lines {}–{}", line_of(op.entry), line_of(done))
            }
            (TimeUnit::Lines, None) => format!("line {}", line_of(op.entry)),
            (TimeUnit::Nanos, _) => format!(
                "line {}, {} → {}",
                line_of(op.entry),
                seconds(op.call),
                op.ret.map_or_else(|| "indeterminate".to_string(), seconds)
            ),
        };
        print!("{}", linear::report::render_text(&report, &locate));
    }
    if let Some(out) = &args.html {
        let page = Page {
            title: format!("rift history: {}", args.file.display()),
            history: &loaded.history,
            check: Some(&report),
            unit: loaded.unit,
            markers: Vec::new(),
        };
        std::fs::write(out, rift_history::html::render(&page))
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(match report.verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(1),
        Verdict::Unknown => ExitCode::from(3),
    })
}

/// Seconds since the run started, to the nanosecond the history records.
fn seconds(ns: u64) -> String {
    format!("{}.{:09} s", ns / 1_000_000_000, ns % 1_000_000_000)
}
