//! Checks on a Kafka run's recorded history, shared by the Kafka scenario tests.

use rift_checkers::report::Report;
use rift_history::{History, OpType};

/// The history a Kafka leader isolation recorded: the fault as the proxy applied it,
/// both observations of every broker with their poll interval, and every send an
/// invoke plus one completion, with acknowledged sends carrying their offset and
/// sends through the isolated leader during the fault never refused outright when
/// they may have been appended (acks=all timeouts are indeterminate).
pub fn assert_kafka_leader_isolation(r: &Report) {
    let h: &History = &r.history;
    let phases: Vec<(&str, u64)> = h.phases().map(|p| (p.phase.as_str(), p.time)).collect();
    let at = |name: &str| phases.iter().find(|p| p.0 == name).unwrap().1;
    let (fault, heal) = (at("fault"), at("heal"));

    let nemesis: Vec<_> = h.nemesis().collect();
    assert_eq!(nemesis.len(), 2, "{nemesis:?}");
    assert_eq!(
        (nemesis[0].f.as_str(), nemesis[1].f.as_str()),
        ("start", "stop")
    );
    assert_eq!(nemesis[0].value["id"], nemesis[1].value["id"]);
    let rules = nemesis[0].value["rules"].as_array().unwrap();
    assert!(!rules.is_empty(), "{:?}", nemesis[0]);
    assert_eq!(
        serde_json::to_value(&r.fault.as_ref().unwrap().rules).unwrap(),
        nemesis[0].value["rules"],
        "the report's fault is the proxy's answer"
    );

    for node in r
        .fault
        .as_ref()
        .unwrap()
        .majority
        .iter()
        .chain(&r.fault.as_ref().unwrap().minority)
    {
        for kind in ["kafka-quorum", "kafka-metadata"] {
            let polls: Vec<_> = h
                .observations()
                .filter(|o| &o.node == node && o.observation == kind)
                .collect();
            assert!(polls.len() > 20, "{node} {kind}: {} polls", polls.len());
            assert!(polls.iter().all(|o| o.started <= o.time));
            assert!(
                polls
                    .iter()
                    .any(|o| o.error.is_none() && !o.value.is_null()),
                "{node} {kind}: no poll answered"
            );
        }
    }
    assert!(
        h.observations()
            .filter(|o| o.observation == "kafka-metadata")
            .any(|o| o.value["topics"].as_array().is_some_and(|t| t
                .iter()
                .any(|t| !t["partitions"].as_array().unwrap().is_empty()))),
        "metadata observations carry the topics' partitions"
    );

    let all = h.pairs();
    for f in ["create-topic", "read"] {
        assert!(
            all.iter().any(|(i, d)| i.f == f && d.is_some()),
            "the drivers' {f} operations are recorded"
        );
    }
    let pairs: Vec<_> = all.into_iter().filter(|(i, _)| i.f == "send").collect();
    assert!(!pairs.is_empty(), "the checkers' sends are recorded");
    let mut acked = 0;
    let mut indeterminate_during = 0;
    for (invoke, done) in &pairs {
        let done = done.unwrap_or_else(|| panic!("{invoke:?} never completed"));
        assert_eq!(invoke.f, "send");
        assert!(
            invoke.key.as_deref().is_some_and(|k| k.contains('/')),
            "{invoke:?}"
        );
        match done.r#type {
            OpType::Ok => {
                acked += 1;
                assert!(
                    done.value[0].is_i64() && done.value[1] == invoke.value,
                    "{done:?}"
                );
            }
            OpType::Info if invoke.time > fault && invoke.time < heal => indeterminate_during += 1,
            _ => {}
        }
    }
    assert!(acked > 0);
    assert!(
        indeterminate_during > 0,
        "acks=all through the isolated leader times out: info"
    );
}
