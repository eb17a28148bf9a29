//! `rift cap-map`: one experiment per system and configuration (a minority, or the
//! primary, isolated under a register workload, then healed), each on a fresh lab, and
//! one table classifying every row CP or AP from what its history proves, beside the
//! textbook label. Writes `cap-map.json`, `report.html` (the CAP map section) and every run's full report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rift_checkers::capmap::{self, Configuration, Row};
use rift_checkers::scenario::spec::Scenario;

#[derive(Args)]
#[command(
    after_help = "Example: rift cap-map --systems etcd,zookeeper --out /tmp/capmap\n\n\
Each configuration's row says whether, while a minority (or the primary) was cut off, the \
minority acknowledged writes, served reads and stale ones, the majority stayed available, and \
whether an acknowledged write was missing after the heal; CP/AP is derived from that. \
Exit status: 0 when every run completed, 1 otherwise (a label that differs from the \
textbook is a finding, not an error)."
)]
pub struct CapMapArgs {
    /// Systems to measure, comma-separated (default: every system in the map).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Directory holding the experiments' scenario files.
    #[arg(long, default_value = capmap::SCENARIO_DIR)]
    scenarios: PathBuf,
    /// Directory for cap-map.json, report.html (the map) and each run's report (default:
    /// .rift/reports/cap-map-<UTC timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also run each system's PACELC experiment (profiles/scenarios/<system>-pacelc.toml,
    /// about half a minute for etcd, two for Kafka) for the else half: EC or EL.
    #[arg(long)]
    pacelc: bool,
    /// Directory of the PACELC scenario files.
    #[arg(long, default_value = "profiles/scenarios")]
    pacelc_scenarios: PathBuf,
}

pub async fn run(args: CapMapArgs) -> anyhow::Result<ExitCode> {
    let configs = capmap::select(&args.systems).map_err(|e| anyhow::anyhow!("--systems: {e}"))?;
    // One run per scenario file; configurations sharing a file share its run.
    let mut files: Vec<&str> = configs.iter().map(|c| c.file).collect();
    files.dedup();
    let scenarios = files
        .iter()
        .map(|f| {
            let path = args.scenarios.join(f);
            Scenario::load(&path)
                .map(|s| (*f, s))
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp: String = rift_checkers::lab::now_rfc3339()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        PathBuf::from(".rift/reports").join(format!("cap-map-{stamp}"))
    });
    let mut rows = Vec::new();
    for (n, (file, scenario)) in scenarios.iter().enumerate() {
        let dir = out.join(&scenario.name);
        let served: Vec<&Configuration> = configs
            .iter()
            .copied()
            .filter(|c| c.file == *file)
            .collect();
        let names: Vec<&str> = served.iter().map(|c| c.name).collect();
        eprintln!(
            "== [{}/{}] {} ({}): {}",
            n + 1,
            scenarios.len(),
            scenario.name,
            names.join(", "),
            scenario.description
        );
        match run_and_read(scenario, &dir).await {
            Ok(history) => {
                for c in served {
                    let row = Row::measure(c, &history, dir.clone());
                    eprintln!("   {}: {}", c.name, row.label());
                    rows.push(row);
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", scenario.name);
                for c in served {
                    rows.push(Row::unmeasured(c, dir.clone(), Some(format!("{e:#}"))));
                }
            }
        }
    }
    if args.pacelc {
        measure_else_halves(&args, &configs, &out, &mut rows).await;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("cap-map.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let html_path = out.join("report.html");
    std::fs::write(&html_path, capmap::render::html(&rows))
        .with_context(|| format!("writing {}", html_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", capmap::render::table(&rows));
        println!(
            "\ncap map: {} and {}",
            json_path.display(),
            html_path.display()
        );
    }
    Ok(if rows.iter().all(|r| r.error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs each distinct PACELC experiment of `configs` once and sets the else half of
/// the rows it serves. A failed run leaves those rows' else half at `?`, said on stderr
/// and in the row's error.
async fn measure_else_halves(
    args: &CapMapArgs,
    configs: &[&Configuration],
    out: &Path,
    rows: &mut [Row],
) {
    let mut files: Vec<&str> = configs
        .iter()
        .filter_map(|c| c.pacelc.map(|p| p.file))
        .collect();
    files.dedup();
    for file in files {
        let path = args.pacelc_scenarios.join(file);
        eprintln!("== PACELC: {}", path.display());
        let result = async {
            let scenario = Scenario::load(&path)?;
            let dir = out.join(&scenario.name);
            run_and_read(&scenario, &dir).await
        }
        .await;
        match result {
            Ok(history) => {
                let map = rift_checkers::pacelc::cap_map(&history);
                for row in rows.iter_mut() {
                    let config = configs.iter().find(|c| c.name == row.configuration);
                    if let Some((config, p)) =
                        config.and_then(|c| c.pacelc.filter(|p| p.file == file).map(|p| (c, p)))
                    {
                        let half = capmap::else_half(&map, p.classes);
                        eprintln!("   {}: {}", config.name, half.label);
                        row.set_else_half(half);
                    }
                }
            }
            Err(e) => {
                eprintln!("error: PACELC {}: {e:#}", path.display());
                for row in rows.iter_mut() {
                    let config = configs.iter().find(|c| c.name == row.configuration);
                    if config.is_some_and(|c| c.pacelc.is_some_and(|p| p.file == file)) {
                        row.error = Some(format!("PACELC {}: {e:#}", path.display()));
                    }
                }
            }
        }
    }
}

/// Runs `scenario` on a fresh lab and reads back the history it wrote.
async fn run_and_read(scenario: &Scenario, dir: &Path) -> anyhow::Result<rift_history::History> {
    super::matrix::run_once(scenario, dir).await?;
    let path = dir.join("history.jsonl");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(rift_history::read_jsonl(
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )?)
}
