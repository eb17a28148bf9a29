//! `rift capture` end to end on a real etcd lab: a recording made while the lab's
//! links are cut and healed is read back by `tcpdump -r`, and `rift capture check`
//! judges it from the wire alone — a full hold passes, a reset shows its RSTs, and a
//! fault that cut the wrong endpoint fails with the bytes that crossed. Without
//! CAP_NET_RAW the record command names the capability and how to grant it.
//! Needs etcd and tcpdump (scripts/setup.sh installs them); missing is a failure.

use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

fn rift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rift"))
        .args(args)
        .output()
        .expect("run rift")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Brings the lab down and then removes the test's directory, whether the test passed
/// or panicked. The lab's state (lab.json, pid files) lives under the directory, so it
/// must be gone only after `lab down` has read it, or the proxy and members outlive
/// the test.
struct Lab {
    root: std::path::PathBuf,
    state: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = rift(&["lab", "down", "--state-dir", &self.state]);
        if !o.status.success() && std::path::Path::new(&self.state).join("lab.json").exists() {
            eprintln!("lab down failed: {}", text(&o));
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn check(dir: &str, scope: &str) -> serde_json::Value {
    let o = rift(&["capture", "check", dir, "--scope", scope, "--json"]);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("capture check --json: {e}: {}", text(&o)))
}

fn links_of(verdict: &serde_json::Value, fault_id: u64) -> Vec<&serde_json::Value> {
    verdict["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["fault_id"] == fault_id)
        .collect()
}

#[test]
fn capture_record_and_check_on_a_real_etcd_lab() {
    let root = std::env::temp_dir().join(format!("rift-cli-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let state = root.join("lab").to_str().unwrap().to_string();
    let out = root.join("capture").to_str().unwrap().to_string();
    // Armed before `lab up`, so a start that fails half-way is also stopped.
    let _lab = Lab {
        root: root.clone(),
        state: state.clone(),
    };
    let o = rift(&["lab", "up", "etcd", "--nodes", "3", "--state-dir", &state]);
    assert!(
        o.status.success(),
        "lab up failed (run scripts/setup.sh): {}",
        text(&o)
    );
    let o = rift(&["lab", "status", "--json", "--state-dir", &state]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let api = status["api_url"].as_str().unwrap().to_string();

    // Without CAP_NET_RAW: a clear error, nothing captured.
    let o = Command::new("setpriv")
        .args(["--bounding-set", "-net_raw", "--inh-caps", "-net_raw"])
        .arg(env!("CARGO_BIN_EXE_rift"))
        .args([
            "capture",
            "record",
            "--api",
            &api,
            "--out",
            &format!("{out}-denied"),
            "--duration",
            "1s",
        ])
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(!o.status.success());
    let error = text(&o);
    assert!(
        error.contains("CAP_NET_RAW") && error.contains("setcap cap_net_raw+ep"),
        "{error}"
    );
    assert!(!root.join("capture-denied").join("capture.pcap").exists());

    let recorder = Command::new(env!("CARGO_BIN_EXE_rift"))
        .args([
            "capture",
            "record",
            "--api",
            &api,
            "--out",
            &out,
            "--duration",
            "13s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_secs(2));
    // Fault 1: etcd1 held off from everyone, on every endpoint.
    let o = rift(&["isolate", "etcd1", "--api", &api]);
    assert!(o.status.success(), "{}", text(&o));
    sleep(Duration::from_secs(3));
    assert!(rift(&["heal", "--api", &api]).status.success());
    sleep(Duration::from_secs(2));
    // Fault 2: meant to isolate etcd1, but it cuts only the `client` endpoint.
    let o = rift(&["isolate", "etcd1", "--endpoint", "client", "--api", &api]);
    assert!(o.status.success(), "{}", text(&o));
    sleep(Duration::from_secs(2));
    assert!(rift(&["heal", "--api", &api]).status.success());
    sleep(Duration::from_secs(1));
    // Fault 3: etcd1 reset off from everyone.
    let o = rift(&["isolate", "etcd1", "--fault", "reset", "--api", &api]);
    assert!(o.status.success(), "{}", text(&o));
    sleep(Duration::from_millis(1500));
    assert!(rift(&["heal", "--api", &api]).status.success());
    let o = recorder.wait_with_output().unwrap();
    assert!(o.status.success(), "capture record: {}", text(&o));
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(stats["frames_written"].as_u64().unwrap() > 100, "{stats}");

    // tcpdump reads the file: classic pcap, Ethernet, TCP on the lab's ports.
    let pcap = format!("{out}/capture.pcap");
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(
        &bytes[0..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "classic pcap magic a1b2c3d4"
    );
    let o = Command::new("tcpdump")
        .args(["-nr", &pcap])
        .output()
        .expect("tcpdump is installed (scripts/setup.d/60-capture.sh)");
    assert!(o.status.success(), "tcpdump -r: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("link-type EN10MB"),
        "{}",
        text(&o)
    );
    let lines = String::from_utf8_lossy(&o.stdout).lines().count() as u64;
    assert_eq!(
        lines,
        stats["frames_written"].as_u64().unwrap(),
        "tcpdump sees every frame"
    );

    // By the rules as applied: fault 1 held everything, fault 3 reset with RSTs seen.
    let verdict = check(&out, "rule");
    let held = links_of(&verdict, 1);
    assert_eq!(held.len(), 4, "{verdict:#}");
    for link in &held {
        assert_eq!(link["status"], "PASS", "{link:#}");
        assert_eq!(link["crossed"]["bytes"], 0, "{link:#}");
        assert!(link["outside"]["bytes"].as_u64().unwrap() > 0, "{link:#}");
    }
    let reset = links_of(&verdict, 3);
    assert_eq!(reset.len(), 4);
    assert!(
        reset.iter().all(|l| l["crossed"]["bytes"] == 0),
        "{verdict:#}"
    );
    assert!(
        reset.iter().any(|l| l["resets"].as_u64().unwrap() > 0),
        "{verdict:#}"
    );

    // Judged as a cut of the whole pair, fault 2 lets raft traffic through on `peer`.
    let verdict = check(&out, "pair");
    assert_eq!(verdict["status"], "FAIL", "{verdict:#}");
    let wrong = links_of(&verdict, 2);
    assert_eq!(wrong.len(), 4);
    let crossed: Vec<_> = wrong.iter().filter(|l| l["status"] == "FAIL").collect();
    assert!(!crossed.is_empty(), "{verdict:#}");
    for link in crossed {
        assert!(link["crossed"]["bytes"].as_u64().unwrap() > 0);
        let first = link["crossed"]["first_unix_us"].as_u64().unwrap();
        assert!(first >= link["window_start_unix_us"].as_u64().unwrap());
        assert!(first <= link["window_end_unix_us"].as_u64().unwrap());
        let via = link["crossed"]["connections"].to_string();
        assert!(via.contains("(peer)"), "{via}");
        let reason = link["reason"].as_str().unwrap();
        assert!(
            reason.contains("payload bytes") && reason.contains("etcd1"),
            "{reason}"
        );
    }
    assert!(
        links_of(&verdict, 1).iter().all(|l| l["status"] == "PASS"),
        "{verdict:#}"
    );
}
