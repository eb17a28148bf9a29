//! The CAP map as a text table and as an HTML page (`report.html` of a cap-map run), each row with its
//! evidence beside the label.

use std::fmt::Write as _;

use rift_history::html::escape_text;

use super::Row;
use super::evidence::Outcomes;

fn ratio(o: &Outcomes) -> String {
    if o.attempted == 0 {
        "-".into()
    } else {
        format!("{}/{}", o.ok, o.attempted)
    }
}

/// Columns: the textbook label, the measured one, then the evidence that decided it.
const HEADER: [&str; 9] = [
    "configuration",
    "textbook",
    "measured",
    "minority writes ok",
    "minority reads ok",
    "stale reads",
    "majority writes ok",
    "lost after heal",
    "PACELC (textbook / measured)",
];

fn cells(row: &Row) -> [String; 9] {
    let (mw, mr, stale, jw, lost) = match (&row.evidence, &row.measured) {
        (Some(ev), Some(m)) => (
            ratio(&ev.minority_writes),
            if ev.minority_local_reads.attempted > 0 {
                format!(
                    "{} (+{} local)",
                    ratio(&ev.minority_reads),
                    ratio(&ev.minority_local_reads)
                )
            } else {
                ratio(&ev.minority_reads)
            },
            if m.stale_local > 0 {
                format!("{} (+{} local)", m.stale_counted, m.stale_local)
            } else {
                m.stale_counted.to_string()
            },
            ratio(&ev.majority_writes),
            if ev.final_reads == 0 {
                "?".into()
            } else {
                m.lost.to_string()
            },
        ),
        _ => Default::default(),
    };
    [
        row.configuration.clone(),
        row.textbook_cap.clone(),
        row.label().to_string(),
        mw,
        mr,
        stale,
        jw,
        lost,
        format!("{} / {}", row.textbook_pacelc, row.measured_pacelc),
    ]
}

/// A plain-text table, one line per row, then each row's reasons.
pub fn table(rows: &[Row]) -> String {
    let body: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let mut widths = HEADER.map(str::len);
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cols: &[String]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &HEADER.map(str::to_string));
    for r in &body {
        line(&mut out, r);
    }
    for row in rows {
        let _ = writeln!(out, "\n{}:", row.configuration);
        if let Some(e) = &row.error {
            let _ = writeln!(out, "  run failed: {e}");
        }
        for reason in row.measured.iter().flat_map(|m| &m.reasons) {
            let _ = writeln!(out, "  - {reason}");
        }
        if let Some(half) = &row.else_half {
            let _ = writeln!(out, "  - else half {} (PACELC run):", half.label);
            for e in &half.evidence {
                let _ = writeln!(out, "      {e}");
            }
        }
        let _ = writeln!(out, "  report: {}", row.report_dir.display());
    }
    out
}

/// A self-contained page: the table, then each row's reasons and witnesses.
pub fn html(rows: &[Row]) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>rift cap map</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .CP{background:#d8ecff}.AP{background:#ffe9c7}.neither{background:#ffd0d0}\
         .UNKNOWN,.error{background:#eee}code{font-size:90%}</style></head><body>\
         <h1>CAP map, measured</h1><p>Each row: one run of the system with a minority \
         (or its primary) isolated under a register workload, then healed. The label is \
         derived from the history; the textbook label is beside it.</p><table><tr>",
    );
    for h in HEADER {
        let _ = write!(out, "<th>{}</th>", escape_text(h));
    }
    out.push_str("</tr>");
    for row in rows {
        let c = cells(row);
        out.push_str("<tr>");
        for (i, cell) in c.iter().enumerate() {
            let class = if i == 2 { row.label() } else { "" };
            let _ = write!(out, "<td class=\"{class}\">{}</td>", escape_text(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    for row in rows {
        let _ = write!(
            out,
            "<h2>{}</h2><p>Textbook: {} ({}). Measured: <b>{}</b>. \
             <a href=\"{}/report.html\">the run's report</a></p><ul>",
            escape_text(&row.configuration),
            escape_text(&row.textbook_cap),
            escape_text(&row.textbook_why),
            escape_text(row.label()),
            // The page sits beside the runs' directories.
            escape_text(
                &row.report_dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
        );
        if let Some(e) = &row.error {
            let _ = write!(out, "<li>run failed: {}</li>", escape_text(e));
        }
        for reason in row.measured.iter().flat_map(|m| &m.reasons) {
            let _ = write!(out, "<li>{}</li>", escape_text(reason));
        }
        if let Some(half) = &row.else_half {
            let _ = write!(
                out,
                "<li>else half {} (PACELC run): {}</li>",
                escape_text(&half.label),
                escape_text(&half.evidence.join("; "))
            );
        }
        out.push_str("</ul>");
        if let Some(ev) = &row.evidence {
            for s in ev.stale_reads.iter().take(5) {
                let _ = write!(
                    out,
                    "<p><code>stale: read #{} on {} of {} returned {} after write #{} of {} was acknowledged</code></p>",
                    s.index,
                    escape_text(s.node.as_deref().unwrap_or("?")),
                    escape_text(&s.key),
                    escape_text(&s.value.to_string()),
                    s.witness_index,
                    escape_text(&s.witness_value.to_string()),
                );
            }
            for l in ev.lost_writes.iter().take(5) {
                let _ = write!(
                    out,
                    "<p><code>lost: write #{} of {} to {} on {} (acknowledged); final read #{} on {} returned {}</code></p>",
                    l.index,
                    escape_text(&l.value.to_string()),
                    escape_text(&l.key),
                    escape_text(l.node.as_deref().unwrap_or("?")),
                    l.read_index,
                    escape_text(l.read_node.as_deref().unwrap_or("?")),
                    escape_text(&l.read_value.to_string()),
                );
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}
