//! An SVG timeline: the phases as coloured bands along the scenario clock, and one row
//! per checker with its timings as labelled markers, coloured by verdict.

use std::fmt::Write as _;

use super::{Report, xml_escape};
use crate::scenario::Status;

const LEFT: f64 = 170.0;
const WIDTH: f64 = 900.0;
const ROW: f64 = 34.0;
const TOP: f64 = 50.0;

fn phase_color(phase: &str) -> &'static str {
    match phase {
        "baseline" => "#e8f0fe",
        "fault" => "#fde2e1",
        "heal" => "#e6f4ea",
        "final" => "#f1f3f4",
        _ => "#ffffff",
    }
}

pub fn render(r: &Report) -> String {
    let end = r.duration_ms.max(1) as f64;
    let x = |ms: u64| LEFT + WIDTH * (ms as f64 / end);
    let height = TOP + ROW * (r.verdicts.len() as f64 + 1.0) + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        LEFT + WIDTH + 20.0
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"14\">{} — {} ({:.1}s)</text>",
        xml_escape(&r.scenario),
        super::status_word(r.status),
        end / 1000.0
    );
    // Phase bands span from each mark to the next.
    for (i, p) in r.phases.iter().enumerate() {
        let next = r
            .phases
            .get(i + 1)
            .map(|n| n.at_ms)
            .unwrap_or(r.duration_ms);
        let (x0, x1) = (x(p.at_ms), x(next));
        let _ = writeln!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"/>",
            TOP - 15.0,
            (x1 - x0).max(0.5),
            ROW * (r.verdicts.len() as f64 + 0.5) + 15.0,
            phase_color(&p.phase)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"#555\">{} {:.1}s</text>",
            x0 + 2.0,
            TOP - 3.0,
            xml_escape(&p.phase),
            p.at_ms as f64 / 1000.0
        );
    }
    for (i, v) in r.verdicts.iter().enumerate() {
        let y = TOP + ROW * (i as f64 + 0.8);
        let color = match v.status {
            Status::Pass => "#188038",
            Status::Fail => "#d93025",
            Status::Unknown => "#b06000",
        };
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{y:.1}\" fill=\"{color}\">{} {}</text>",
            super::status_word(v.status),
            xml_escape(&v.checker)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#ccc\"/>",
            y - 4.0,
            LEFT + WIDTH,
            y - 4.0
        );
        for (j, t) in v.timings.iter().enumerate() {
            let tx = x(t.at_ms);
            let _ = writeln!(
                s,
                "<circle cx=\"{tx:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"><title>{} @ {}</title></circle>",
                y - 4.0,
                xml_escape(&t.label),
                super::timing_text(t)
            );
            // Alternate label heights so neighbouring markers stay readable.
            let ly = if j % 2 == 0 { y - 10.0 } else { y + 10.0 };
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{ly:.1}\" fill=\"#333\" font-size=\"9\">{}</text>",
                tx + 5.0,
                xml_escape(&t.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn svg_has_bands_rows_and_markers() {
        let s = render(&sample());
        assert!(s.starts_with("<svg"));
        assert_eq!(s.matches("<rect ").count(), 5);
        assert!(s.contains("PASS leader-step-down"));
        assert!(s.contains("FAIL no-lost-writes"));
        assert!(s.contains("UNKNOWN leader-step-down"));
        assert!(
            s.contains("<title>etcd2 elected @ 2578 ms ± 28 ms</title>"),
            "{s}"
        );
        assert_eq!(s.matches("<circle ").count(), 2);
        assert!(s.trim_end().ends_with("</svg>"));
    }
}
