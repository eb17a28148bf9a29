//! A self-contained HTML view of a history (no network, no CDN: the script and styles
//! are inlined): a time axis, fault windows shaded and labelled, one lane per client
//! process with its operations as bars coloured by outcome, leader and term per member,
//! ISR size per partition, markers (phases, checker timings), and for a history that is
//! not linearizable the longest partial linearization and the operations that could not
//! extend it, highlighted on the lanes as porcupine's visualizer does.
//!
//! The page's script writes what it drew into `#summary` (`data-ops`, `data-faults`,
//! `data-errors`...), which is how the browser test reads it back.

mod data;

pub use data::{Marker, PageData};

use crate::History;
use crate::linear::Report;

/// What the history's times count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Nanoseconds since the run started (rift's histories).
    Nanos,
    /// Line numbers (logs with no clock, such as Jepsen's).
    Lines,
}

/// Everything one page shows.
pub struct Page<'a> {
    pub title: String,
    pub history: &'a History,
    pub check: Option<&'a Report>,
    pub unit: TimeUnit,
    /// Extra markers (e.g. checker timings) besides the history's phase marks.
    pub markers: Vec<Marker>,
}

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The data the page's script draws from.
pub fn page_data(page: &Page<'_>) -> PageData {
    let history = page.history;
    let times = history.entries.iter().map(crate::Entry::time);
    let start = times.clone().min().unwrap_or(0);
    let end = times.max().unwrap_or(0).max(start + 1);
    let mut markers: Vec<Marker> = history
        .phases()
        .map(|p| Marker {
            time: p.time,
            label: p.phase.clone(),
        })
        .collect();
    markers.extend(page.markers.iter().map(|m| Marker {
        time: m.time,
        label: m.label.clone(),
    }));
    PageData {
        title: page.title.clone(),
        unit: match page.unit {
            TimeUnit::Nanos => "ns",
            TimeUnit::Lines => "line",
        },
        start,
        end,
        ops: data::ops(history),
        faults: data::faults(history),
        members: data::members(history, end),
        isr: data::isr(history, end),
        markers,
        check: page.check.map(data::check),
    }
}

/// JSON that is safe inside a `<script>` element: no `<`, `>` or `&` can close it or
/// open a comment.
fn script_json(data: &PageData) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page.
pub fn render(page: &Page<'_>) -> String {
    render_with(page, "")
}

/// The whole page with `sections` (trusted HTML, e.g. a scenario's verdict table built
/// with [`escape_text`]) placed between the timeline and the linearizability evidence.
pub fn render_with(page: &Page<'_>, sections: &str) -> String {
    let data = page_data(page);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title}</h1>\n<p id=\"summary\" data-ops=\"\" data-faults=\"\" \
         data-errors=\"\">loading…</p>\n<div id=\"controls\"></div></header>\n\
         <div id=\"timeline\"></div>\n{sections}<section id=\"evidence\"></section>\n\
         <script type=\"application/json\" id=\"rift-data\">{json}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        title = escape_text(&page.title),
        json = script_json(&data),
    )
}

#[cfg(test)]
mod tests;
