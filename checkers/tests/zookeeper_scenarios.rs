//! The shipped ZooKeeper scenarios against a real ZooKeeper 3.9 ensemble behind rift:
//! one lab for the whole binary, the leader isolation then the minority (follower)
//! isolation run on it in turn. Needs Java 17 and the ZooKeeper jars
//! (scripts/setup.d/35-zookeeper.sh); missing either is a failure naming it, not a skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_checkers::report::Report;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};
use rift_checkers::scenario::{Cluster, Status, Verdict};
use rift_history::{Consistency, OpType};

const MS: u64 = 1_000_000;

fn scenario(name: &str) -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../profiles/scenarios/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Scenario::parse(&text, &format!("{name}.toml")).unwrap()
}

fn verdict<'a>(r: &'a Report, name: &str) -> &'a Verdict {
    r.verdicts
        .iter()
        .find(|v| v.checker == name)
        .unwrap_or_else(|| panic!("no verdict {name}:\n{}", r.table()))
}

/// Outcomes of `f` operations through `node` called a second into the cut (once the
/// cut server has given up on its quorum) and completed before the heal.
fn during(r: &Report, node: &str, f: &str, c: Option<Consistency>) -> Vec<OpType> {
    let h = &r.history;
    let start = h.nemesis().find(|n| n.f == "start").unwrap().time;
    let stop = h.nemesis().find(|n| n.f == "stop").unwrap().invoked;
    h.pairs()
        .iter()
        .filter_map(|(i, d)| {
            let d = (*d)?;
            (i.node.as_deref() == Some(node)
                && i.f == f
                && i.consistency == c
                && i.time > start + 1_500 * MS
                && d.time < stop)
                .then_some(d.r#type)
        })
        .collect()
}

/// What both scenarios must show: the cut server acknowledged no write, the majority
/// went on, nothing acknowledged was lost, writes and synced reads are linearizable.
fn common(r: &Report, isolated: &str) {
    let table = r.table();
    let fault = r.fault.as_ref().expect("fault applied");
    assert_eq!(fault.minority, vec![isolated.to_string()], "{table}");
    for (inv, done) in r.history.pairs() {
        let done = done.unwrap_or_else(|| panic!("never completed: {inv:?}"));
        assert_eq!((done.process, &done.f), (inv.process, &inv.f));
    }
    let writes = during(r, isolated, "write", None);
    assert!(
        !writes.is_empty() && writes.iter().all(|t| *t != OpType::Ok),
        "{writes:?}\n{table}"
    );
    let synced = during(r, isolated, "read", Some(Consistency::Linearizable));
    assert!(
        synced.iter().all(|t| *t == OpType::Fail),
        "{synced:?}\n{table}"
    );
    let acked = during(r, &fault.majority[0], "write", None);
    assert!(
        acked.contains(&OpType::Ok),
        "the majority goes on: {acked:?}\n{table}"
    );
    for name in ["minority-refuses-writes", "no-lost-writes", "linearizable"] {
        assert_eq!(verdict(r, name).status, Status::Pass, "{name}\n{table}");
    }
    // Counted, never a failure without max_stale; UNKNOWN only when the cut server
    // answered no plain read at all.
    assert_ne!(verdict(r, "stale-reads").status, Status::Fail, "{table}");
}

/// The `zookeeper-srvr` observations of `node`: (time, mode, epoch).
fn modes(r: &Report, node: &str) -> Vec<(u64, String, Option<u64>)> {
    r.history
        .observations()
        .filter(|o| o.node == node && o.observation == "zookeeper-srvr" && !o.value.is_null())
        .map(|o| {
            (
                o.time,
                o.value["mode"].as_str().unwrap_or("").to_string(),
                o.value["epoch"].as_u64(),
            )
        })
        .collect()
}

async fn leader_isolation(cluster: &dyn Cluster) {
    let r = run(
        &scenario("zookeeper-leader-isolation"),
        cluster,
        &RunOptions { quiet: true },
    )
    .await
    .unwrap();
    println!("{}", r.table());
    let fault = r.fault.as_ref().unwrap();
    let old = fault.bindings["leader"].clone();
    common(&r, &old);
    // The old leader stops serving while cut; a follower leads at a higher epoch.
    let start = r.history.nemesis().find(|n| n.f == "start").unwrap().time;
    let stop = r.history.nemesis().find(|n| n.f == "stop").unwrap().invoked;
    let before = modes(&r, &old)
        .into_iter()
        .filter(|(t, m, _)| *t < start && m == "leader")
        .filter_map(|(_, _, e)| e)
        .max()
        .expect("the old leader was seen leading");
    assert!(
        modes(&r, &old)
            .iter()
            .any(|(t, m, _)| *t > start && *t < stop && m == "looking"),
        "{old} never stopped serving\n{}",
        r.table()
    );
    let new_leader = fault.majority.iter().find(|n| {
        modes(&r, n).iter().any(|(t, m, e)| {
            *t > start && *t < stop && m == "leader" && e.is_some_and(|e| e > before)
        })
    });
    assert!(
        new_leader.is_some(),
        "no new leader above epoch {before}\n{}",
        r.table()
    );
}

async fn minority_isolation(cluster: &dyn Cluster) {
    // A second stale-reads check that tolerates none: the cut follower's reader is
    // answered from its local copy while the majority writes, so it must FAIL.
    let mut s = scenario("zookeeper-minority-isolation");
    let strict: toml::Table = toml::from_str("max_stale = 0").unwrap();
    s.checkers.push(rift_checkers::scenario::spec::CheckerSpec {
        kind: "stale-reads".into(),
        settings: strict,
        origin: "zookeeper-minority-isolation.toml: [[checker]] (added by the test)".into(),
    });
    let r = run(&s, cluster, &RunOptions { quiet: true }).await.unwrap();
    println!("{}", r.table());
    let fault = r.fault.as_ref().unwrap();
    let cut = fault.bindings["target"].clone();
    assert_ne!(
        Some(&cut),
        fault.bindings.get("leader"),
        "a follower is cut"
    );
    common(&r, &cut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_leader_and_minority_isolation() {
    let s = scenario("zookeeper-leader-isolation");
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("zookeeper-scenarios"),
        base_port: None,
    };
    let started = std::time::Instant::now();
    let cluster = start_cluster(&s.cluster, &s.origin, &options)
        .await
        .unwrap_or_else(|e| panic!("starting ZooKeeper failed: {e}"));
    println!("lab up in {:?}", started.elapsed());
    leader_isolation(cluster.as_ref()).await;
    cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy again before the second scenario");
    minority_isolation(cluster.as_ref()).await;
    cluster.shutdown().await;
    println!("both scenarios in {:?}", started.elapsed());
}
