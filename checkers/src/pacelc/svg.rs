//! `pacelc.svg`: added latency (y) against injected round-trip time (x), one line per
//! operation class, with the line y = x (one round trip paid) for reference.

use std::fmt::Write as _;

use super::judge::{Measurement, Outcome, from_measurement};
use crate::report::xml_escape;

const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const W: f64 = 560.0;
const H: f64 = 360.0;
const COLORS: &[&str] = &[
    "#1a73e8", "#d93025", "#188038", "#e37400", "#9334e6", "#007b83", "#b06000", "#5f6368",
];

/// Renders the plot of `m`.
pub fn render(m: &Measurement) -> String {
    let map = from_measurement(m);
    let max_x = m
        .steps
        .iter()
        .map(|s| s.injected_rtt_ms as f64)
        .fold(1.0, f64::max);
    let max_y = map
        .classes
        .iter()
        .flat_map(|c| c.points.iter().filter_map(|p| p.added_ms))
        .fold(max_x, f64::max)
        * 1.05;
    let min_y = map
        .classes
        .iter()
        .flat_map(|c| c.points.iter().filter_map(|p| p.added_ms))
        .fold(0.0, f64::min);
    let x = |v: f64| LEFT + W * v / max_x;
    let y = |v: f64| TOP + H - H * (v - min_y) / (max_y - min_y).max(1e-9);
    let legend_h = 16.0 * map.classes.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">",
        LEFT + W + 300.0,
        TOP + H + 70.0 + legend_h.max(0.0)
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"14\">PACELC: latency added per operation class vs injected round trip</text>"
    );
    // Axes and ticks.
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#333\"/>",
        y(0.0),
        LEFT + W,
        y(0.0),
        TOP + H
    );
    for i in 0..=5 {
        let vx = max_x * f64::from(i) / 5.0;
        let vy = min_y + (max_y - min_y) * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{vx:.0}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{vy:.0}</text>",
            x(vx),
            TOP + H + 15.0,
            LEFT - 5.0,
            y(vy) + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">injected round trip between members (ms)</text>\
         <text x=\"15\" y=\"{:.1}\" transform=\"rotate(-90 15 {:.1})\" text-anchor=\"middle\">added latency, p50 (ms)</text>",
        LEFT + W / 2.0,
        TOP + H + 32.0,
        TOP + H / 2.0,
        TOP + H / 2.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"><title>one round trip paid (y = x)</title></line>",
        x(0.0),
        y(0.0),
        x(max_x),
        y(max_x)
    );
    for (i, c) in map.classes.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64, &super::judge::CurvePoint)> = c
            .points
            .iter()
            .filter_map(|p| p.added_ms.map(|a| (x(p.injected_rtt_ms as f64), y(a), p)))
            .collect();
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b, _)| format!("{a:.1},{b:.1}"))
            .collect();
        let _ = writeln!(
            s,
            "<polyline class=\"pacelc-class\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{} points=\"{}\"/>",
            if c.consistent {
                ""
            } else {
                " stroke-dasharray=\"6 3\""
            },
            path.join(" ")
        );
        for (a, b, p) in &pts {
            let mark = match p.outcome {
                Outcome::Fail => "#d93025",
                Outcome::Unknown => "#b06000",
                _ => color,
            };
            let _ = writeln!(
                s,
                "<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"4\" fill=\"{mark}\"><title>{}: +{:.1} ms at {} ms RTT (step {}, p50 {:.1} ms, n={}, {:?})</title></circle>",
                xml_escape(&c.class),
                p.added_ms.unwrap_or(f64::NAN),
                p.injected_rtt_ms,
                p.step,
                p.p50_ms,
                p.samples,
                p.outcome
            );
        }
        let ly = TOP + 10.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} ({})</text>",
            LEFT + W + 20.0,
            LEFT + W + 45.0,
            LEFT + W + 50.0,
            ly + 4.0,
            xml_escape(&c.class),
            if c.consistent { "pays" } else { "local" }
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">{}</text>\
         <text x=\"10\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">{}</text>",
        TOP + H + 50.0,
        xml_escape(&map.reading),
        TOP + H + 62.0,
        xml_escape(&format!(
            "p50 per step, n ≥ {} per point; {}",
            m.settings.min_samples, "ns clock, 1 ms delay tick; red point: FAIL, amber: UNKNOWN"
        ))
    );
    s.push_str("</svg>\n");
    s
}

/// The report.html section: the plot inline and a table of every class and step with
/// its figures and their resolution.
pub fn html_section(m: &Measurement) -> String {
    use rift_history::html::escape_text;
    let map = from_measurement(m);
    let mut out = String::from(
        "<section id=\"pacelc\">\n<h2>PACELC: latency against injected round trip</h2>\n",
    );
    let _ = writeln!(out, "<p>{}</p>", escape_text(&map.reading));
    out.push_str(&render(m));
    out.push_str(
        "<table id=\"pacelc-table\">\n<tr><th>step</th><th>injected RTT</th><th>class</th>\
         <th>p50 (n)</th><th>added</th><th>must pay</th><th>outcome</th></tr>\n",
    );
    for s in &m.steps {
        for c in &s.classes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{} ms</td><td>{}</td><td>{:.1} ms ({})</td><td>{}</td><td>{} ms</td><td title=\"{}\">{:?}</td></tr>",
                s.step,
                s.injected_rtt_ms,
                escape_text(&c.class),
                c.stats.p50_ms,
                c.stats.samples,
                c.added_ms
                    .map_or("-".to_string(), |a| format!("{a:+.1} ms")),
                if c.expect.consistent() {
                    c.must_pay_ms
                } else {
                    0
                },
                escape_text(&c.reason),
                c.outcome
            );
        }
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<p>Resolution: {}.</p>\n</section>",
        escape_text(&m.resolution)
    );
    out
}
