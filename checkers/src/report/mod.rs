//! Scenario reports: the verdict table printed at the end of a run, and the files
//! written to the output directory — `report.json` (everything but the history),
//! `history.jsonl` (the run's recorded history, see `docs/history.md`), `junit.xml` (one
//! test case per checker, for CI), `timeline.svg` (phases and checker timings) and
//! `report.html` (the history drawn with the verdicts, self-contained).

pub mod html;
pub mod junit;
pub mod summary;
pub mod svg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::scenario::{AppliedFault, ScenarioError, Status, Verdict, WorkloadSummary};

/// The instant a phase started, on the scenario clock.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseMark {
    pub phase: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub file: String,
    pub system: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub status: Status,
    pub cluster: serde_json::Value,
    pub fault: Option<AppliedFault>,
    pub phases: Vec<PhaseMark>,
    pub verdicts: Vec<Verdict>,
    pub workload: Option<WorkloadSummary>,
    /// Everything that happened, on one clock; written beside the report as
    /// `history.jsonl`, not inside `report.json`.
    #[serde(skip)]
    pub history: rift_history::History,
}

impl Report {
    /// When a phase started, if it was reached.
    pub fn phase_at(&self, phase: &str) -> Option<u64> {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.at_ms)
    }

    /// The verdict table with evidence, as printed at the end of `rift scenario run`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .verdicts
            .iter()
            .map(|v| v.checker.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            out,
            "\nscenario {} ({}): {} in {:.1}s",
            self.scenario,
            self.system,
            status_word(self.status),
            self.duration_ms as f64 / 1000.0
        );
        if let Some(f) = &self.fault {
            let _ = writeln!(
                out,
                "fault {} {:?}: majority {:?}, minority {:?}",
                f.label, f.bindings, f.majority, f.minority
            );
        }
        let fault_at = self.phase_at("fault").unwrap_or(0);
        let _ = writeln!(out, "{:<width$}  {:<7}  summary", "checker", "status");
        let _ = writeln!(out, "{}", "-".repeat(width + 60));
        for v in &self.verdicts {
            let _ = writeln!(
                out,
                "{:<width$}  {:<7}  {}",
                v.checker,
                status_word(v.status),
                v.summary
            );
            let mut timings = v.timings.clone();
            timings.sort_by_key(|t| t.at_ms);
            for t in &timings {
                let rel = t.at_ms as i64 - fault_at as i64;
                let res = t
                    .resolution_ms
                    .map(|r| format!(" ± {r} ms"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<width$}          @ {:+} ms{res}  {}",
                    "", rel, t.label
                );
            }
            for e in &v.evidence {
                let _ = writeln!(out, "{:<width$}          - {e}", "");
            }
        }
        if let Some(w) = &self.workload {
            let _ = writeln!(
                out,
                "workload: {} acknowledged, {} failed, {} indeterminate; acknowledged by phase {:?}",
                w.acknowledged, w.failed, w.indeterminate, w.acknowledged_by_phase
            );
        }
        out
    }

    /// Writes report.json, history.jsonl, junit.xml, timeline.svg and report.html into
    /// `dir` (created), and pacelc.svg when a pacelc checker measured.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).expect("report serialises");
        std::fs::write(&json, text).map_err(|e| io(&json, e))?;
        let history = dir.join("history.jsonl");
        let file = std::fs::File::create(&history).map_err(|e| io(&history, e))?;
        rift_history::write_jsonl(&self.history, std::io::BufWriter::new(file))
            .map_err(|e| io(&history, e))?;
        let xml = dir.join("junit.xml");
        std::fs::write(&xml, junit::render(self)).map_err(|e| io(&xml, e))?;
        let svg_path = dir.join("timeline.svg");
        std::fs::write(&svg_path, svg::render(self)).map_err(|e| io(&svg_path, e))?;
        let page = dir.join("report.html");
        std::fs::write(&page, html::render(self)).map_err(|e| io(&page, e))?;
        let mut files = vec![json, history, xml, svg_path, page];
        if let Some(m) = self.verdicts.iter().find_map(|v| v.pacelc.as_deref()) {
            let plot = dir.join("pacelc.svg");
            std::fs::write(&plot, crate::pacelc::svg::render(m)).map_err(|e| io(&plot, e))?;
            files.push(plot);
        }
        Ok(files)
    }
}

fn io(path: &Path, e: std::io::Error) -> ScenarioError {
    ScenarioError::Report {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Unknown => "UNKNOWN",
    }
}

/// A timing's instant as printed: `+650 ms ± 50 ms` relative to nothing, i.e. on the
/// scenario clock, with its resolution when it has one.
pub fn timing_text(t: &crate::scenario::Timing) -> String {
    match t.resolution_ms {
        Some(r) => format!("{} ms ± {r} ms", t.at_ms),
        None => format!("{} ms", t.at_ms),
    }
}

/// Escapes text for XML attribute and element content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scenario::{Timing, Verdict};

    pub fn sample() -> Report {
        let mut pass = Verdict::new("leader-step-down");
        pass.pass("etcd1 stepped down after 600 ms");
        pass.timing("etcd1 stepped down", 2600);
        pass.evidence("baseline leader etcd1 at applied term 2");
        let mut fail = Verdict::new("no-lost-writes");
        fail.fail("1 of 10 acknowledged writes lost <&>");
        let mut unknown = Verdict::new("leader-step-down");
        unknown.unknown("no poll answered");
        unknown.measured(
            "elected",
            "etcd2 elected",
            crate::scenario::window::Interval {
                lo: 2_550_000_000,
                hi: 2_605_000_000,
            },
            2_000_000_000,
        );
        Report {
            scenario: "s".into(),
            description: "d".into(),
            file: "f.toml".into(),
            system: "etcd".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 9000,
            status: Status::Fail,
            cluster: serde_json::json!({}),
            fault: None,
            phases: vec![
                PhaseMark {
                    phase: "baseline".into(),
                    at_ms: 0,
                },
                PhaseMark {
                    phase: "fault".into(),
                    at_ms: 2000,
                },
                PhaseMark {
                    phase: "heal".into(),
                    at_ms: 6000,
                },
                PhaseMark {
                    phase: "final".into(),
                    at_ms: 8000,
                },
                PhaseMark {
                    phase: "end".into(),
                    at_ms: 9000,
                },
            ],
            verdicts: vec![pass, fail, unknown],
            workload: None,
            history: rift_history::History::new(vec![rift_history::Entry::Phase(
                rift_history::PhaseMark {
                    index: 0,
                    time: 0,
                    phase: "baseline".into(),
                },
            )]),
        }
    }

    #[test]
    fn table_shows_status_timings_and_evidence() {
        let t = sample().table();
        assert!(t.contains("FAIL in 9.0s"), "{t}");
        assert!(t.contains("leader-step-down  PASS"), "{t}");
        assert!(t.contains("@ +600 ms  etcd1 stepped down"), "{t}");
        assert!(t.contains("no-lost-writes    FAIL"), "{t}");
        assert!(
            t.contains("leader-step-down  UNKNOWN  no poll answered"),
            "{t}"
        );
        assert!(t.contains("@ +578 ms ± 28 ms  etcd2 elected"), "{t}");
        let _ = Timing {
            label: String::new(),
            at_ms: 0,
            resolution_ms: None,
            name: None,
            after_fault_ms: None,
        };
    }

    #[test]
    fn writes_all_five_files() {
        let dir = std::env::temp_dir().join(format!("rift-report-{}", std::process::id()));
        let files = sample().write_all(&dir).unwrap();
        assert_eq!(files.len(), 5);
        let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
        // Self-contained: nothing is fetched.
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        // One row per verdict, escaped, with every timing's resolution stated.
        assert_eq!(page.matches("<tr class=\"verdict\"").count(), 3);
        assert!(page.contains("1 of 10 acknowledged writes lost &lt;&amp;&gt;"));
        assert!(page.contains("etcd2 elected: +578 ms ± 28 ms after the fault (at 2578 ms)"));
        assert!(page.contains("etcd1 stepped down: at 2600 ms (resolution not recorded"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(json["status"], "FAIL");
        assert_eq!(json["verdicts"][0]["status"], "PASS");
        assert!(
            json.get("history").is_none(),
            "the history has its own file"
        );
        let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
        assert_eq!(history, "{\"index\":0,\"time\":0,\"phase\":\"baseline\"}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn xml_escape_covers_markup_and_controls() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos; ");
    }
}
