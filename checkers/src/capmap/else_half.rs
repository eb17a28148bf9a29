//! PACELC's else half for a row: in normal operation, did this configuration's
//! operations pay the injected inter-member round trip (EC: latency given up for
//! consistency) or answer without it (EL)? Read from a finished PACELC run
//! ([`crate::pacelc::cap_map`]), restricted to the row's operation classes.

use serde::Serialize;

use crate::pacelc::judge::Outcome;
use crate::pacelc::{CapMap, ClassCurve};

/// Where a configuration's PACELC experiment is and which of its operation classes
/// are the configuration's (class names start with one of `classes`).
#[derive(Debug, Clone, Copy)]
pub struct PacelcExperiment {
    /// A scenario file under `profiles/scenarios/`.
    pub file: &'static str,
    pub classes: &'static [&'static str],
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ElseHalf {
    /// `EC`, `EL`, or `E?` (mixed, or nothing judged).
    pub label: String,
    /// Per class: added latency at each injected round trip.
    pub evidence: Vec<String>,
}

/// Did a judged point pay the round trip? A consistent class passes by paying; a
/// local one passes by not paying.
fn paid(curve: &ClassCurve, outcome: Outcome) -> Option<bool> {
    match outcome {
        Outcome::Pass => Some(curve.consistent),
        Outcome::Fail => Some(!curve.consistent),
        Outcome::Unknown | Outcome::Point => None,
    }
}

pub fn else_half(map: &CapMap, classes: &[&str]) -> ElseHalf {
    let mine: Vec<&ClassCurve> = map
        .classes
        .iter()
        .filter(|c| classes.iter().any(|p| c.class.starts_with(p)))
        .collect();
    let mut paid_points = Vec::new();
    let mut evidence = Vec::new();
    for c in &mine {
        let points: Vec<String> = c
            .points
            .iter()
            .map(|p| {
                let added = p
                    .added_ms
                    .map_or("?".to_string(), |a| format!("{a:+.1} ms"));
                format!("{added} at {} ms", p.injected_rtt_ms)
            })
            .collect();
        evidence.push(format!("{}: {}", c.class, points.join(", ")));
        paid_points.extend(c.points.iter().filter_map(|p| paid(c, p.outcome)));
    }
    let label = if paid_points.is_empty() {
        "E?"
    } else if paid_points.iter().all(|p| *p) {
        "EC"
    } else if paid_points.iter().all(|p| !*p) {
        "EL"
    } else {
        "E?"
    };
    evidence.push(format!(
        "added latency at each injected round trip ({})",
        map.resolution
    ));
    ElseHalf {
        label: label.into(),
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacelc::CurvePoint;

    fn curve(class: &str, consistent: bool, outcomes: &[Outcome]) -> ClassCurve {
        ClassCurve {
            class: class.into(),
            consistent,
            points: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| CurvePoint {
                    step: i,
                    injected_rtt_ms: 10 * i as u64,
                    added_ms: Some(10.0 * i as f64),
                    p50_ms: 1.0,
                    samples: 20,
                    outcome: *o,
                })
                .collect(),
        }
    }

    fn map(classes: Vec<ClassCurve>) -> CapMap {
        CapMap {
            classes,
            ec: None,
            el: vec![],
            reading: String::new(),
            resolution: "p50 of ≥ 5 samples".into(),
        }
    }

    #[test]
    fn a_row_pays_or_not_by_its_own_classes() {
        use Outcome::*;
        let m = map(vec![
            curve(
                "acks=all (min.insync.replicas=2)",
                true,
                &[Point, Pass, Pass],
            ),
            curve(
                "acks=1 (min.insync.replicas=2)",
                false,
                &[Point, Pass, Pass],
            ),
        ]);
        assert_eq!(else_half(&m, &["acks=all"]).label, "EC");
        let el = else_half(&m, &["acks=1"]);
        assert_eq!(el.label, "EL");
        assert!(
            el.evidence[0]
                .starts_with("acks=1 (min.insync.replicas=2): +0.0 ms at 0 ms, +10.0 ms at 10 ms"),
            "{el:?}"
        );
    }

    #[test]
    fn a_consistent_class_that_did_not_pay_is_el_and_mixed_or_unjudged_is_unknown() {
        use Outcome::*;
        let m = map(vec![
            curve("put @leader", true, &[Point, Fail]),
            curve("linearizable read @leader", true, &[Point, Pass]),
            curve("serializable read @leader", false, &[Unknown]),
        ]);
        assert_eq!(else_half(&m, &["put"]).label, "EL");
        assert_eq!(else_half(&m, &["put", "linearizable read"]).label, "E?");
        assert_eq!(else_half(&m, &["serializable read"]).label, "E?");
    }
}
