//! Runs the built rift-bench binary end to end against the direct connection only (no
//! proxy needs to be installed) and checks that the report files are complete.

use std::process::Command;

#[test]
fn quick_run_against_direct_writes_markdown_and_json() {
    let out = std::env::temp_dir().join(format!("rift-bench-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_rift-bench"))
        .args(["--quick", "--targets", "direct", "--out"])
        .arg(&out)
        .status()
        .expect("running rift-bench");
    assert!(status.success(), "rift-bench exited with {status}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(
        json["mode"].as_str().unwrap().starts_with("quick"),
        "{}",
        json["mode"]
    );
    assert_eq!(json["targets"][0]["target"], "direct");
    let workloads: Vec<&str> = json["latency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert!(
        workloads.contains(&"ping-pong 64 B") && workloads.contains(&"connect + first echoed byte"),
        "{workloads:?}"
    );
    for row in json["latency"].as_array().unwrap() {
        assert_eq!(row["result"]["status"], "ok", "{row}");
        assert!(row["result"]["samples"].as_u64().unwrap() > 0);
    }
    assert!(json["throughput"][0]["rounds_mib_s"][0].as_f64().unwrap() > 0.0);
    // Without rift, the partition workload and rift's targets are reported, not invented.
    assert_eq!(json["partition"]["status"], "skipped");
    assert!(
        json["goals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["met"].is_null())
    );

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## ping-pong 64 B") && md.contains("| direct |"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_target_that_fails_to_start_fails_the_run() {
    let status = Command::new(env!("CARGO_BIN_EXE_rift-bench"))
        .args([
            "--quick",
            "--targets",
            "direct,haproxy",
            "--haproxy-bin",
            "/bin/false",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running rift-bench");
    assert_eq!(status.code(), Some(1));
}
