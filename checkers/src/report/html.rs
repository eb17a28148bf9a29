//! `report.html`: the run's history drawn by rift-history's self-contained page (time
//! axis, fault windows, one lane per client process with its operations coloured by
//! outcome, leader and term per member, ISR sizes, phase marks), plus the scenario's
//! verdicts: each checker's status, summary, timings (each with its resolution, also
//! drawn as markers on the time axis) and evidence. When a linearizability checker ran,
//! its report drives the page's evidence view (the failing key selected, the longest
//! partial linearization and the operations that could not extend it highlighted).

use std::fmt::Write as _;

use rift_history::html::{Marker, Page, TimeUnit, escape_text, render_with};

use super::{Report, status_word};
use crate::scenario::{Status, Timing};

/// A timing as text: `+650 ms ± 50 ms after the fault (at 2650 ms)`, or without the
/// resolution when the checker stated none (an instant the runner took itself, exact to
/// the millisecond of the scenario clock).
fn timing_text(t: &Timing) -> String {
    let res = match t.resolution_ms {
        Some(r) => format!(" ± {r} ms"),
        None => " (resolution not recorded by this checker)".to_string(),
    };
    match t.after_fault_ms {
        Some(after) => format!(
            "{}: +{after} ms{res} after the fault (at {} ms)",
            t.label, t.at_ms
        ),
        None => format!("{}: at {} ms{res}", t.label, t.at_ms),
    }
}

fn verdict_section(report: &Report) -> String {
    let mut out = String::from("<section id=\"verdicts\">\n<h2>Verdicts</h2>\n");
    let _ = writeln!(
        out,
        "<p>scenario <b>{}</b> ({}): <span class=\"verdict-{s}\">{s}</span> in {:.1} s</p>",
        escape_text(&report.scenario),
        escape_text(&report.system),
        report.duration_ms as f64 / 1000.0,
        s = status_word(report.status),
    );
    if let Some(f) = &report.fault {
        let _ = writeln!(
            out,
            "<p>fault {} {}: majority side {}, minority side {}</p>",
            escape_text(&f.label),
            escape_text(&format!("{:?}", f.bindings)),
            escape_text(&f.majority.join(", ")),
            escape_text(&f.minority.join(", ")),
        );
    }
    if let Some(w) = &report.workload {
        let _ = writeln!(
            out,
            "<p>workload: {} acknowledged, {} failed, {} indeterminate</p>",
            w.acknowledged, w.failed, w.indeterminate
        );
    }
    out.push_str(
        "<table id=\"verdict-table\">\n<tr><th>checker</th><th>status</th><th>summary</th>\
         <th>timings</th><th>evidence</th></tr>\n",
    );
    for v in &report.verdicts {
        let s = status_word(v.status);
        let timings: Vec<String> = v
            .timings
            .iter()
            .map(|t| escape_text(&timing_text(t)))
            .collect();
        let evidence: String = v
            .evidence
            .iter()
            .map(|e| format!("<li>{}</li>", escape_text(e)))
            .collect();
        let _ = writeln!(
            out,
            "<tr class=\"verdict\" data-status=\"{s}\"><td>{}</td><td class=\"verdict-{s}\">{s}</td>\
             <td>{}</td><td>{}</td><td><details{}><summary>{} line{}</summary><ul>{evidence}</ul>\
             </details></td></tr>",
            escape_text(&v.checker),
            escape_text(&v.summary),
            timings.join("<br>"),
            if v.status == Status::Pass {
                ""
            } else {
                " open"
            },
            v.evidence.len(),
            if v.evidence.len() == 1 { "" } else { "s" },
        );
    }
    out.push_str("</table>\n</section>\n");
    out
}

/// The page for a scenario report.
pub fn render(report: &Report) -> String {
    // The first failing linearizability report, else the first one: it drives the page's
    // evidence view.
    let checks: Vec<_> = report
        .verdicts
        .iter()
        .filter_map(|v| v.linearizability.as_deref())
        .collect();
    let check = checks
        .iter()
        .find(|r| r.verdict == rift_history::linear::Verdict::Fail)
        .or(checks.first())
        .copied();
    let markers = report
        .verdicts
        .iter()
        .flat_map(|v| {
            v.timings.iter().map(move |t| Marker {
                time: t.at_ms.saturating_mul(1_000_000),
                label: match t.resolution_ms {
                    Some(r) => format!("{} ± {r} ms", t.label),
                    None => t.label.clone(),
                },
            })
        })
        .collect();
    let page = Page {
        title: format!(
            "rift scenario {}: {}",
            report.scenario,
            status_word(report.status)
        ),
        history: &report.history,
        check,
        unit: TimeUnit::Nanos,
        markers,
    };
    let mut sections = verdict_section(report);
    if let Some(m) = report.verdicts.iter().find_map(|v| v.pacelc.as_deref()) {
        sections.push_str(&crate::pacelc::svg::html_section(m));
    }
    render_with(&page, &sections)
}
