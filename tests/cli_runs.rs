//! `rift scenario run FILE --runs N` against real etcd: N runs on fresh labs, each with
//! its own reports, then a summary (verdict counts, timing statistics with their
//! resolution) printed and written as summary.json. Needs etcd (scripts/setup.sh).

use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_runs_of_a_leader_isolation_are_summarised() {
    let dir = std::env::temp_dir().join(format!("rift-cli-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        "name = \"runs\"\n[cluster]\nsystem = \"etcd\"\nnodes = 3\n\
         [fault]\nprofile = \"leader-isolation\"\n\
         [timeline]\nbaseline = \"500ms\"\nhold = \"3s\"\nsettle = \"1s\"\n\
         [[checker]]\nkind = \"leader-step-down\"\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_rift"))
        .args([
            "scenario",
            "run",
            scenario.to_str().unwrap(),
            "--runs",
            "2",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("run rift");
    let all = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{all}\n(run scripts/setup.sh to install etcd)"
    );
    for run in ["run-01", "run-02"] {
        assert!(out.join(run).join("report.json").exists(), "{run}: {all}");
        assert!(out.join(run).join("history.jsonl").exists(), "{run}: {all}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "PASS", "{summary:#}");
    assert_eq!(summary["runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["checkers"][0]["checker"], "leader-step-down");
    assert_eq!(summary["checkers"][0]["pass"], 2, "{summary:#}");
    let timings = summary["timings"].as_array().unwrap();
    let names: Vec<&str> = timings
        .iter()
        .filter_map(|t| t["timing"].as_str())
        .collect();
    assert_eq!(names, ["elected", "stepped-down"], "{summary:#}");
    for t in timings {
        assert_eq!(t["count"], 2);
        assert!(t["min_ms"].as_u64() <= t["median_ms"].as_u64());
        assert!(t["median_ms"].as_u64() <= t["max_ms"].as_u64());
        assert!(t["resolution_ms"].as_u64().is_some_and(|r| r > 0), "{t}");
    }
    assert!(
        all.contains("leader-step-down     2     0        0"),
        "{all}"
    );
    assert!(
        all.contains("leader-step-down stepped-down: n=2 median "),
        "{all}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
