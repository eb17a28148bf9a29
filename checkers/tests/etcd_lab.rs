//! The etcd lab against real etcd: members start behind rift, peer traffic flows
//! through rift's listeners, a crashed lab is detected and cleared, and the no-lost-writes
//! checker fails when an acknowledged key is deleted behind the workload's back.
//! Needs etcd (scripts/setup.sh installs it); a missing etcd is a failure, not a skip.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rift_checkers::etcd::checks::lost_writes::NoLostWrites;
use rift_checkers::etcd::workload::{PutWorkload, PutWorkloadConfig};
use rift_checkers::lab::etcd::{EtcdLab, EtcdLabConfig};
use rift_checkers::lab::{LabState, Preflight, clear_stale};
use rift_checkers::scenario::check::HistoryCheck;
use rift_checkers::scenario::{Status, Workload};

// Clusters of one binary run one at a time: 2 cores do not fit several etcd clusters
// with 50 ms heartbeats without spurious elections.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn state_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("etcd-lab-{name}"))
}

async fn lab(name: &str, nodes: usize) -> EtcdLab {
    let config = EtcdLabConfig::new(nodes, state_dir(name));
    EtcdLab::start(config).await.unwrap_or_else(|e| {
        panic!(
            "starting a {nodes}-member etcd lab failed: {e}\n(run scripts/setup.sh to install etcd)"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_talk_through_rift_and_shutdown_cleans_up() {
    let _g = SERIAL.lock().await;
    let lab = lab("basic", 3).await;
    let o = lab.observer();
    let (leader, term) = o
        .wait_for_leader(Duration::from_secs(10), None)
        .await
        .unwrap();
    assert!(
        term >= 2,
        "a fresh cluster's first leader applies term >= 2, got {term}"
    );
    o.put(&leader, "k", "v", Duration::from_secs(2))
        .await
        .unwrap();
    for n in o.member_names() {
        assert_eq!(
            o.get(&n, "k", false, Duration::from_secs(2))
                .await
                .unwrap()
                .as_deref(),
            Some("v")
        );
    }
    // Every member-to-member connection is relayed by rift and attributed to the
    // dialing member (not to `client`).
    let status = lab.control().status();
    for a in ["etcd1", "etcd2", "etcd3"] {
        for b in ["etcd1", "etcd2", "etcd3"] {
            if a == b {
                continue;
            }
            let relayed = status.connections.iter().any(|c| {
                c.src == a
                    && c.dst == b
                    && c.endpoint == "peer"
                    && c.active > 0
                    && c.bytes_forward > 0
            });
            assert!(
                relayed,
                "no relayed peer traffic {a} -> {b}: {:?}",
                status.connections
            );
        }
    }
    assert!(
        !status
            .connections
            .iter()
            .any(|c| c.src == "client" && c.endpoint == "peer"),
        "a member's peer dial was not attributed to it: {:?}",
        status.connections
    );
    let dir = lab.plan.config.state_dir.clone();
    let state = LabState::load(&dir).unwrap().expect("lab.json written");
    assert_eq!(state.processes.len(), 3);
    for p in &state.processes {
        let pid_file = dir.join(format!("{}.pid", p.name));
        assert_eq!(
            rift_checkers::lab::process::read_pid_file(&pid_file).unwrap(),
            p.pid
        );
    }
    assert!(state.is_healthy());
    lab.shutdown().await;
    assert!(!dir.exists(), "shutdown removes the state directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_lab_is_detected_and_cleared() {
    let _g = SERIAL.lock().await;
    let dir = state_dir("crash");
    let lab = lab("crash", 3).await;
    let pids = lab.member_pids();
    // A live lab is refused, never reused.
    let err = clear_stale(&dir).unwrap_err().to_string();
    assert!(err.contains("already running"), "{err}");
    // Simulate a crashed run: kill one member out from under the lab, then forget it.
    rift_proxy::sys::send_signal(pids[0], libc::SIGKILL).unwrap();
    std::mem::forget(lab);
    tokio::time::sleep(Duration::from_millis(300)).await;
    match clear_stale(&dir).unwrap() {
        Preflight::ClearedStale(s) => assert_eq!(s.processes.len(), 3),
        other => panic!("expected a stale lab, got {other:?}"),
    }
    for pid in &pids[1..] {
        assert!(
            !rift_checkers::lab::process::pid_alive(*pid),
            "member {pid} survived the cleanup"
        );
    }
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_writes_fails_when_an_acknowledged_key_is_deleted() {
    let _g = SERIAL.lock().await;
    let lab = lab("lost", 3).await;
    let o = lab.observer();
    let recorder = rift_history::Recorder::new(Instant::now());
    let config = PutWorkloadConfig {
        rate: 20,
        ..Default::default()
    };
    let mut w = PutWorkload::start(o.clone(), config, &recorder);
    let history = w.history();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Stopping reads every written key back and records the reads.
    let summary = w.stop().await;
    assert!(
        summary.acknowledged > 10,
        "workload acknowledged only {}",
        summary.acknowledged
    );
    let v = NoLostWrites.check(&recorder.snapshot());
    assert_eq!(v.status, Status::Pass, "{v:?}");

    let victim = history
        .lock()
        .unwrap()
        .acknowledged()
        .nth(3)
        .unwrap()
        .key
        .clone();
    o.delete("etcd1", &victim, Duration::from_secs(2))
        .await
        .unwrap();
    // A later read of the key is the one that counts: it finds the key gone.
    rift_checkers::etcd::final_reads::read_back(&o, &recorder, vec![victim.clone()]).await;
    let v = NoLostWrites.check(&recorder.snapshot());
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(v.summary.starts_with("1 of "), "{v:?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with(&format!("lost {victim}: wrote "))
                && e.ends_with("final read absent")),
        "{v:?}"
    );
    lab.shutdown().await;
}
