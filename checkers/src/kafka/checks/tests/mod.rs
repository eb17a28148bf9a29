//! The Kafka checks on hand-written histories: each property failing, and why.

mod fixture;

use std::time::Duration;

use rift_history::OpType;
use serde_json::json;

use super::*;
use crate::scenario::Status;
use crate::scenario::check::HistoryCheck;
use fixture::{Fixture, info, timings};

#[test]
fn timings_come_from_the_lab_settings_and_overrides() {
    let t = KafkaTimings::from_settings(&json!({
        "timings": {"replica.lag.time.max.ms": "3000", "broker.session.timeout.ms": "3000"},
        "overrides": [["replica.lag.time.max.ms", "5000"]],
    }));
    assert_eq!(t.lag, Duration::from_millis(5000));
    assert_eq!(t.session, Duration::from_millis(3000));
    assert_eq!(t.quorum_fetch, KafkaTimings::default().quorum_fetch);
}

#[test]
fn one_acks_all_acknowledged_among_rejections_fails_the_rejection_check() {
    let (_, check) = acks::build(&info(), acks::AcksConfig::default(), timings());
    let topic = check.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 9000, &[], json!({}));
    f.send(&topic, "fault-acks1-p0-0", 1100, 1110, OpType::Ok, 5, None);
    f.send(
        &topic,
        "fault-acksall-p0-0",
        1200,
        3200,
        OpType::Info,
        0,
        Some("acks=all: RequestTimedOut"),
    );
    f.send(
        &topic,
        "fault-acksall-p0-1",
        4000,
        4010,
        OpType::Fail,
        0,
        Some("acks=all: NotEnoughReplicas"),
    );
    f.send(&topic, "fault-acks1-p0-1", 4000, 4010, OpType::Ok, 6, None);
    f.send(
        &topic,
        "fault-acksall-p0-2",
        5000,
        5010,
        OpType::Ok,
        7,
        None,
    );
    f.send(
        &topic,
        "healed-acksall-p0-0",
        9500,
        9600,
        OpType::Ok,
        8,
        None,
    );
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary
            .contains("1 of 3 acks=all send(s) acknowledged during the fault"),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("fault-acksall-p0-2"), "{}", v.summary);

    // Without that acknowledgement the same history passes, with the timings' resolution.
    let mut f = Fixture::default();
    f.fault(1000, 9000, &[], json!({}));
    f.send(
        &topic,
        "fault-acksall-p0-1",
        4000,
        4010,
        OpType::Fail,
        0,
        Some("acks=all: NotEnoughReplicas"),
    );
    f.send(&topic, "fault-acks1-p0-1", 4000, 4010, OpType::Ok, 6, None);
    f.send(
        &topic,
        "fault-acksall-p0-2",
        5000,
        5010,
        OpType::Info,
        0,
        Some("acks=all: NotEnoughReplicasAfterAppend"),
    );
    f.send(
        &topic,
        "healed-acksall-p0-0",
        9500,
        9600,
        OpType::Ok,
        8,
        None,
    );
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("first NOT_ENOUGH_REPLICAS 3005 ms ± 5 ms")),
        "{v:?}"
    );
}

#[test]
fn no_acks_all_answer_during_the_fault_is_unknown() {
    let (_, check) = acks::build(&info(), acks::AcksConfig::default(), timings());
    let topic = check.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 9000, &[], json!({}));
    f.send(
        &topic,
        "baseline-acksall-p0-0",
        100,
        110,
        OpType::Ok,
        0,
        None,
    );
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary
            .contains("no acks=all send was answered during the fault"),
        "{}",
        v.summary
    );
}

#[test]
fn acks1_records_that_survive_an_isolation_contradict_the_expected_loss() {
    let (_, check) = loss::leader_isolation::build(&info(), Default::default());
    let topic = check.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 9000, &[], json!({}));
    f.metadata(&topic, 0, 1000, |_| (1, vec![1, 2, 3]));
    f.send(
        &topic,
        "baseline-acksall-p0-0",
        100,
        110,
        OpType::Ok,
        0,
        None,
    );
    f.send(
        &topic,
        "isolated-acks1-p0-0",
        1100,
        1110,
        OpType::Ok,
        1,
        None,
    );
    f.send(
        &topic,
        "isolated-acks1-p0-2",
        1300,
        1310,
        OpType::Ok,
        2,
        None,
    );
    f.send(
        &topic,
        "isolated-acksall-p0-1",
        1200,
        3200,
        OpType::Info,
        0,
        Some("acks=all: RequestTimedOut"),
    );
    // Offset 1 was truncated, offset 2 survived.
    f.read(
        &topic,
        12_000,
        &[(0, "baseline-acksall-p0-0"), (2, "isolated-acks1-p0-2")],
    );
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary
            .contains("1 acks=1 record(s) acknowledged by the isolated leader survived"),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("isolated-acks1-p0-2"), "{}", v.summary);

    let (_, any) = loss::leader_isolation::build(
        &info(),
        loss::LeaderIsolationConfig {
            topic: None,
            acks1: loss::Acks1Expectation::Any,
            ..Default::default()
        },
    );
    let any = any.with_topic(&topic);
    assert_eq!(any.check(&f.history()).status, Status::Pass);
}

#[test]
fn a_minority_topic_creation_that_timed_out_is_resolved_from_the_metadata() {
    let (_, check) = quorum::build(&info(), Default::default(), timings());
    let mut f = Fixture::default();
    f.fault(1000, 9000, &["k3"], json!({"target": "k3"}));
    for t in (1000..12_000).step_by(100) {
        for n in ["k1", "k2"] {
            f.obs(
                n,
                seen::QUORUM,
                t,
                json!({"leads": n == "k1", "leader_epoch": 2}),
            );
        }
        f.obs(
            "k3",
            seen::QUORUM,
            t,
            json!({"leads": false, "leader_epoch": 1}),
        );
    }
    f.op(
        "create-topic",
        "maj",
        Some("k1"),
        1100,
        1200,
        OpType::Ok,
        json!(null),
        None,
    );
    f.op(
        "create-topic",
        "min",
        Some("k3"),
        4000,
        9000,
        OpType::Info,
        json!(null),
        Some("no answer before the end of the hold"),
    );
    let listed = |topics: &[&str]| json!({"brokers": [1, 2, 3], "topics": topics.iter().map(|t| json!({"name": t, "partitions": []})).collect::<Vec<_>>()});
    // Listed only after the heal: created late, the minority did not create it.
    f.obs("k1", seen::METADATA, 8000, listed(&["maj"]));
    f.obs("k1", seen::METADATA, 10_000, listed(&["maj", "min"]));
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("resolved: not created during the fault")),
        "{v:?}"
    );

    // Listed by a broker before the heal: the minority created a topic.
    f.obs("k2", seen::METADATA, 8500, listed(&["maj", "min"]));
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("topic min asked of k3") && v.summary.contains("before the heal"),
        "{}",
        v.summary
    );
}

#[test]
fn a_follower_that_never_leaves_the_isr_fails_and_one_without_load_is_unknown() {
    let (_, check) = isr::build(&info(), Default::default(), timings());
    let topic = check.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 9000, &["k3"], json!({"target": "k3"}));
    f.metadata(&topic, 0, 14_000, |_| (1, vec![1, 2, 3]));
    let unloaded = f.history();
    let v = check.check(&unloaded);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary
            .contains("no record was acknowledged during the fault"),
        "{}",
        v.summary
    );

    f.send(&topic, "isr-acks1-p0-1", 2000, 2010, OpType::Ok, 1, None);
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("k3 in") && v.summary.contains("never left the ISR"),
        "{}",
        v.summary
    );

    // It leaves 3 s after the fault and rejoins after the heal: PASS.
    let mut f = Fixture::default();
    f.fault(1000, 9000, &["k3"], json!({"target": "k3"}));
    f.metadata(&topic, 0, 14_000, |t| {
        (
            1,
            if (4000..9500).contains(&t) {
                vec![1, 2]
            } else {
                vec![1, 2, 3]
            },
        )
    });
    f.send(&topic, "isr-acks1-p0-1", 2000, 2010, OpType::Ok, 1, None);
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("left the ISR 2951 ms ± 51 ms after the fault")),
        "{v:?}"
    );
}

#[test]
fn no_lost_records_needs_an_acknowledgement_inside_a_fault() {
    let (driver, _) = loss::no_lost::build(
        &info(),
        loss::NoLostConfig {
            partitions: 1,
            ..Default::default()
        },
    );
    let check = loss::NoLostRecords::of(&driver);
    let topic = driver.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 9000, &["k3"], json!({}));
    f.send(&topic, "record-acksall-p0-0", 100, 110, OpType::Ok, 0, None);
    f.read(&topic, 12_000, &[(0, "record-acksall-p0-0")]);
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary
            .contains("no record was acknowledged inside a fault window"),
        "{}",
        v.summary
    );
    // An acknowledged record missing from the read is a FAIL, whatever else is missing.
    f.send(
        &topic,
        "record-acksall-p0-1",
        2000,
        2010,
        OpType::Ok,
        1,
        None,
    );
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("1 acknowledged record(s) lost")
            && v.summary.contains("record-acksall-p0-1"),
        "{}",
        v.summary
    );
}

#[test]
fn leadership_that_never_leaves_the_isolated_broker_fails() {
    let (_, check) = leadership::build(&info(), Default::default(), timings());
    let topic = check.topic().to_string();
    let mut f = Fixture::default();
    f.fault(1000, 11_000, &["k1"], json!({"target": "k1"}));
    f.metadata(&topic, 0, 12_000, |_| (1, vec![1, 2, 3]));
    let v = check.check(&f.history());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary
            .contains("led by a broker outside the fault: never seen"),
        "{}",
        v.summary
    );
    let mut moved = Fixture::default();
    moved.fault(1000, 11_000, &["k1"], json!({"target": "k1"}));
    moved.metadata(&topic, 0, 12_000, |t| {
        if t >= 5000 {
            (2, vec![2, 3])
        } else {
            (1, vec![1, 2, 3])
        }
    });
    let v = check.check(&moved.history());
    assert_eq!(v.status, Status::Pass, "{v:?}");
}
