//! `rift watch`'s gauges against a real etcd lab: one leader at a time, terms that
//! make sense, the leader gauge moving when rift isolates the leader, and a dead
//! member reported down. Needs etcd (scripts/setup.sh installs it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rift_checkers::lab::etcd::{EtcdLab, EtcdLabConfig};
use rift_checkers::watch::{Sample, WatchTargets, Watcher, render};
use rift_proxy::control::CutOptions;

fn value(samples: &[Sample], metric: &str, node: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == metric && s.labels.iter().any(|(k, v)| *k == "node" && v == node))
        .map(|s| s.value)
}

fn leaders(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.name == "rift_cluster_leader" && s.value == 1.0)
        .map(|s| s.labels[0].1.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_the_leader_and_follows_it_through_an_isolation() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("watch-etcd");
    let lab = EtcdLab::start(EtcdLabConfig::new(3, dir))
        .await
        .unwrap_or_else(|e| {
            panic!("starting the etcd lab failed: {e} (run scripts/setup.sh to install etcd)")
        });
    let targets = WatchTargets {
        etcd: lab.plan.observer_endpoints(),
        ..Default::default()
    };
    let watcher = Watcher::new(targets, Duration::from_secs(1)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let samples = watcher.poll().await;
        let found = leaders(&samples);
        if found.len() == 1 {
            break (found[0].clone(), samples);
        }
        assert!(
            Instant::now() < deadline,
            "never exactly one leader: {}",
            render(&samples)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (old_leader, samples) = first;
    for member in lab.observer().member_names() {
        assert_eq!(value(&samples, "rift_cluster_up", &member), Some(1.0));
        assert!(
            value(&samples, "rift_raft_term", &member).unwrap() >= 2.0,
            "{}",
            render(&samples)
        );
    }

    lab.control()
        .isolate(&old_leader, CutOptions::default())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let samples = watcher.poll().await;
        let found = leaders(&samples);
        if found.len() == 1 && found[0] != old_leader {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leader gauge never left {old_leader}: {}",
            render(&samples)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lab.control().heal();

    // A member that is gone is reported down, not silently dropped.
    let victim = lab.observer().member_names()[0].clone();
    let pid = lab.member_pids()[0];
    kill_member(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while value(&watcher.poll().await, "rift_cluster_up", &victim) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "{victim} killed but still reported up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lab.shutdown().await;
}

fn kill_member(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
