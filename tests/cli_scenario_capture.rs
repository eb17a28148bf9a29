//! `rift scenario run --capture` on a real etcd lab: the run's packets land in its
//! report directory (read back by `tcpdump -r`), and the scenario's `no-crossing`
//! checker is judged from them after the run. The scenario's second step is meant to
//! isolate the leader but cuts only its `client` endpoint: judged as a pair cut, the
//! raft bytes that kept flowing make no-crossing FAIL, while the first step (a full
//! leader isolation) passes on every link. Without --capture the checker is UNKNOWN.
//! Needs etcd and tcpdump (scripts/setup.sh installs them); missing is a failure.

use std::process::{Command, Output};

const SCENARIO: &str = r#"
name = "capture-probe"
description = "a full leader isolation, then a cut of only the client endpoint"

[cluster]
system = "etcd"
nodes = 3
pre_vote = true

[timeline]
baseline = "2s"
settle = "2s"

[[step]]
at = "0s"
profile = "leader-isolation"
hold = "3s"

[[step]]
at = "5s"
hold = "3s"
label = "client-only"
rules = [
  { from = "leader", to = "follower1", fault = { kind = "hold" }, endpoints = ["client"] },
  { from = "follower1", to = "leader", fault = { kind = "hold" }, endpoints = ["client"] },
]

[workload]
kind = "puts"
rate = 10

[[checker]]
kind = "no-crossing"
scope = "pair"

[[checker]]
kind = "no-lost-writes"
"#;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(root: &std::path::Path, out: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let file = root.join("capture-probe.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rift"))
        .args([
            "scenario",
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--out",
        ])
        .arg(root.join(out))
        .arg("--state-dir")
        .arg(root.join(format!("{out}-state")))
        .args(extra)
        .output()
        .expect("run rift");
    let report = std::fs::read(root.join(out).join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}); etcd missing? {}", text(&o)));
    (o, serde_json::from_slice(&report).unwrap())
}

fn no_crossing(report: &serde_json::Value) -> &serde_json::Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["checker"] == "no-crossing")
        .expect("a no-crossing verdict")
}

#[test]
fn a_captured_scenario_run_is_judged_from_the_wire() {
    let root = std::env::temp_dir().join(format!("rift-scenario-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    let (o, report) = run(&root, "captured", &["--capture"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "no-crossing must FAIL: {}",
        text(&o)
    );
    let v = no_crossing(&report);
    assert_eq!(v["status"], "FAIL", "{v:#}");
    let evidence: Vec<&str> = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // Why: payload crossed on the pair the client-only step claimed to cut ...
    assert!(
        evidence
            .iter()
            .any(|e| e.starts_with("fault 2 ") && e.contains(": Fail: ")),
        "{evidence:#?}"
    );
    // ... while the full isolation held on every link the capture saw.
    let first: Vec<&&str> = evidence
        .iter()
        .filter(|e| e.starts_with("fault 1 "))
        .collect();
    assert_eq!(first.len(), 4, "{evidence:#?}");
    assert!(
        first.iter().all(|e| e.contains(": Pass: ")),
        "{evidence:#?}"
    );
    assert_eq!(
        report["verdicts"][1]["checker"], "no-lost-writes",
        "verdicts keep the file's order"
    );

    // tcpdump reads the run's capture: classic pcap with TCP on the lab's ports.
    let pcap = root.join("captured").join("capture.pcap");
    let o = Command::new("tcpdump")
        .args(["-nr"])
        .arg(&pcap)
        .output()
        .expect("tcpdump is installed (scripts/setup.d/60-capture.sh)");
    assert!(o.status.success(), "tcpdump -r: {}", text(&o));
    let lines = String::from_utf8_lossy(&o.stdout).lines().count();
    assert!(lines > 100, "{lines} packets");
    for f in [
        "capture-sockets.json",
        "capture-events.jsonl",
        "history.jsonl",
    ] {
        assert!(root.join("captured").join(f).exists(), "{f}");
    }

    // Without --capture the checker has nothing to judge: UNKNOWN, saying so.
    let (o, report) = run(&root, "uncaptured", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v = no_crossing(&report);
    assert_eq!(v["status"], "UNKNOWN");
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("run with --capture"),
        "{v:#}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
