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
    assert_eq!(r.fault.as_ref().unwrap().minority, vec![leader]);
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
"#;
    let r = run_text("two-vs-two", &text, Duration::from_secs(4)).await;
    let s = statuses(&r);
    assert_eq!(s["no-quorum"], Status::Pass, "{}", r.table());
    assert_eq!(s["no-lost-writes"], Status::Pass, "{}", r.table());
    assert_eq!(s["majority-leader"], Status::Fail, "{}", r.table());
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
}
