//! The Kafka log checker (`kind = "log"`) against a real 3-broker KRaft lab behind
//! rift: a follower isolation whose acknowledged acks=all records all survive PASSES;
//! an unclean leader election (min.insync.replicas=1, the leader first cut from
//! replication, then from everything, a stale follower elected) loses acknowledged
//! acks=all records and the checker FAILS naming them: partition, offset, value, and
//! what the offset holds now. Needs Java 17 and the Kafka jars (scripts/setup.sh);
//! missing ones fail the test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rift_checkers::kafka::client;
use rift_checkers::kafka::log_check::{LogChecker, LogConfig, build};
use rift_checkers::kafka::system::KafkaCluster;
use rift_checkers::lab::kafka::{KafkaLab, KafkaLabOptions};
use rift_checkers::scenario::check::HistoryCheck;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::{Status, poller};
use rift_history::Recorder;
use rift_proxy::control::CutOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_checker_passes_a_follower_isolation_and_fails_an_unclean_election() {
    let lab = KafkaLab::start(3, KafkaLabOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!("starting a 3-broker Kafka lab failed: {e}\n(run scripts/setup.sh: it installs Java 17 and the Kafka jars)")
        });
    let cluster = KafkaCluster::from_lab(lab);

    // PASS: the shipped follower isolation with the log checker added.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios/kafka-follower-isolation.toml");
    let text =
        std::fs::read_to_string(&path).unwrap() + "\n[[checker]]\nkind = \"log\"\npartitions = 2\n";
    let scenario = Scenario::parse(&text, "kafka-follower-isolation.toml").unwrap();
    let r = run(&scenario, &cluster, &RunOptions { quiet: true })
        .await
        .unwrap();
    println!("{}", r.table());
    let v = r
        .verdicts
        .iter()
        .find(|v| v.checker == "kafka-log")
        .expect("log verdict");
    assert_eq!(v.status, Status::Pass, "{}", r.table());
    assert!(
        v.evidence[0].contains("while a fault was in place")
            && !v.evidence[0].contains(", 0 of them"),
        "{:?}",
        v.evidence
    );

    unclean_election_loses_acknowledged_records(&cluster).await;
    use rift_checkers::scenario::Cluster;
    Box::new(cluster).shutdown().await;
}

/// Real loss caused by Kafka, judged from the recorded history by the log checker.
async fn unclean_election_loses_acknowledged_records(cluster: &KafkaCluster) {
    let info = cluster.info().clone();
    let control = cluster.lab().expect("lab").control();
    let recorder = Recorder::new(Instant::now());
    let (mut driver, check) = build(
        &info,
        LogConfig {
            partitions: 1,
            min_insync_replicas: 1,
            unclean_leader_election: true,
            ..Default::default()
        },
    );
    driver.start(&recorder).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let topic = driver.topic().to_string();
    let view = |at: std::net::SocketAddr| {
        let topic = topic.clone();
        async move { client::partition_from(at, &topic, 0, Duration::from_secs(2)).await }
    };
    let first = view(info.brokers[0].direct_client).await.expect("metadata");
    let leader = info.name_of(first.leader);
    let leader_id = first.leader;
    let other = info
        .brokers
        .iter()
        .find(|b| b.id != leader_id)
        .expect("a follower")
        .direct_client;
    let wait_for = |what: &'static str, want: Box<dyn Fn(&client::PartitionView) -> bool>| {
        let view = &view;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let seen = view(other).await;
                if let Ok(p) = &seen
                    && want(p)
                {
                    return;
                }
                assert!(Instant::now() < deadline, "{what} never happened: {seen:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // The fault window the checker needs evidence in, recorded as the runner would.
    let start = recorder.now();
    control
        .isolate(
            &leader,
            CutOptions {
                endpoints: vec!["replication".into()],
                ..Default::default()
            },
        )
        .unwrap();
    recorder.record(rift_history::Entry::Nemesis(rift_history::NemesisOp::new(
        start,
        recorder.now(),
        "start",
        serde_json::json!({"id": 1, "label": "unclean-election", "rules": []}),
    )));
    wait_for(
        "ISR shrunk to the leader",
        Box::new(move |p| p.isr == vec![leader_id]),
    )
    .await;
    // Records acknowledged by the leader alone, then the leader cut from everything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.isolate(&leader, CutOptions::default()).unwrap();
    wait_for(
        "a follower elected uncleanly",
        Box::new(move |p| p.leader >= 0 && p.leader != leader_id),
    )
    .await;
    let stop = recorder.now();
    control.heal();
    recorder.record(rift_history::Entry::Nemesis(rift_history::NemesisOp::new(
        stop,
        recorder.now(),
        "stop",
        serde_json::json!({"id": 1}),
    )));
    let (done, stopped) = tokio::sync::watch::channel(false);
    let finish = async {
        driver.finish(&recorder).await;
        let _ = done.send(true);
    };
    tokio::join!(finish, poller::run(cluster, &recorder, stopped));
    let h = recorder.snapshot();
    let v = check.check(&h);
    println!(
        "{:?} {}\n  {}",
        v.status,
        v.summary,
        v.evidence.join("\n  ")
    );
    assert_eq!(v.status, Status::Fail, "{:?}", v.evidence);
    assert!(
        v.summary.contains("acknowledged acks=all record(s) lost: ")
            && v.summary.contains(&format!("{topic}/0 offset ")),
        "{}",
        v.summary
    );
    // Every lost record named is one the history shows acknowledged at that offset.
    let acked: Vec<(i64, String)> = h
        .pairs()
        .into_iter()
        .filter_map(|(i, d)| {
            let d = d?;
            (i.f == "send" && d.r#type == rift_history::OpType::Ok).then(|| {
                (
                    d.value[0].as_i64().unwrap(),
                    d.value[1].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    let lost: Vec<&String> = v
        .evidence
        .iter()
        .filter(|e| e.starts_with("lost (acks=all): "))
        .collect();
    assert!(!lost.is_empty(), "{:?}", v.evidence);
    for line in lost.iter().filter(|l| !l.contains("more")) {
        assert!(
            acked
                .iter()
                .any(|(o, val)| line.contains(&format!("offset {o} {val:?}"))),
            "{line} is not an acknowledged send"
        );
    }
    // A checker of another topic sees none of it: the verdict is about this topic only.
    assert_eq!(
        LogChecker::new(Some("elsewhere".into()), LogConfig::default())
            .check(&h)
            .status,
        Status::Unknown
    );
}
