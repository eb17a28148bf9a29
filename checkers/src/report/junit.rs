//! JUnit XML: one test suite per scenario, one test case per checker; a FAIL verdict is
//! a `<failure>` whose text is the evidence, so CI shows why. An UNKNOWN verdict is an
//! `<error type="UNKNOWN">`: not a pass, and not a property shown false either.

use std::fmt::Write as _;

use super::{Report, xml_escape};
use crate::scenario::Status;

pub fn render(r: &Report) -> String {
    let failures = r
        .verdicts
        .iter()
        .filter(|v| v.status == Status::Fail)
        .count();
    let errors = r
        .verdicts
        .iter()
        .filter(|v| v.status == Status::Unknown)
        .count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"rift\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
        r.verdicts.len(),
        r.duration_ms as f64 / 1000.0
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" timestamp=\"{}\" time=\"{:.3}\">",
        xml_escape(&r.scenario),
        r.verdicts.len(),
        xml_escape(&r.started_at),
        r.duration_ms as f64 / 1000.0
    );
    for v in &r.verdicts {
        let _ = writeln!(
            x,
            "    <testcase classname=\"rift.{}.{}\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&r.system),
            xml_escape(&r.scenario),
            xml_escape(&v.checker),
            r.duration_ms as f64 / 1000.0
        );
        let mut body = String::new();
        for t in &v.timings {
            let _ = writeln!(body, "@{} {}", super::timing_text(t), t.label);
        }
        for e in &v.evidence {
            let _ = writeln!(body, "{e}");
        }
        if v.status == Status::Fail {
            let _ = writeln!(
                x,
                "      <failure message=\"{}\" type=\"verdict\">{}</failure>",
                xml_escape(&v.summary),
                xml_escape(&body)
            );
        } else if v.status == Status::Unknown {
            let _ = writeln!(
                x,
                "      <error message=\"{}\" type=\"UNKNOWN\">{}</error>",
                xml_escape(&v.summary),
                xml_escape(&body)
            );
        } else {
            let _ = writeln!(x, "      <system-out>{}</system-out>", xml_escape(&body));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn failed_verdict_is_a_failure_element() {
        let x = render(&sample());
        assert!(x.contains("tests=\"3\" failures=\"1\" errors=\"1\""), "{x}");
        assert!(
            x.contains("<error message=\"no poll answered\" type=\"UNKNOWN\">"),
            "{x}"
        );
        assert!(x.contains("name=\"no-lost-writes\""));
        assert!(
            x.contains("<failure message=\"1 of 10 acknowledged writes lost &lt;&amp;&gt;\""),
            "{x}"
        );
        assert_eq!(x.matches("<testcase ").count(), 3);
        assert_eq!(x.matches("<failure ").count(), 1);
    }
}
