//! The cut-took-effect check on constructed histories: a held link, a link that kept
//! carrying bytes, an idle link, and missing counters.

use rift_history::{Entry, History, NemesisOp, Observation};
use serde_json::json;

use super::*;

const MS: u64 = 1_000_000;

/// n1 -> n2 held on `peer` from 1000 to 3000 ms; traffic polled every 100 ms with
/// n1's connection to n2 carrying `forward(t)` bytes and n2's to n1 `reverse(t)`.
fn history(forward: impl Fn(u64) -> u64, reverse: impl Fn(u64) -> u64) -> History {
    let mut entries = vec![];
    let start = json!({"id": 1, "label": "cut", "rules": [
        {"from": "n1", "to": "n2", "fault": {"kind": "hold"}, "endpoints": ["peer"]},
        {"from": "n1", "to": "n2", "fault": {"kind": "delay", "ms": 5}}
    ]});
    for t in (0..4000).step_by(100) {
        if t == 1000 {
            entries.push(Entry::Nemesis(NemesisOp::new(
                990 * MS,
                1000 * MS,
                "start",
                start.clone(),
            )));
        }
        if t == 3000 {
            entries.push(Entry::Nemesis(NemesisOp::new(
                3000 * MS,
                3005 * MS,
                "stop",
                json!({"id": 1}),
            )));
        }
        entries.push(Entry::Observation(Observation {
            index: 0,
            time: t * MS + 2 * MS,
            started: t * MS + MS,
            observation: TRAFFIC.into(),
            node: "rift".into(),
            value: json!([
                {"src": "n1", "dst": "n2", "endpoint": "peer", "active": 1, "bytes_forward": forward(t), "bytes_reverse": 7},
                {"src": "n2", "dst": "n1", "endpoint": "peer", "active": 1, "bytes_forward": 9, "bytes_reverse": reverse(t)},
                {"src": "n1", "dst": "n2", "endpoint": "client", "active": 1, "bytes_forward": t, "bytes_reverse": 0}
            ]),
            error: None,
        }));
    }
    History::new(entries)
}

/// Bytes that grow with time outside [1000, 3000) ms and stand still inside.
fn held(t: u64) -> u64 {
    t.min(1000) + t.saturating_sub(3000)
}

#[test]
fn a_link_that_stops_while_held_and_carried_bytes_before_passes() {
    let v = CutTookEffect.check(&history(held, held));
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(v.summary.contains("every one of 1 cut links"), "{v:?}");
    // The `client` endpoint kept moving, but the rule only cut `peer`.
    assert!(
        v.evidence[0].contains("n1 -> n2 [peer] (hold)")
            && v.evidence[0].contains("bytes before the fault, 0 over"),
        "{v:?}"
    );
}

#[test]
fn bytes_delivered_while_the_fault_held_fail_with_the_amount_and_when() {
    // n2's own connection to n1 kept delivering n1's answers: reverse bytes grow.
    let v = CutTookEffect.check(&history(held, |t| t));
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("n1 -> n2 [peer] (hold): rift delivered"),
        "{v:?}"
    );
    assert!(
        v.summary
            .contains("bytes while the fault held, first between 1001 and 1102 ms"),
        "{v:?}"
    );
}

#[test]
fn an_idle_link_is_unknown_not_pass() {
    let v = CutTookEffect.check(&history(|_| 5, |_| 5));
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary
            .contains("no byte crossed before the fault either"),
        "{v:?}"
    );
}

#[test]
fn without_counters_or_cuts_the_check_says_what_is_missing() {
    let mut h = history(held, held);
    h.entries.retain(|e| !matches!(e, Entry::Observation(_)));
    let v = CutTookEffect.check(&h);
    assert_eq!(v.status, Status::Unknown);
    assert!(v.summary.contains("0 rift-traffic observations"), "{v:?}");
    let v = CutTookEffect.check(&History::default());
    assert!(v.summary.contains("no fault cut any link"), "{v:?}");
}

#[test]
fn settings_are_refused_by_name() {
    let table: toml::Table = toml::from_str("within = \"1s\"").unwrap();
    let e = CutTookEffect::from_settings(&table, "s.toml")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("s.toml") && e.contains("checker.within") && e.contains("takes no settings"),
        "{e}"
    );
}
