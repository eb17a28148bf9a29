//! A 4-broker KRaft cluster behind rift (4 voters, quorum 3): the two-vs-two scenario
//! file leaves no side with a metadata leader or the power to create topics, and the
//! quorum checker FAILS when the "split" spares the controller endpoint (the quorum
//! survives although clients and replication are cut 2|2).
//!
//! Needs Java 17 and the Kafka jars (scripts/setup.sh); missing ones fail the test.

use std::path::PathBuf;
use std::time::Instant;

use rift_checkers::kafka::system::KafkaCluster;
use rift_checkers::lab::kafka::{KafkaLab, KafkaLabOptions};
use rift_checkers::report::Report;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::{Cluster, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_two_vs_two() {
    let t = Instant::now();
    let lab = KafkaLab::start(4, KafkaLabOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!("starting a 4-broker Kafka lab failed: {e}\n(run scripts/setup.sh: it installs Java 17 and the Kafka jars)")
        });
    eprintln!("lab up in {:?}", t.elapsed());
    let cluster = KafkaCluster::from_lab(lab);

    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios/kafka-two-vs-two.toml");
    let scenario = Scenario::load(&file).unwrap();
    let report = run_and_print(&scenario, &cluster).await;
    let fault = report.fault.as_ref().expect("fault recorded");
    assert!(
        fault.majority.is_empty(),
        "2|2 leaves no majority: {fault:?}"
    );
    assert_eq!(report.verdicts.len(), 1);
    assert_eq!(
        report.verdicts[0].status,
        Status::Pass,
        "{:?}",
        report.verdicts[0].evidence
    );
    // Every topic creation asked of a broker without a majority is resolved from the
    // poller's metadata: refused, created only after the heal, or never created.
    let resolved = report.verdicts[0]
        .evidence
        .iter()
        .filter(|e| e.contains("topic creation refused") || e.contains("resolved:"))
        .count();
    assert_eq!(resolved, 4, "{:?}", report.verdicts[0].evidence);

    // The same halves cut on the client and replication endpoints only: the KRaft
    // quorum still spans both halves, so "no side has a quorum" is false.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "profile = \"two-vs-two\"",
        "profile = \"two-vs-two\"\nlabel = \"two-vs-two-sparing-controller\"",
    );
    let mut partial = Scenario::parse(&text, "partial two-vs-two").unwrap();
    partial.checkers[0]
        .settings
        .insert("no_quorum".into(), toml::Value::Boolean(true));
    let topology = rift_checkers::scenario::Cluster::nemesis(&cluster)
        .topology()
        .await
        .unwrap();
    let profile = rift_proxy::profile::ProfileLibrary::builtin()
        .get("two-vs-two")
        .unwrap()
        .clone();
    let mut rules = profile
        .resolve(&topology, &Default::default())
        .unwrap()
        .rules;
    for r in &mut rules {
        r.endpoints = vec!["client".into(), "replication".into()];
    }
    partial.fault.profile = None;
    partial.fault.rules = rules;
    let report = run_and_print(&partial, &cluster).await;
    assert_eq!(
        report.verdicts[0].status,
        Status::Fail,
        "{:?}",
        report.verdicts[0].evidence
    );
    assert!(
        report.verdicts[0].summary.contains("(no majority)"),
        "{}",
        report.verdicts[0].summary
    );

    Box::new(cluster).shutdown().await;
    eprintln!("total {:?}", t.elapsed());
}

/// Runs `scenario` on `cluster` and prints every verdict with its evidence.
async fn run_and_print(scenario: &Scenario, cluster: &KafkaCluster) -> Report {
    let report = run(scenario, cluster, &RunOptions { quiet: true })
        .await
        .unwrap();
    for v in &report.verdicts {
        eprintln!(
            "{:?} {}: {}\n  {}",
            v.status,
            v.checker,
            v.summary,
            v.evidence.join("\n  ")
        );
    }
    report
}
