//! `rift cap-map` against the real systems: each row's CAP label is derived from the
//! run's history, and the test asserts both the label and the evidence behind it.
//! Needs what scripts/setup.sh installs (etcd, ...); a missing one fails the run.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cap_map(systems: &str) -> (Vec<Value>, String) {
    let dir = Scratch(std::env::temp_dir().join(format!(
        "rift-cli-cap-map-{}-{}",
        systems.replace(',', "-"),
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    let o = Command::new(env!("CARGO_BIN_EXE_rift"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["cap-map", "--json", "--systems", systems])
        .arg("--out")
        .arg(&dir.0)
        .output()
        .expect("run rift");
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{log}");
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).expect("cap-map --json");
    assert!(dir.0.join("cap-map.html").exists(), "{log}");
    (rows, log)
}

fn row<'a>(rows: &'a [Value], configuration: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["configuration"] == configuration)
        .unwrap_or_else(|| panic!("no row {configuration} in {rows:#?}"))
}

#[test]
fn the_measured_map_labels_each_system_from_its_evidence() {
    let (rows, log) = cap_map("etcd");
    let etcd = row(&rows, "etcd");
    let m = &etcd["measured"];
    let ev = &etcd["evidence"];
    assert_eq!(m["cap"], "CP", "{etcd:#}\n{log}");
    // Why CP: the isolated leader acknowledged no write, the majority did, nothing stale
    // was counted and nothing acknowledged was lost.
    assert!(
        ev["minority_writes"]["attempted"].as_u64() > Some(0),
        "{etcd:#}"
    );
    assert_eq!(ev["minority_writes"]["ok"], 0, "{etcd:#}");
    assert!(ev["majority_writes"]["ok"].as_u64() > Some(0), "{etcd:#}");
    assert_eq!(
        (m["stale_counted"].as_u64(), m["lost"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(ev["final_reads"].as_u64() > Some(0), "{etcd:#}");
    assert_eq!(
        etcd["measured_pacelc"].as_str().map(|s| &s[..2]),
        Some("PC")
    );
}
