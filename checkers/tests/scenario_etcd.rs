//! Shipped etcd scenarios run end to end against real etcd behind rift, with shortened
//! timelines, plus checkers placed where their property does not hold (they must FAIL).
//! Needs etcd (scripts/setup.sh installs it); a missing etcd is a failure, not a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_checkers::report::Report;
use rift_checkers::scenario::Status;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};

// Clusters of one binary run one at a time: 2 cores do not fit several etcd clusters
// with 50 ms heartbeats without spurious elections.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run_text(tag: &str, text: &str, hold: Duration) -> Report {
    let mut scenario = Scenario::parse(text, &format!("{tag}.toml")).unwrap();
    scenario.timeline.baseline = Duration::from_millis(500);
    scenario.timeline.hold = hold;
    scenario.timeline.settle = Duration::from_secs(2);
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("scenario-{tag}")),
        base_port: None,
    };
    let cluster = start_cluster(&scenario.cluster, &scenario.origin, &options)
        .await
        .unwrap_or_else(|e| {
            panic!("starting the cluster failed: {e}\n(run scripts/setup.sh to install etcd)")
        });
    let report = run(&scenario, cluster.as_ref(), &RunOptions { quiet: true }).await;
    cluster.shutdown().await;
    let report = report.unwrap();
    println!("{}", report.table());
    report
}

fn statuses(r: &Report) -> BTreeMap<String, Status> {
    r.verdicts
        .iter()
        .map(|v| (v.checker.clone(), v.status))
        .collect()
}

fn status_of(r: &Report, checker: &str, nth: usize) -> Status {
    r.verdicts
        .iter()
        .filter(|v| v.checker == checker)
        .nth(nth)
        .unwrap_or_else(|| panic!("no verdict {checker}"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_isolation_passes_and_misplaced_expectations_fail() {
    let _g = SERIAL.lock().await;
    let text = shipped("etcd-leader-isolation")
        + r#"
[[checker]]
kind = "quorum-availability"
expect_fresh_serializable = true   # wrong on purpose: the isolated member serves stale reads

[[checker]]
kind = "no-quorum"                 # wrong on purpose: the majority keeps a quorum
"#;
    let r = run_text("leader-isolation", &text, Duration::from_secs(5)).await;
    assert_eq!(
        status_of(&r, "leader-step-down", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "quorum-availability", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "majority-leader", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "leader-stability", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "no-lost-writes", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "quorum-availability", 1),
        Status::Fail,
        "{}",
        r.table()
    );
    assert_eq!(status_of(&r, "no-quorum", 0), Status::Fail, "{}", r.table());
    assert_eq!(r.status, Status::Fail);
    let leader = r.fault.as_ref().unwrap().bindings["leader"].clone();
    assert_eq!(r.fault.as_ref().unwrap().minority, vec![leader.clone()]);
    assert_history(&r, &leader);
}

/// The run's history, as written to history.jsonl and read back: phases in order, the
/// fault as the proxy applied it, observations of every member with their poll
/// interval, and every write an invoke plus one completion; writes through the
/// isolated leader time out during the fault and are indeterminate, not refused.
fn assert_history(r: &Report, isolated: &str) {
    use rift_history::OpType;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("history-report");
    r.write_all(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let h = rift_history::read_jsonl(text.as_bytes(), "history.jsonl").unwrap();
    assert_eq!(h, r.history, "history.jsonl reads back as recorded");
    for (i, e) in h.entries.iter().enumerate() {
        assert_eq!(e.index(), i);
    }
    let phases: Vec<(&str, u64)> = h.phases().map(|p| (p.phase.as_str(), p.time)).collect();
    let names: Vec<&str> = phases.iter().map(|p| p.0).collect();
    assert_eq!(names, ["baseline", "fault", "heal", "final", "end"]);
    let at = |name: &str| phases.iter().find(|p| p.0 == name).unwrap().1;
    let (fault, heal) = (at("fault"), at("heal"));

    let nemesis: Vec<_> = h.nemesis().collect();
    assert_eq!(nemesis.len(), 2, "{nemesis:?}");
    let (start, stop) = (nemesis[0], nemesis[1]);
    assert_eq!((start.f.as_str(), stop.f.as_str()), ("start", "stop"));
    assert!(start.error.is_none() && stop.error.is_none(), "{nemesis:?}");
    assert!(start.invoked <= start.time && start.time <= fault);
    assert_eq!(start.value["id"], stop.value["id"]);
    assert_eq!(start.value["rules"], stop.value["rules"]);
    let rules = start.value["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    assert!(
        rules
            .iter()
            .all(|r| r["from"] == isolated || r["to"] == isolated),
        "every rule touches the isolated leader: {rules:?}"
    );
    assert_eq!(start.value["minority"], serde_json::json!([isolated]));

    for node in ["etcd1", "etcd2", "etcd3"] {
        let polls: Vec<_> = h
            .observations()
            .filter(|o| o.node == node && o.observation == "etcd-status")
            .collect();
        // 50 ms polls over a run of about 8 s; a loaded machine may stretch some.
        assert!(polls.len() > 40, "{node}: {} polls", polls.len());
        assert!(polls.iter().all(|o| o.started <= o.time));
        assert!(
            polls
                .iter()
                .filter(|o| o.error.is_none())
                .all(|o| o.value["leader_id"].is_u64()),
            "{node}"
        );
    }

    let pairs = h.pairs();
    assert!(!pairs.is_empty());
    let mut isolated_info = 0;
    let mut majority_ok = 0;
    let mut final_reads = 0;
    for (invoke, done) in &pairs {
        let done = done.unwrap_or_else(|| panic!("{invoke:?} never completed"));
        assert_eq!(invoke.r#type, OpType::Invoke);
        assert_eq!(invoke.key, done.key);
        if invoke.f == "read" {
            // The workload's final reads: linearizable, after the final mark.
            assert!(invoke.time >= at("final"), "{invoke:?}");
            assert_eq!(
                invoke.consistency,
                Some(rift_history::Consistency::Linearizable)
            );
            final_reads += 1;
            continue;
        }
        assert_eq!(invoke.f, "write");
        assert!(invoke.value.is_u64());
        let during = invoke.time > fault && done.time < heal;
        if during && invoke.node.as_deref() == Some(isolated) {
            assert_ne!(
                done.r#type,
                OpType::Ok,
                "the isolated leader acknowledged {done:?}"
            );
            if done.r#type == OpType::Info {
                isolated_info += 1;
            }
        }
        if during && invoke.node.as_deref() != Some(isolated) && done.r#type == OpType::Ok {
            majority_ok += 1;
        }
    }
    assert!(
        isolated_info > 0,
        "writes through the isolated leader time out: info"
    );
    assert!(
        majority_ok > 0,
        "the majority acknowledges writes during the fault"
    );
    assert!(final_reads > 0, "the written keys are read back");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_down_fails_when_a_follower_is_isolated() {
    let _g = SERIAL.lock().await;
    let text = r#"
name = "follower-isolation"
[cluster]
system = "etcd"
nodes = 3
[fault]
profile = "minority-isolation"
bindings = { target = "follower" }
[timeline]
hold = "4s"
[[checker]]
kind = "leader-step-down"
[[checker]]
kind = "quorum-availability"
[[checker]]
kind = "leader-stability"
max_term_increase = 0
max_leader_changes = 0
"#;
    let r = run_text("follower-isolation", text, Duration::from_secs(4)).await;
    let s = statuses(&r);
    assert_eq!(s["leader-step-down"], Status::Fail, "{}", r.table());
    assert_eq!(s["quorum-availability"], Status::Pass, "{}", r.table());
    assert_eq!(s["leader-stability"], Status::Pass, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vs_two_accepts_no_writes_and_recovers() {
    let _g = SERIAL.lock().await;
    let text = shipped("etcd-two-vs-two")
        + r#"
[[checker]]
kind = "majority-leader"          # wrong on purpose: no side has a quorum

[[checker]]
kind = "no-lost-writes"           # nothing is acknowledged during the fault: UNKNOWN
"#;
    let r = run_text("two-vs-two", &text, Duration::from_secs(4)).await;
    let s = statuses(&r);
    assert_eq!(s["no-quorum"], Status::Pass, "{}", r.table());
    assert_eq!(s["majority-leader"], Status::Fail, "{}", r.table());
    let lost = r
        .verdicts
        .iter()
        .find(|v| v.checker == "no-lost-writes")
        .unwrap();
    assert_eq!(lost.status, Status::Unknown, "{}", r.table());
    assert!(
        lost.summary
            .starts_with("no write was acknowledged while the fault was in place"),
        "{}",
        r.table()
    );
    let w = r.workload.as_ref().unwrap();
    assert_eq!(
        w.acknowledged_by_phase.get("fault").copied().unwrap_or(0),
        0,
        "{w:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_partition_disrupts_only_without_pre_vote() {
    let _g = SERIAL.lock().await;
    // Each shipped file states its expected outcome as leader-stability bounds; running
    // each file's cluster settings against the OTHER file's bounds must fail.
    let with = shipped("etcd-partial-partition");
    let without = shipped("etcd-partial-partition-no-prevote");
    let r = run_text("pp-prevote", &with, Duration::from_secs(4)).await;
    assert_eq!(
        status_of(&r, "leader-stability", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "no-lost-writes", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    let r = run_text("pp-no-prevote", &without, Duration::from_secs(4)).await;
    assert_eq!(
        status_of(&r, "leader-stability", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    assert_eq!(
        status_of(&r, "no-lost-writes", 0),
        Status::Pass,
        "{}",
        r.table()
    );
    let wrong = with.replace("pre_vote = true", "pre_vote = false");
    let r = run_text("pp-wrong", &wrong, Duration::from_secs(4)).await;
    assert_eq!(
        status_of(&r, "leader-stability", 0),
        Status::Fail,
        "{}",
        r.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_drives_a_running_proxy_over_http() {
    let _g = SERIAL.lock().await;
    let config = rift_checkers::lab::etcd::EtcdLabConfig::new(
        3,
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scenario-attach"),
    );
    let lab = rift_checkers::lab::etcd::EtcdLab::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n(run scripts/setup.sh to install etcd)"));
    let mut scenario = Scenario::parse(&shipped("etcd-leader-isolation"), "attach.toml").unwrap();
    scenario.timeline.baseline = Duration::from_millis(500);
    scenario.timeline.hold = Duration::from_secs(4);
    scenario.timeline.settle = Duration::from_secs(2);
    let options = rift_checkers::scenario::system::AttachOptions {
        api_url: lab.api_url(),
        endpoints: lab.plan.observer_endpoints(),
    };
    let cluster = rift_checkers::scenario::system::attach_cluster(
        &scenario.cluster,
        &scenario.origin,
        &options,
    )
    .await
    .unwrap();
    let r = run(&scenario, cluster.as_ref(), &RunOptions { quiet: true }).await;
    cluster.shutdown().await;
    // Attaching never owns the lab: the members are still there after the run.
    let still = lab
        .observer()
        .wait_for_leader(Duration::from_secs(5), None)
        .await;
    let events = lab.control().events().since(0);
    lab.shutdown().await;
    let r = r.unwrap();
    assert_eq!(r.status, Status::Pass, "{}", r.table());
    assert_eq!(r.cluster["mode"], "attach");
    assert!(still.is_ok(), "the attached cluster was stopped: {still:?}");
    let kinds: Vec<String> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "apply") && kinds.iter().any(|k| k == "heal"),
        "{kinds:?}"
    );
    // Over HTTP too, the history holds the fault as the proxy answered it.
    let nemesis: Vec<_> = r.history.nemesis().collect();
    assert_eq!(nemesis.len(), 2, "{nemesis:?}");
    assert!(nemesis.iter().all(|n| n.error.is_none()), "{nemesis:?}");
    assert_eq!(nemesis[0].value["id"], nemesis[1].value["id"]);
    assert!(!nemesis[0].value["rules"].as_array().unwrap().is_empty());
}

/// The shipped 60 s generator scenario, shortened to a few faults: every step of the
/// seeded schedule is applied and healed in order and recorded as nemesis operations,
/// each leader isolation is judged for step-down, and no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_schedule_applies_every_step_and_records_it() {
    let _g = SERIAL.lock().await;
    let mut scenario = Scenario::parse(&shipped("etcd-generator"), "etcd-generator.toml").unwrap();
    scenario.timeline.baseline = Duration::from_millis(500);
    scenario.timeline.settle = Duration::from_secs(2);
    let g = scenario.generator.as_mut().expect("a [generator]");
    g.duration = Duration::from_secs(14);
    g.interval = Duration::from_secs(2);
    g.hold = "2s..3s".into();
    // The first seed whose shortened schedule isolates the leader at least once.
    g.seed = (0..)
        .find(|seed| {
            let mut g = g.clone();
            g.seed = *seed;
            g.steps()
                .iter()
                .any(|s| s.fault.profile.as_deref() == Some("leader-isolation"))
        })
        .unwrap();
    let steps = scenario.schedule();
    assert!(steps.len() >= 3, "{steps:?}");
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scenario-generator"),
        base_port: None,
    };
    let cluster = start_cluster(&scenario.cluster, &scenario.origin, &options)
        .await
        .unwrap_or_else(|e| panic!("starting etcd failed: {e}\n(run scripts/setup.sh)"));
    let report = run(&scenario, cluster.as_ref(), &RunOptions { quiet: true }).await;
    cluster.shutdown().await;
    let r = report.unwrap();
    println!("{}", r.table());
    let nemesis: Vec<_> = r.history.nemesis().collect();
    assert_eq!(nemesis.len(), 2 * steps.len(), "{nemesis:?}");
    for (step, pair) in steps.iter().zip(nemesis.chunks(2)) {
        assert_eq!((pair[0].f.as_str(), pair[1].f.as_str()), ("start", "stop"));
        assert_eq!(pair[0].value["id"], pair[1].value["id"]);
        assert_eq!(pair[0].value["label"], step.label().as_str());
        assert!(pair[0].error.is_none() && pair[1].error.is_none());
        let held = (pair[1].invoked - pair[0].time) as f64 / 1e9;
        assert!(
            (held - step.hold.as_secs_f64()).abs() < 0.5,
            "step held {held} s, scheduled {:?}",
            step.hold
        );
    }
    let s = statuses(&r);
    assert_eq!(s["leader-step-down"], Status::Pass, "{}", r.table());
    assert_eq!(s["no-lost-writes"], Status::Pass, "{}", r.table());
    let judged = r.verdicts[0]
        .evidence
        .iter()
        .filter(|e| e.contains("stopped acting as leader"))
        .count();
    let isolations = steps
        .iter()
        .filter(|s| s.fault.profile.as_deref() == Some("leader-isolation"))
        .count();
    assert!(
        judged >= isolations,
        "every leader isolation judged: {:?}",
        r.verdicts[0].evidence
    );
}
