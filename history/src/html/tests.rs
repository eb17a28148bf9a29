use serde_json::json;

use super::*;
use crate::linear::{self, Options};
use crate::{Entry, NemesisOp, Observation, Op, OpType, PhaseMark};

fn obs(time: u64, node: &str, value: serde_json::Value) -> Entry {
    Entry::Observation(Observation {
        index: 0,
        time,
        started: time.saturating_sub(5),
        observation: "etcd-status".into(),
        node: node.into(),
        value,
        error: None,
    })
}

fn sample() -> History {
    let w = Op::invoke(10, 1, "write", Some("k"), json!(1)).with_node("n1");
    let r = Op::invoke(30, 2, "read", Some("k"), json!(null)).with_node("n2");
    let stale = Op::invoke(60, 2, "read", Some("k"), json!(null));
    History::new(vec![
        Entry::Phase(PhaseMark {
            index: 0,
            time: 0,
            phase: "baseline".into(),
        }),
        Entry::Op(w.clone()),
        obs(15, "n1", json!({"leader": "n1", "term": 2})),
        Entry::Op(w.complete(20, OpType::Ok, json!(1))),
        Entry::Nemesis(NemesisOp::new(
            24,
            25,
            "start",
            json!({"id": 7, "profile": "leader-isolation"}),
        )),
        Entry::Op(r.clone()),
        obs(35, "n1", json!({"leader": "n1", "term": 2})),
        obs(45, "n1", json!({"leader": "n3", "term": 3})),
        obs(
            46,
            "n2",
            json!({"topic": "t", "partition": 0, "isr": [1, 2]}),
        ),
        Entry::Op(r.complete(40, OpType::Ok, json!(1))),
        Entry::Op(Op::invoke(50, 3, "write", Some("k"), json!(2))),
        Entry::Nemesis(NemesisOp::new(54, 55, "stop", json!({"id": 7}))),
        Entry::Op(stale.clone()),
        Entry::Op(stale.complete(70, OpType::Ok, json!("</script><b>"))),
    ])
}

#[test]
fn extracts_bars_windows_lanes_and_markers() {
    let history = sample();
    let page = Page {
        title: "t".into(),
        history: &history,
        check: None,
        unit: TimeUnit::Nanos,
        markers: vec![Marker {
            time: 44,
            label: "new leader".into(),
        }],
    };
    let data = page_data(&page);
    assert_eq!(data.ops.len(), 4);
    let outcomes: Vec<&str> = data.ops.iter().map(|o| o.outcome).collect();
    assert_eq!(outcomes, ["ok", "ok", "pending", "ok"]);
    assert_eq!(data.ops[1].describe, "read → 1");
    assert_eq!(data.faults.len(), 1);
    assert_eq!((data.faults[0].start, data.faults[0].end), (25, Some(55)));
    assert_eq!(data.faults[0].label, "leader-isolation");
    assert_eq!(
        data.members.len(),
        1,
        "the ISR observation is not a member lane"
    );
    let segs = &data.members[0].segments;
    assert_eq!(segs.len(), 2);
    assert_eq!(
        (segs[0].start, segs[0].end, segs[0].role),
        (15, 45, "leader")
    );
    assert_eq!(
        (segs[1].text.as_str(), segs[1].role),
        ("leader n3 · term 3", "follower")
    );
    assert_eq!(data.isr.len(), 1);
    assert_eq!(data.isr[0].label, "t-0");
    assert_eq!(data.isr[0].segments[0].text, "ISR 2");
    let labels: Vec<&str> = data.markers.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["baseline", "new leader"]);
}

#[test]
fn the_page_is_self_contained_and_values_cannot_close_the_script() {
    let history = sample();
    let report = linear::check(
        &{
            let mut h = history.clone();
            h.entries.pop();
            h.entries.pop();
            h
        },
        &Options::default(),
    )
    .unwrap();
    let page = Page {
        title: "a <title>".into(),
        history: &history,
        check: Some(&report),
        unit: TimeUnit::Nanos,
        markers: vec![],
    };
    let out = render(&page);
    assert_eq!(
        out.matches("</script>").count(),
        2,
        "only the two script elements close"
    );
    assert!(!out.contains("<b>"));
    assert!(out.contains("a &lt;title&gt;"));
    for remote in ["http://", "https://", "src=", "href="] {
        let allowed = remote == "http://" && out.matches(remote).count() == 1; // the SVG namespace
        assert!(!out.contains(remote) || allowed, "page refers to {remote}");
    }
    assert!(out.contains("\"verdict\":\"PASS\""));
}
