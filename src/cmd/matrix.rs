//! `rift scenario matrix`: the same scenarios on several releases of their system, one
//! fresh lab per (scenario, version), and one table of verdicts and key timings, with
//! `matrix.json` and every run's full report beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rift_checkers::report::Report;
use rift_checkers::scenario::runner::{RunOptions, run as run_scenario};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};
use serde::Serialize;

#[derive(Args)]
pub struct MatrixArgs {
    /// Scenario TOML files; all of one system when --versions is given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Releases to run each scenario on, comma-separated lines or exact versions
    /// (etcd: 3.4,3.5,3.6; Kafka: 3.9,4.4) [default: every release of the system].
    #[arg(long, value_delimiter = ',')]
    versions: Vec<String>,
    /// Directory for matrix.json and each run's report (default:
    /// .rift/reports/matrix-<UTC timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Shorten the hold of every single-fault scenario to this (e.g. 3s), for a quick
    /// pass; schedules (`[[step]]`, `[generator]`) keep their own holds.
    #[arg(long, value_parser = humantime::parse_duration)]
    hold: Option<std::time::Duration>,
    /// Print the matrix as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One cell: a scenario on one release.
#[derive(Debug, Serialize)]
struct Cell {
    scenario: String,
    file: String,
    system: String,
    version: String,
    /// `pass`, `fail`, ... as in report.json, or `error` when the run did not complete.
    status: String,
    checkers: Vec<CheckerCell>,
    error: Option<String>,
    report_dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct CheckerCell {
    checker: String,
    status: String,
    /// The checker's timings as (label, ms after the fault started); the run's
    /// report.json states how each was measured.
    timings: Vec<(String, i64)>,
}

pub async fn run(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let scenarios = args
        .files
        .iter()
        .map(|f| Scenario::load(f).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp: String = rift_checkers::lab::now_rfc3339()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        PathBuf::from(".rift/reports").join(format!("matrix-{stamp}"))
    });
    let mut cells = Vec::new();
    for scenario in &scenarios {
        for version in versions_for(scenario, &args.versions)? {
            eprintln!(
                "== {} on {} {version}",
                scenario.name, scenario.cluster.system
            );
            let dir = out.join(&scenario.name).join(&version);
            cells.push(run_cell(scenario, &version, args.hold, &dir).await);
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("matrix.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&cells)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cells)?);
    } else {
        print!("{}", table(&cells));
        println!("matrix: {}", json_path.display());
    }
    Ok(if cells.iter().all(|c| c.status == "pass") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The versions asked for, checked against the scenario's system, or all it offers.
fn versions_for(scenario: &Scenario, asked: &[String]) -> anyhow::Result<Vec<String>> {
    use rift_checkers::lab::versions::find;
    let system = rift_checkers::scenario::system::find(&scenario.cluster.system, &scenario.origin)?;
    let releases = system.releases();
    if asked.is_empty() {
        return Ok(releases.iter().map(|r| r.line.to_string()).collect());
    }
    asked
        .iter()
        .map(|v| {
            find(&scenario.cluster.system, releases, Some(v))
                .map(|r| r.line.to_string())
                .with_context(|| format!("--versions for {}", scenario.origin))
        })
        .collect()
}

async fn run_cell(
    scenario: &Scenario,
    version: &str,
    hold: Option<std::time::Duration>,
    dir: &Path,
) -> Cell {
    let mut scenario = scenario.clone();
    scenario
        .cluster
        .settings
        .insert("version".into(), version.to_string().into());
    if let Some(hold) = hold
        && scenario.steps.is_empty()
        && scenario.generator.is_none()
    {
        scenario.timeline.hold = hold;
    }
    let mut cell = Cell {
        scenario: scenario.name.clone(),
        file: scenario.origin.clone(),
        system: scenario.cluster.system.clone(),
        version: version.to_string(),
        status: "error".into(),
        checkers: vec![],
        error: None,
        report_dir: dir.to_path_buf(),
    };
    match run_once(&scenario, dir).await {
        Ok(report) => {
            cell.status = status_name(&report.status);
            let fault_at = report.phase_at("fault").unwrap_or(0) as i64;
            cell.checkers = report
                .verdicts
                .iter()
                .map(|v| CheckerCell {
                    checker: v.checker.clone(),
                    status: status_name(&v.status),
                    timings: v
                        .timings
                        .iter()
                        .filter(|t| t.label != "fault applied")
                        .map(|t| (t.label.clone(), t.at_ms as i64 - fault_at))
                        .collect(),
                })
                .collect();
        }
        Err(e) => {
            eprintln!("error: {} on {version}: {e:#}", scenario.name);
            cell.error = Some(format!("{e:#}"));
        }
    }
    cell
}

/// Runs `scenario` on a fresh lab in `dir/lab` and writes its report into `dir`.
pub(crate) async fn run_once(scenario: &Scenario, dir: &Path) -> anyhow::Result<Report> {
    let options = StartOptions {
        state_dir: dir.join("lab"),
        base_port: None,
    };
    let cluster = start_cluster(&scenario.cluster, &scenario.origin, &options).await?;
    let result = tokio::select! {
        r = run_scenario(scenario, cluster.as_ref(), &RunOptions { quiet: true }) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if result.is_err() {
        let _ = cluster.nemesis().heal().await;
    }
    cluster.shutdown().await;
    let mut report = result?;
    // The runner leaves no-crossing tables to the caller; without a capture they
    // have nothing to judge, and say so rather than vanish from the report.
    for (at, settings) in rift_checkers::capture::scenario::no_crossing_specs(scenario)? {
        let why = "no packet capture: rift scenario matrix does not capture; use rift scenario run --capture";
        let v = rift_checkers::capture::scenario::verdict(dir, &settings, Err(why.into()));
        report.verdicts.insert(at.min(report.verdicts.len()), v);
    }
    report.status =
        rift_checkers::scenario::Status::combine(report.verdicts.iter().map(|v| v.status));
    report
        .write_all(dir)
        .with_context(|| format!("writing the report into {}", dir.display()))?;
    Ok(report)
}

fn status_name<T: Serialize>(status: &T) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_else(|| "?".into())
}

/// A line per (scenario, version) with its verdict, then a line per checker with its
/// verdict and timings after the fault.
fn table(cells: &[Cell]) -> String {
    let mut out = String::new();
    for c in cells {
        out.push_str(&format!(
            "{} on {} {}: {}\n",
            c.scenario,
            c.system,
            c.version,
            c.status.to_uppercase()
        ));
        if let Some(e) = &c.error {
            out.push_str(&format!("    {}\n", e.lines().next().unwrap_or_default()));
        }
        for k in &c.checkers {
            let timings = k
                .timings
                .iter()
                .map(|(label, ms)| format!("{label} {ms:+} ms"))
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&format!(
                "    {:<22} {:<5} {timings}\n",
                k.checker,
                k.status.to_uppercase()
            ));
        }
    }
    out.push_str("(timings: ms after the fault started, as each checker measured them; see each run's report.json)\n");
    out
}
