//! Kafka 4.x KRaft behind rift, end to end: one 3-broker lab runs every 3-node Kafka
//! scenario file in profiles/scenarios/ through the scenario runner, plus the cases in
//! which each checker must FAIL:
//! - acks-all-rejection with min.insync.replicas=1 under the same replication cut;
//! - a "fake isolation" that cuts the leader only on the `client` endpoint (no broker
//!   traffic crosses it): isr-shrink, leader-step-down and leader-isolation-acks FAIL;
//! - leader isolation with the producer on the majority side: leader-isolation-acks is
//!   UNKNOWN (the isolated leader acknowledges nothing, so nothing was at risk);
//! - no-lost-records after acknowledged records are deleted behind its back, and after
//!   real loss: an unclean leader election on a topic with min.insync.replicas=1.
//!
//! Before them, `rift watch`'s gauges are read from the same lab. Finally the
//! replication cut runs again through `attach` (the HTTP control API).
//!
//! Needs Java 17 and the Kafka jars (scripts/setup.sh); missing ones fail the test.
//! One lab is shared by all cases to keep the run within the CI budget.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rift_checkers::kafka::checks::loss::{NoLostConfig, NoLostDriver, NoLostRecords, no_lost};
use rift_checkers::kafka::client::{self, TopicSpec};
use rift_checkers::kafka::system::KafkaCluster;
use rift_checkers::lab::kafka::{KafkaLab, KafkaLabOptions};
use rift_checkers::report::Report;
use rift_checkers::scenario::check::HistoryCheck;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::AttachOptions;
use rift_checkers::scenario::{Cluster, Status, Verdict, poller};
use rift_checkers::watch::{Sample, WatchTargets, Watcher, render};
use rift_history::Recorder;
use rift_proxy::control::CutOptions;
use rift_proxy::fault::{Fault, LinkRule};

#[path = "support/history.rs"]
mod history;

fn scenario_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios")
        .join(name)
}

fn load(name: &str) -> Scenario {
    Scenario::load(&scenario_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A scenario file with extra TOML appended (more checkers for the FAIL cases).
fn load_with(name: &str, extra: &str) -> Scenario {
    let text = std::fs::read_to_string(scenario_file(name)).unwrap();
    Scenario::parse(&format!("{text}\n{extra}"), name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn run_scenario(cluster: &KafkaCluster, scenario: &Scenario) -> Report {
    let t = Instant::now();
    let report = run(scenario, cluster, &RunOptions { quiet: true })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    eprintln!("{} ran in {:?}", scenario.name, t.elapsed());
    for v in &report.verdicts {
        eprintln!("  {:?} {}: {}", v.status, v.checker, v.summary);
        for e in &v.evidence {
            eprintln!("      {e}");
        }
    }
    report
}

/// Asserts the verdicts' statuses in checker order.
fn expect(report: &Report, want: &[(&str, Status)]) {
    let got: Vec<(&str, Status)> = report
        .verdicts
        .iter()
        .map(|v| (v.checker.as_str(), v.status))
        .collect();
    assert_eq!(
        got, want,
        "{}: verdicts differ (evidence above)",
        report.scenario
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_three_broker_scenarios() {
    let t = Instant::now();
    let lab = KafkaLab::start(3, KafkaLabOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!("starting a 3-broker Kafka lab failed: {e}\n(run scripts/setup.sh: it installs Java 17 and the Kafka jars)")
        });
    eprintln!("lab up in {:?}", t.elapsed());
    watch_reports_controller_and_isr(&lab).await;
    let cluster = KafkaCluster::from_lab(lab);
    use Status::{Fail, Pass};

    let r = run_scenario(&cluster, &load("kafka-follower-isolation.toml")).await;
    expect(
        &r,
        &[("kafka-isr-shrink", Pass), ("kafka-no-lost-records", Pass)],
    );

    let r = run_scenario(
        &cluster,
        &load_with(
            "kafka-replication-cut.toml",
            "[[checker]]\nkind = \"acks-all-rejection\"\ntopic = \"rift-acks-min1\"\nmin_insync_replicas = 1\n",
        ),
    )
    .await;
    expect(
        &r,
        &[
            ("kafka-acks-all-rejection", Pass),
            ("kafka-acks-all-rejection", Fail),
        ],
    );
    assert!(
        r.verdicts[1]
            .summary
            .contains("acks=all send(s) acknowledged during the fault"),
        "min.insync.replicas=1 must fail because the leader acknowledged acks=all alone: {}",
        r.verdicts[1].summary
    );

    let r = run_scenario(&cluster, &load("kafka-leader-isolation.toml")).await;
    expect(
        &r,
        &[
            ("kafka-leader-isolation-acks", Pass),
            ("kafka-leader-step-down", Pass),
            ("kafka-quorum-availability", Pass),
        ],
    );
    history::assert_kafka_leader_isolation(&r);

    let r = run_scenario(&cluster, &load("kafka-broker-isolation.toml")).await;
    expect(
        &r,
        &[
            ("kafka-leader-step-down", Pass),
            ("kafka-quorum-availability", Pass),
            ("kafka-no-lost-records", Pass),
        ],
    );

    // The shipped 60 s generator, shortened to two faults: each step applied, held and
    // healed in order, recorded as nemesis operations, and judged per fault.
    let mut generator = load("kafka-generator.toml");
    let g = generator.generator.as_mut().expect("a [generator]");
    g.duration = Duration::from_secs(26);
    g.interval = Duration::from_secs(3);
    g.hold = "10s..11s".into();
    let steps = generator.schedule();
    assert_eq!(steps.len(), 2, "{steps:?}");
    let r = run_scenario(&cluster, &generator).await;
    expect(
        &r,
        &[
            ("kafka-leader-step-down", Pass),
            ("kafka-quorum-availability", Pass),
            ("kafka-no-lost-records", Pass),
        ],
    );
    let nemesis: Vec<_> = r.history.nemesis().collect();
    assert_eq!(nemesis.len(), 4, "{nemesis:?}");
    for (step, pair) in steps.iter().zip(nemesis.chunks(2)) {
        assert_eq!((pair[0].f.as_str(), pair[1].f.as_str()), ("start", "stop"));
        assert_eq!(pair[0].value["label"], step.label().as_str());
        assert_eq!(pair[0].value["id"], pair[1].value["id"]);
    }

    // The leader cut from the other brokers only on the client endpoint, which no
    // broker-to-broker traffic uses: nothing happens, and the checkers must say so.
    let fake = Scenario::parse(
        r#"
name = "kafka-fake-isolation"
[cluster]
system = "kafka"
nodes = 3
[fault]
rules = [
  { from = "leader", to = "follower1", fault = { kind = "hold" }, endpoints = ["client"] },
  { from = "follower1", to = "leader", fault = { kind = "hold" }, endpoints = ["client"] },
  { from = "leader", to = "follower2", fault = { kind = "hold" }, endpoints = ["client"] },
  { from = "follower2", to = "leader", fault = { kind = "hold" }, endpoints = ["client"] },
]
[timeline]
baseline = "2s"
hold = "8s"
settle = "2s"
[[checker]]
kind = "isr-shrink"
shrink_within = "6s"
[[checker]]
kind = "leader-step-down"
within = "6s"
[[checker]]
kind = "leader-isolation-acks"
"#,
        "inline fake isolation",
    )
    .unwrap();
    let r = run_scenario(&cluster, &fake).await;
    expect(
        &r,
        &[
            ("kafka-isr-shrink", Fail),
            ("kafka-leader-step-down", Fail),
            ("kafka-leader-isolation-acks", Fail),
        ],
    );
    assert!(
        r.verdicts[2].summary.contains("acks=all record"),
        "{}",
        r.verdicts[2].summary
    );

    // Leader isolated but the producer placed on the majority side (cut from the
    // leader, the only broker it knows): the isolated leader acknowledges nothing, so
    // nothing was at risk and the loss expectation cannot be judged: UNKNOWN.
    let mut majority_client = load("kafka-leader-isolation.toml");
    majority_client
        .fault
        .rules
        .retain(|r| r.from != "client" && r.to != "client");
    for (from, to) in [("client", "leader"), ("leader", "client")] {
        majority_client.fault.rules.push(LinkRule {
            from: from.into(),
            to: to.into(),
            fault: Fault::Hold,
            endpoints: Vec::new(),
        });
    }
    majority_client.checkers.truncate(1);
    let r = run_scenario(&cluster, &majority_client).await;
    expect(&r, &[("kafka-leader-isolation-acks", Status::Unknown)]);
    assert!(
        r.verdicts[0].summary.contains("no acks=1 record"),
        "{}",
        r.verdicts[0].summary
    );

    no_lost_records_fails_when_records_vanish(&cluster).await;
    no_lost_records_fails_after_an_unclean_election(&cluster).await;

    // The same lab seen as an already running cluster behind a `rift proxy`: the
    // nemesis speaks HTTP to the control API, the brokers are found from its topology.
    let api_url = cluster.lab().expect("lab").api_url();
    let scenario = load("kafka-replication-cut.toml");
    let attached = KafkaCluster::attach(
        &scenario.cluster,
        &scenario.origin,
        &AttachOptions {
            api_url,
            endpoints: Vec::new(),
        },
    )
    .await
    .expect("attach to the lab's proxy");
    assert_eq!(
        attached.info(),
        cluster.info(),
        "attach finds the same brokers"
    );
    let r = run_scenario(&attached, &scenario).await;
    expect(&r, &[("kafka-acks-all-rejection", Pass)]);

    Box::new(cluster).shutdown().await;
    eprintln!("total {:?}", t.elapsed());
}

/// `rift watch`'s gauges on this lab: exactly one KRaft quorum leader, its epoch, the
/// ISR size of a fresh 3-replica partition, and the leader gauge moving off a controller
/// that rift isolates.
async fn watch_reports_controller_and_isr(lab: &KafkaLab) {
    let topic = "rift-watch";
    let observer = lab.brokers[0].direct_client;
    client::create_topic(
        &lab.bootstrap(),
        observer,
        &TopicSpec::new(topic, 1, 3),
        Duration::from_secs(30),
    )
    .await
    .expect("create the watched topic");
    let targets = WatchTargets {
        kafka_controllers: lab
            .brokers
            .iter()
            .map(|b| (b.name.clone(), b.direct_controller))
            .collect(),
        kafka_bootstrap: lab.brokers.iter().map(|b| b.direct_client).collect(),
        kafka_topics: vec![topic.to_string()],
        ..Default::default()
    };
    let watcher = Watcher::new(targets, Duration::from_secs(2)).await.unwrap();
    let leaders = |samples: &[Sample]| -> Vec<String> {
        samples
            .iter()
            .filter(|s| s.name == "rift_cluster_leader" && s.value == 1.0)
            .map(|s| s.labels[0].1.clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (controller, samples) = loop {
        let samples = watcher.poll().await;
        let found = leaders(&samples);
        let isr = samples
            .iter()
            .find(|s| s.name == "rift_partition_isr_size")
            .map(|s| s.value);
        if found.len() == 1 && isr == Some(3.0) {
            break (found[0].clone(), samples);
        }
        assert!(
            Instant::now() < deadline,
            "watch never showed one controller and ISR 3:\n{}",
            render(&samples)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let epoch = samples
        .iter()
        .find(|s| s.name == "rift_raft_term" && s.labels[0].1 == controller)
        .map(|s| s.value)
        .unwrap();
    assert!(epoch >= 1.0, "{}", render(&samples));
    lab.control()
        .isolate(&controller, CutOptions::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = watcher.poll().await;
        let found = leaders(&samples);
        if found.len() == 1 && found[0] != controller {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader gauge never left {controller}:\n{}",
            render(&samples)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    lab.control().heal();
    // The scenarios below start from a whole cluster again: every replica back in sync.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = watcher.poll().await;
        let isr = samples
            .iter()
            .find(|s| s.name == "rift_partition_isr_size")
            .map(|s| s.value);
        if leaders(&samples).len() == 1 && isr == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not recover after heal:\n{}",
            render(&samples)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A no-lost-records driver started by hand, after its baseline and 2 s of produce.
async fn start_no_lost_records(
    cluster: &KafkaCluster,
    config: NoLostConfig,
) -> (NoLostDriver, Recorder) {
    let recorder = Recorder::new(Instant::now());
    let (mut driver, _) = no_lost::build(cluster.info(), config);
    driver.start(&recorder).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    (driver, recorder)
}

/// Stops the driver and reads back (the run's poller feeding the wait for a full ISR,
/// as in a scenario), then judges the recorded history.
async fn finish_no_lost_records(
    cluster: &KafkaCluster,
    mut driver: NoLostDriver,
    recorder: Recorder,
) -> Verdict {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let finish = async {
        driver.finish(&recorder).await;
        let _ = stop.send(true);
    };
    tokio::join!(finish, poller::run(cluster, &recorder, stopped));
    let v = NoLostRecords::of(&driver).check(&recorder.snapshot());
    eprintln!("  {:?} {}: {}", v.status, v.checker, v.summary);
    for e in &v.evidence {
        eprintln!("      {e}");
    }
    v
}

/// Drives no-lost-records by hand and deletes the acknowledged records (DeleteRecords)
/// before the final read: it must report them lost.
async fn no_lost_records_fails_when_records_vanish(cluster: &KafkaCluster) {
    let info = cluster.info().clone();
    let (driver, recorder) = start_no_lost_records(
        cluster,
        NoLostConfig {
            partitions: 1,
            ..Default::default()
        },
    )
    .await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", info.direct_bootstrap())
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(driver.topic(), 0, Offset::End)
        .unwrap();
    admin
        .delete_records(
            &tpl,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("DeleteRecords");
    let v = finish_no_lost_records(cluster, driver, recorder).await;
    assert_eq!(v.status, Status::Fail, "{:?}", v.evidence);
    assert!(
        v.summary.contains("acknowledged record(s) lost")
            && v.summary.contains("record-acksall-p0-"),
        "{}",
        v.summary
    );
}

/// Real loss, caused by Kafka: a topic with min.insync.replicas=1 and unclean leader
/// election. The leader is first cut from its followers on the replication endpoint
/// only, so it shrinks the ISR to itself (through the controller) and acknowledges
/// acks=all records alone; then it is cut from everything, gets fenced, and a follower
/// that never had those records is elected. After the heal the old leader truncates to
/// the new leader's log: no-lost-records must name acknowledged acks=all records lost.
async fn no_lost_records_fails_after_an_unclean_election(cluster: &KafkaCluster) {
    let info = cluster.info().clone();
    let control = cluster.lab().expect("lab").control();
    // Its baseline records are acknowledged by the full ISR: they must survive.
    let (driver, recorder) = start_no_lost_records(
        cluster,
        NoLostConfig {
            partitions: 1,
            min_insync_replicas: 1,
            unclean_leader_election: true,
            ..Default::default()
        },
    )
    .await;
    let topic = driver.topic().to_string();
    let view = |at: std::net::SocketAddr| {
        let topic = topic.clone();
        async move { client::partition_from(at, &topic, 0, Duration::from_secs(2)).await }
    };
    let first = view(info.brokers[0].direct_client).await.expect("metadata");
    let leader = info.name_of(first.leader);
    let other = info
        .brokers
        .iter()
        .find(|b| b.id != first.leader)
        .expect("a follower")
        .direct_client;
    eprintln!("unclean election: {topic} led by {leader} ({first:?})");

    let replication_only = CutOptions {
        endpoints: vec!["replication".into()],
        ..Default::default()
    };
    control.isolate(&leader, replication_only).unwrap();
    let wait_for = |what: &'static str, want: Box<dyn Fn(&client::PartitionView) -> bool>| {
        let view = &view;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let seen = view(other).await;
                if let Ok(p) = &seen
                    && want(p)
                {
                    eprintln!("  {what}: {p:?}");
                    return;
                }
                assert!(Instant::now() < deadline, "{what} never happened: {seen:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let leader_id = first.leader;
    wait_for(
        "ISR shrunk to the leader",
        Box::new(move |p| p.isr == vec![leader_id]),
    )
    .await;
    // Records acknowledged by the leader alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.isolate(&leader, CutOptions::default()).unwrap();
    wait_for(
        "a follower elected uncleanly",
        Box::new(move |p| p.leader >= 0 && p.leader != leader_id),
    )
    .await;
    control.heal();
    let v = finish_no_lost_records(cluster, driver, recorder).await;
    assert_eq!(v.status, Status::Fail, "{:?}", v.evidence);
    assert!(
        v.summary.contains("acknowledged record(s) lost"),
        "{}",
        v.summary
    );
    // What the full ISR had acknowledged is still there: the loss is the election's.
    let log = client::read_partition(&info.direct_bootstrap(), &topic, 0, Duration::from_secs(20))
        .await
        .expect("read back");
    assert!(
        log.iter()
            .any(|(_, payload)| payload == "record-acksall-p0-0"),
        "the first record, acknowledged before any fault, is gone too: {log:?}"
    );
}
