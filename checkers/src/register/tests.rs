//! The register workload without a cluster: settings and their bounds, the mix, the
//! summary, and how operations are recorded when every request errors (through etcd's
//! store, against a port nothing listens on). Against real etcd it runs in
//! `checkers/tests/register_etcd.rs`, against real ZooKeeper in
//! `checkers/tests/zookeeper_scenarios.rs`.

use super::*;
use crate::etcd::observer::EtcdObserver;
use crate::etcd::register::EtcdRegister;

fn spec(text: &str) -> WorkloadSpec {
    let mut settings: toml::Table = toml::from_str(text).unwrap();
    let kind = settings
        .remove("kind")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    WorkloadSpec {
        kind,
        settings,
        origin: "s.toml: [workload]".into(),
    }
}

#[test]
fn defaults_and_bounds() {
    let c = RegisterConfig::from_spec(&spec("kind = \"register\"")).unwrap();
    assert_eq!((c.keys, c.clients_per_member, c.rate), (5, 2, 10));
    assert_eq!(c.mix, Mix::default());
    let c = RegisterConfig::from_spec(&spec(
        "kind = \"register\"\nkeys = 2\nmix = { read = 1, serializable_read = 0, write = 1, cas = 0 }",
    ))
    .unwrap();
    assert_eq!(c.keys, 2);
    assert_eq!(c.mix.cas, 0);
    for (text, field) in [
        ("keys = 0", "workload.keys"),
        ("keys = 5000", "workload.keys"),
        ("clients_per_member = 0", "workload.clients_per_member"),
        ("readers_per_member = 33", "workload.readers_per_member"),
        ("rate = 0", "workload.rate"),
        ("timeout = \"0s\"", "workload.timeout"),
        (
            "mix = { read = 0, serializable_read = 0, write = 0, cas = 0 }",
            "workload.mix",
        ),
    ] {
        let e = RegisterConfig::from_spec(&spec(&format!("kind = \"register\"\n{text}")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(field) && e.starts_with("s.toml: [workload]"),
            "{text}: {e}"
        );
    }
    let e = RegisterConfig::from_spec(&spec("kind = \"register\"\nmix = { reads = 1 }"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("reads"), "{e}");
}

#[test]
fn the_mix_picks_by_weight() {
    let m = Mix {
        read: 1,
        serializable_read: 0,
        write: 2,
        cas: 1,
    };
    let picks: Vec<Kind> = (0..m.total()).map(|r| m.pick(r)).collect();
    assert_eq!(picks, [Kind::Read, Kind::Write, Kind::Write, Kind::Cas]);
}

#[test]
fn summary_counts_acknowledgements_by_phase() {
    let ms = 1_000_000;
    let phases = vec![("baseline".to_string(), 0), ("fault".to_string(), 1000)];
    let s = summarize(
        &[
            (500 * ms, OpType::Ok),
            (1500 * ms, OpType::Ok),
            (1600 * ms, OpType::Fail),
            (1700 * ms, OpType::Info),
        ],
        &phases,
    );
    assert_eq!((s.acknowledged, s.failed, s.indeterminate), (2, 1, 1));
    assert_eq!(s.acknowledged_by_phase["baseline"], 1);
    assert_eq!(s.acknowledged_by_phase["fault"], 1);
}

#[tokio::test]
async fn unanswered_operations_are_recorded_fail_for_reads_and_info_otherwise() {
    // No member listens on this port: every request errors without proving a refusal.
    let observer = EtcdObserver::connect(&[("m1".into(), "http://127.0.0.1:9".into())])
        .await
        .unwrap();
    let recorder = Recorder::new(std::time::Instant::now());
    let config = RegisterConfig {
        keys: 2,
        clients_per_member: 2,
        rate: 50,
        timeout: Duration::from_millis(100),
        seed: Some(7),
        ..Default::default()
    };
    let mut w = RegisterWorkload::start(Arc::new(EtcdRegister(observer)), config, &recorder);
    let keys = w.keys().to_vec();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let summary = w.stop().await;
    assert_eq!(summary.acknowledged, 0);
    let h = recorder.snapshot();
    let pairs = h.pairs();
    let kinds = |f: &str| pairs.iter().filter(|(i, _)| i.f == f).count();
    assert!(
        kinds("read") > 0 && kinds("write") > 0 && kinds("cas") > 0,
        "every kind ran: {pairs:?}"
    );
    let mut infos = 0;
    for (inv, done) in &pairs {
        let done = done.expect("every operation completed");
        assert!(keys.contains(inv.key.as_ref().unwrap()), "{inv:?}");
        assert_eq!(inv.node.as_deref(), Some("m1"));
        assert!(done.error.is_some(), "{done:?}");
        match inv.f.as_str() {
            "read" => {
                assert_eq!(done.r#type, OpType::Fail, "{done:?}");
                assert!(inv.consistency.is_some(), "{inv:?}");
            }
            "write" => {
                assert_eq!(done.r#type, OpType::Info, "{done:?}");
                assert!(inv.value.is_i64());
            }
            "cas" => {
                assert_eq!(done.r#type, OpType::Info, "{done:?}");
                // Nothing was ever seen: the cas expects an absent key.
                assert_eq!(inv.value[0], Value::Null, "{inv:?}");
                assert!(inv.value[1].is_i64());
            }
            other => panic!("unexpected f {other}"),
        }
        if done.r#type == OpType::Info {
            infos += 1;
            // The process never invokes again after an indeterminate operation.
            let later = pairs
                .iter()
                .filter(|(i, _)| i.process == inv.process && i.time > inv.time)
                .count();
            assert_eq!(later, 0, "process {} reused after info", inv.process);
        }
    }
    assert_eq!(summary.indeterminate, infos);
    // The final reads, invoked after every client stopped: one per key through the one
    // member, linearizable.
    let mut finals: Vec<&str> = pairs[pairs.len() - 2..]
        .iter()
        .map(|(i, _)| {
            assert_eq!(
                (i.f.as_str(), i.consistency),
                ("read", Some(Consistency::Linearizable))
            );
            i.key.as_deref().unwrap()
        })
        .collect();
    finals.sort_unstable();
    assert_eq!(finals, keys);
    // Written values are unique in the run.
    let mut written: Vec<i64> = pairs
        .iter()
        .filter_map(|(i, _)| match i.f.as_str() {
            "write" => i.value.as_i64(),
            "cas" => i.value[1].as_i64(),
            _ => None,
        })
        .collect();
    let n = written.len();
    written.sort_unstable();
    written.dedup();
    assert_eq!(written.len(), n, "duplicate written values");
}

#[tokio::test]
async fn readers_only_read_serializably() {
    let observer = EtcdObserver::connect(&[("m1".into(), "http://127.0.0.1:9".into())])
        .await
        .unwrap();
    let recorder = Recorder::new(std::time::Instant::now());
    let config = RegisterConfig {
        keys: 1,
        clients_per_member: 1,
        readers_per_member: 1,
        rate: 50,
        timeout: Duration::from_millis(50),
        mix: Mix {
            read: 0,
            serializable_read: 0,
            write: 1,
            cas: 0,
        },
        seed: Some(3),
        ..Default::default()
    };
    let mut w = RegisterWorkload::start(Arc::new(EtcdRegister(observer)), config, &recorder);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stopped = recorder.now();
    w.stop().await;
    let h = recorder.snapshot();
    let pairs = h.pairs();
    let during: Vec<_> = pairs.iter().filter(|(i, _)| i.time < stopped).collect();
    let reads: Vec<_> = during.iter().filter(|(i, _)| i.f == "read").collect();
    assert!(!reads.is_empty(), "the reader read: {during:?}");
    assert!(
        reads
            .iter()
            .all(|(i, _)| i.consistency == Some(Consistency::Serializable)),
        "{reads:?}"
    );
    assert!(
        during.iter().any(|(i, _)| i.f == "write"),
        "the writer wrote"
    );
}
