//! Repeated runs of one scenario (`rift scenario run FILE --runs N`): per checker the
//! PASS/FAIL/UNKNOWN counts, and per measured timing its median, p90, min and max over
//! the runs with the coarsest resolution any run stated. Printed as a table and written
//! as `summary.json` beside the runs' own report directories.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{Report, status_word};
use crate::scenario::{ScenarioError, Status};

/// One run as the summary lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub run: usize,
    /// `None` when the run could not complete (its error is in `error`).
    pub status: Option<Status>,
    pub dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub checker: String,
    pub pass: usize,
    pub fail: usize,
    pub unknown: usize,
}

/// One measured timing over the runs, in milliseconds after the fault.
#[derive(Debug, Clone, Serialize)]
pub struct TimingStats {
    pub checker: String,
    pub timing: String,
    /// Runs in which it was measured.
    pub count: usize,
    pub median_ms: u64,
    pub p90_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
    /// The coarsest resolution (±) of the measurements.
    pub resolution_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub runs: Vec<RunLine>,
    pub checkers: Vec<Counts>,
    pub timings: Vec<TimingStats>,
    /// Over every run: any FAIL, else any run that could not complete (`null`), else
    /// any UNKNOWN, else PASS.
    pub status: Option<Status>,
}

/// Each verdict's key across runs: its checker name, numbered from the second
/// occurrence in a run (two checkers of one kind).
fn keys(report: &Report) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    report
        .verdicts
        .iter()
        .map(|v| {
            let n = seen.entry(v.checker.as_str()).or_default();
            *n += 1;
            if *n == 1 {
                v.checker.clone()
            } else {
                format!("{}#{n}", v.checker)
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn summarize(scenario: &str, runs: &[(usize, String, Result<Report, String>)]) -> Summary {
    let mut checkers: Vec<Counts> = Vec::new();
    let mut timings: BTreeMap<(String, String), (Vec<u64>, u64)> = BTreeMap::new();
    let mut lines = Vec::new();
    for (run, dir, result) in runs {
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                lines.push(RunLine {
                    run: *run,
                    status: None,
                    dir: dir.clone(),
                    error: Some(e.clone()),
                });
                continue;
            }
        };
        lines.push(RunLine {
            run: *run,
            status: Some(report.status),
            dir: dir.clone(),
            error: None,
        });
        for (key, v) in keys(report).into_iter().zip(&report.verdicts) {
            let at = match checkers.iter().position(|c| c.checker == key) {
                Some(i) => i,
                None => {
                    checkers.push(Counts {
                        checker: key.clone(),
                        ..Default::default()
                    });
                    checkers.len() - 1
                }
            };
            let c = &mut checkers[at];
            match v.status {
                Status::Pass => c.pass += 1,
                Status::Fail => c.fail += 1,
                Status::Unknown => c.unknown += 1,
            }
            for t in &v.timings {
                if let (Some(name), Some(after), Some(res)) =
                    (&t.name, t.after_fault_ms, t.resolution_ms)
                {
                    let e = timings.entry((key.clone(), name.clone())).or_default();
                    e.0.push(after);
                    e.1 = e.1.max(res);
                }
            }
        }
    }
    let timings = timings
        .into_iter()
        .map(|((checker, timing), (mut values, resolution_ms))| {
            values.sort_unstable();
            TimingStats {
                checker,
                timing,
                count: values.len(),
                median_ms: percentile(&values, 0.5),
                p90_ms: percentile(&values, 0.9),
                min_ms: values[0],
                max_ms: values[values.len() - 1],
                resolution_ms,
            }
        })
        .collect();
    let statuses: Vec<Option<Status>> = lines.iter().map(|l| l.status).collect();
    let status = if statuses.contains(&Some(Status::Fail)) {
        Some(Status::Fail)
    } else if statuses.contains(&None) {
        None
    } else {
        Some(Status::combine(statuses.into_iter().flatten()))
    };
    Summary {
        scenario: scenario.to_string(),
        runs: lines,
        checkers,
        timings,
        status,
    }
}

impl Summary {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nscenario {}: {} runs, {}",
            self.scenario,
            self.runs.len(),
            self.status.map_or("ERROR", status_word)
        );
        for r in &self.runs {
            let _ = writeln!(
                out,
                "  run {:>3}: {:<7} {}{}",
                r.run,
                r.status.map_or("ERROR", status_word),
                r.dir,
                r.error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
        let width = self
            .checkers
            .iter()
            .map(|c| c.checker.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            out,
            "{:<width$}  {:>4}  {:>4}  {:>7}",
            "checker", "PASS", "FAIL", "UNKNOWN"
        );
        for c in &self.checkers {
            let _ = writeln!(
                out,
                "{:<width$}  {:>4}  {:>4}  {:>7}",
                c.checker, c.pass, c.fail, c.unknown
            );
        }
        if !self.timings.is_empty() {
            let _ = writeln!(
                out,
                "timings after the fault (n runs: median, p90, min, max; ± resolution):"
            );
            for t in &self.timings {
                let _ = writeln!(
                    out,
                    "  {} {}: n={} median {} ms, p90 {} ms, min {} ms, max {} ms (± {} ms)",
                    t.checker,
                    t.timing,
                    t.count,
                    t.median_ms,
                    t.p90_ms,
                    t.min_ms,
                    t.max_ms,
                    t.resolution_ms
                );
            }
        }
        out
    }

    /// Writes `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, ScenarioError> {
        std::fs::create_dir_all(dir).map_err(|e| super::io(dir, e))?;
        let path = dir.join("summary.json");
        let text = serde_json::to_string_pretty(self).expect("summary serialises");
        std::fs::write(&path, text).map_err(|e| super::io(&path, e))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;
    use crate::scenario::{Timing, Verdict};

    fn run_with(after: u64, status: Status) -> Report {
        let mut r = sample();
        let mut v = Verdict::new("leader-step-down");
        v.timings.push(Timing {
            label: "etcd1 stepped down".into(),
            at_ms: 2000 + after,
            resolution_ms: Some(25 + after / 100),
            name: Some("stepped-down".into()),
            after_fault_ms: Some(after),
        });
        v.status = status;
        r.verdicts = vec![v, Verdict::new("leader-step-down")];
        r.status = status;
        r
    }

    #[test]
    fn counts_statuses_and_aggregates_timings() {
        let runs: Vec<(usize, String, Result<Report, String>)> = (1..=10)
            .map(|i| {
                let status = if i == 3 {
                    Status::Unknown
                } else {
                    Status::Pass
                };
                (
                    i,
                    format!("run-{i:02}"),
                    Ok(run_with(i as u64 * 100, status)),
                )
            })
            .collect();
        let s = summarize("s", &runs);
        assert_eq!(s.status, Some(Status::Unknown));
        assert_eq!(s.checkers.len(), 2, "{s:?}");
        assert_eq!((s.checkers[0].pass, s.checkers[0].unknown), (9, 1));
        assert_eq!(s.checkers[1].checker, "leader-step-down#2");
        let t = &s.timings[0];
        assert_eq!(
            (
                t.count,
                t.median_ms,
                t.p90_ms,
                t.min_ms,
                t.max_ms,
                t.resolution_ms
            ),
            (10, 500, 900, 100, 1000, 35)
        );
        let table = s.table();
        assert!(
            table.contains("leader-step-down       9     0        1"),
            "{table}"
        );
        assert!(
            table.contains("n=10 median 500 ms, p90 900 ms, min 100 ms, max 1000 ms (± 35 ms)"),
            "{table}"
        );
    }

    #[test]
    fn a_failed_run_or_a_run_that_did_not_complete_decides_the_status() {
        let mut runs = vec![
            (1, "a".to_string(), Ok(run_with(100, Status::Pass))),
            (2, "b".to_string(), Err("lab did not start".to_string())),
        ];
        assert_eq!(summarize("s", &runs).status, None);
        runs.push((3, "c".to_string(), Ok(run_with(100, Status::Fail))));
        let s = summarize("s", &runs);
        assert_eq!(s.status, Some(Status::Fail));
        assert!(
            s.table()
                .contains("run   2: ERROR   b  (lab did not start)"),
            "{}",
            s.table()
        );
    }
}
