//! rift-linbench: rift's linearizability checker side by side with porcupine (Go), on
//! the same generated register histories and, optionally, on Jepsen's etcd logs.
//!
//! Each history is written as `history.jsonl`, checked by rift in-process (the median of
//! `--runs` checks) and by `porcupine-bench` (benches/porcupine, the same rules for
//! failed and indeterminate operations, the median of as many checks in its process).
//! Verdicts must agree: a disagreement fails the run. Times are reported, never asserted.

mod generate;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rift_history::linear::{self, Options, Verdict};
use rift_history::{History, jepsen, write_jsonl};
use serde::Deserialize;

use generate::{Spec, generate};

#[derive(Debug, Parser)]
#[command(
    name = "rift-linbench",
    about = "rift's linearizability checker against porcupine"
)]
struct Args {
    /// Smoke mode: 1,000-operation histories and one run each.
    #[arg(long)]
    quick: bool,
    /// Checks per history (median reported); default 5, 1 with --quick.
    #[arg(long)]
    runs: Option<usize>,
    /// Operations per generated history.
    #[arg(long)]
    ops: Option<usize>,
    /// The porcupine driver built from benches/porcupine.
    #[arg(long, env = "PORCUPINE_BENCH")]
    porcupine: PathBuf,
    /// Also check every `*.log` Jepsen etcd register log in this directory (porcupine's
    /// test_data/jepsen) with both checkers.
    #[arg(long)]
    jepsen_dir: Option<PathBuf>,
    /// Histories and results.md go here.
    #[arg(long, default_value = "target/linbench")]
    out: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Porcupine {
    ops: usize,
    verdict: String,
    check_ns: u64,
    verbose_ns: u64,
}

struct Row {
    name: String,
    ops: usize,
    rift: Verdict,
    rift_ns: u64,
    porcupine: Porcupine,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn rift_check(history: &History, runs: usize) -> Result<(Verdict, u64, usize)> {
    let options = Options {
        budget: Duration::from_secs(60),
        ..Options::default()
    };
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let report = linear::check(history, &options).context("rift refused the history")?;
        times.push(started.elapsed().as_nanos() as u64);
        last = Some(report);
    }
    let report = last.context("no run")?;
    Ok((report.verdict, median(times), report.counts.checked))
}

fn porcupine_check(bin: &Path, files: &[PathBuf], runs: usize) -> Result<Vec<Porcupine>> {
    let out = Command::new(bin)
        .arg("-runs")
        .arg(runs.to_string())
        .args(files)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (scripts/bench-linear.sh builds it)",
                bin.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("porcupine-bench said {l:?}")))
        .collect()
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let ops = args.ops.unwrap_or(if args.quick { 1_000 } else { 10_000 });
    std::fs::create_dir_all(&args.out)?;
    let specs = [
        ("linearizable", 0.0, false),
        ("1% indeterminate", 0.01, false),
        ("5% indeterminate", 0.05, false),
        ("one stale read", 0.01, true),
    ];
    let mut histories: Vec<(String, History, PathBuf)> = Vec::new();
    for (i, (name, indeterminate, stale_read)) in specs.iter().enumerate() {
        let spec = Spec {
            ops,
            keys: 5,
            clients: 10,
            indeterminate: *indeterminate,
            stale_read: *stale_read,
            seed: 7 + i as u64,
        };
        let history = generate(&spec);
        let path = args.out.join(format!("gen-{i}.jsonl"));
        write_jsonl(
            &history,
            std::io::BufWriter::new(std::fs::File::create(&path)?),
        )?;
        histories.push((
            format!("{name}: {ops} ops, 5 keys, 10 clients"),
            history,
            path,
        ));
    }
    if let Some(dir) = &args.jepsen_dir {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        let jdir = args.out.join("jepsen");
        std::fs::create_dir_all(&jdir)?;
        for log in logs {
            let text = std::fs::read_to_string(&log)?;
            let parsed = jepsen::read_jepsen(text.as_bytes(), &log.display().to_string())?;
            let name = log
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let path = jdir.join(format!("{name}.jsonl"));
            write_jsonl(
                &parsed.history,
                std::io::BufWriter::new(std::fs::File::create(&path)?),
            )?;
            histories.push((format!("jepsen {name}"), parsed.history, path));
        }
    }
    let files: Vec<PathBuf> = histories.iter().map(|(_, _, p)| p.clone()).collect();
    eprintln!(
        "porcupine: checking {} histories, {runs} run(s) each",
        files.len()
    );
    let porcupine = porcupine_check(&args.porcupine, &files, runs)?;
    let mut rows = Vec::new();
    for ((name, history, _), porcupine) in histories.iter().zip(porcupine) {
        eprintln!("rift: {name}");
        let (verdict, ns, checked) = rift_check(history, runs)?;
        rows.push(Row {
            name: name.clone(),
            ops: checked,
            rift: verdict,
            rift_ns: ns,
            porcupine,
        });
    }
    let report = render(&rows, runs);
    print!("{report}");
    std::fs::write(args.out.join("results.md"), &report)?;
    let disagree: Vec<&Row> = rows
        .iter()
        .filter(|r| r.rift.name() != r.porcupine.verdict)
        .collect();
    if !disagree.is_empty() {
        for r in &disagree {
            eprintln!(
                "verdicts differ on {}: rift {}, porcupine {}",
                r.name,
                r.rift.name(),
                r.porcupine.verdict
            );
        }
        bail!("{} histories judged differently", disagree.len());
    }
    Ok(())
}

fn render(rows: &[Row], runs: usize) -> String {
    let mut out = String::from(
        "| history | ops checked (rift / porcupine) | verdict | rift | porcupine | porcupine, with partial linearizations | rift / porcupine |\n|---|---|---|---|---|---|---|\n",
    );
    let (generated, logs): (Vec<&Row>, Vec<&Row>) =
        rows.iter().partition(|r| !r.name.starts_with("jepsen "));
    for r in &generated {
        out += &format!(
            "| {} | {} / {} | {} | {} | {} | {} | {:.2} |\n",
            r.name,
            r.ops,
            r.porcupine.ops,
            r.rift.name(),
            ms(r.rift_ns),
            ms(r.porcupine.check_ns),
            ms(r.porcupine.verbose_ns),
            r.rift_ns as f64 / r.porcupine.check_ns.max(1) as f64
        );
    }
    if !logs.is_empty() {
        let sum = |f: &dyn Fn(&Row) -> u64| logs.iter().map(|r| f(r)).sum::<u64>();
        let (rift, porc, verbose) = (
            sum(&|r| r.rift_ns),
            sum(&|r| r.porcupine.check_ns),
            sum(&|r| r.porcupine.verbose_ns),
        );
        let fails = logs.iter().filter(|r| r.rift == Verdict::Fail).count();
        out += &format!(
            "| {} Jepsen etcd logs (porcupine's test data), total | {} / {} | {} FAIL, {} PASS, verdicts agree: {} | {} | {} | {} | {:.2} |\n",
            logs.len(),
            logs.iter().map(|r| r.ops).sum::<usize>(),
            logs.iter().map(|r| r.porcupine.ops).sum::<usize>(),
            fails,
            logs.len() - fails,
            logs.iter().all(|r| r.rift.name() == r.porcupine.verdict),
            ms(rift),
            ms(porc),
            ms(verbose),
            rift as f64 / porc.max(1) as f64
        );
    }
    if cfg!(debug_assertions) {
        out += "\nDebug build (smoke run): these figures only prove the harness works; see docs/benchmarks.md.\n";
    }
    out += &format!(
        "\nMedian of {runs} run(s) per history, wall time of the check alone (parsing excluded) on the monotonic clock; \
         rift checks keys on one thread per core, porcupine on one goroutine per key with GOMAXPROCS = cores.\n"
    );
    out
}
