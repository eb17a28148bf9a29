//! `rift lab` end to end with real etcd: `lab up` leaves a background `rift proxy` and
//! three members running, `lab status --json` reports them and their leader, the proxy
//! really cuts the leader off, a running lab is never reused, a crashed one is cleared
//! by the next `lab up`, and `lab down` stops everything and removes the state. The
//! same for a Kafka KRaft lab: brokers, the active controller, a controller isolated
//! through the background proxy losing its role.
//! Needs etcd, Java 17 and the Kafka jars (scripts/setup.sh installs them); a missing
//! component is a failure, not a skip.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

fn status(dir: &str) -> (bool, serde_json::Value) {
    let o = rift(&["lab", "status", "--json", "--state-dir", dir]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("lab status --json: {e}: {}", text(&o)));
    (o.status.success(), v)
}

fn pid_gone(pid: u64) -> bool {
    // Detached members may linger as zombies of whoever adopted them: gone either way.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn lab_up_status_isolate_crash_and_down() {
    let dir_path = std::env::temp_dir().join(format!("rift-cli-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir_path);
    let dir = dir_path.to_str().unwrap();

    let o = rift(&["lab", "up", "etcd", "--nodes", "3", "--state-dir", dir]);
    assert!(
        o.status.success(),
        "lab up failed (run scripts/setup.sh to install etcd): {}",
        text(&o)
    );
    assert!(
        text(&o).contains("rift API: http://127.0.0.1:"),
        "{}",
        text(&o)
    );

    let (ok, st) = status(dir);
    assert!(
        ok && st["healthy"] == true && st["proxy_running"] == true,
        "{st:#}"
    );
    let members = st["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["running"] == true), "{st:#}");
    let leader = st["leader"].as_str().expect("a leader").to_string();
    let api = st["api_url"].as_str().unwrap().to_string();

    // A live lab is refused, never reused.
    let o = rift(&["lab", "up", "etcd", "--state-dir", dir]);
    assert!(!o.status.success());
    assert!(text(&o).contains("already running"), "{}", text(&o));

    // The background proxy identifies the members: isolating the leader makes the
    // other two elect a new one.
    let o = rift(&["isolate", &leader, "--api", &api, "--duration", "20s"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, st) = status(dir);
        if st["leader"].as_str().is_some_and(|l| l != leader) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader after isolating {leader}: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(rift(&["heal", "--api", &api]).status.success());

    // A member dies: status reports the lab degraded; the next `lab up` clears it.
    let victim = members[0]["pid"].as_u64().unwrap();
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    let (ok, st) = status(dir);
    assert!(!ok && st["healthy"] == false, "{st:#}");
    let old_pids: Vec<u64> = members.iter().map(|m| m["pid"].as_u64().unwrap()).collect();
    let o = rift(&["lab", "up", "etcd", "--nodes", "3", "--state-dir", dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("crashed run"), "{}", text(&o));
    assert!(
        old_pids.iter().all(|p| pid_gone(*p)),
        "members of the crashed lab survived"
    );

    let (_, st) = status(dir);
    let new_pids: Vec<u64> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap())
        .collect();
    let o = rift(&["lab", "down", "--state-dir", dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!Path::new(dir).exists(), "lab down leaves {dir}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        new_pids.iter().all(|p| pid_gone(*p)),
        "lab down left members running"
    );
    let o = rift(&["lab", "down", "--state-dir", dir]);
    assert!(
        !o.status.success() && text(&o).contains("no lab"),
        "{}",
        text(&o)
    );
}

/// Stops a lab even when an assertion fails half-way, so no JVM outlives the test.
struct LabGuard<'a>(&'a str);

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        if Path::new(self.0).exists() {
            let _ = rift(&["lab", "down", "--state-dir", self.0]);
        }
    }
}

#[test]
fn scenario_attach_rejects_a_non_url_etcd_endpoint() {
    let o = rift(&[
        "scenario",
        "run",
        "profiles/scenarios/etcd-leader-isolation.toml",
        "--attach",
        "http://127.0.0.1:1",
        "--endpoint",
        "etcd1=127.0.0.1:2379",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--endpoint etcd1=127.0.0.1:2379"),
        "{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(2), "a setup error exits 2");
}

#[test]
fn kafka_lab_up_status_isolate_controller_and_down() {
    let dir_path = std::env::temp_dir().join(format!("rift-cli-lab-kafka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir_path);
    let dir = dir_path.to_str().unwrap();

    // Flags of the other system and sizes outside 3-5 are refused before anything starts.
    let o = rift(&[
        "lab",
        "up",
        "kafka",
        "--heartbeat",
        "10ms",
        "--state-dir",
        dir,
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--heartbeat does not apply to a kafka lab"),
        "{}",
        text(&o)
    );
    let o = rift(&["lab", "up", "kafka", "--nodes", "7", "--state-dir", dir]);
    assert!(
        !o.status.success() && text(&o).contains("nodes = 7"),
        "{}",
        text(&o)
    );

    let _guard = LabGuard(dir);
    let started = Instant::now();
    // A base port away from the etcd test's random 20000-29000 range.
    let o = rift(&[
        "lab",
        "up",
        "kafka",
        "--nodes",
        "3",
        "--base-port",
        "31400",
        "--state-dir",
        dir,
    ]);
    assert!(
        o.status.success(),
        "lab up kafka failed (run scripts/setup.sh to install Java 17 and the Kafka jars): {}",
        text(&o)
    );
    let out = text(&o);
    assert!(out.contains("rift API: http://127.0.0.1:"), "{out}");
    assert!(out.contains("lab up in"), "{out}");
    eprintln!("kafka lab up in {:?}", started.elapsed());

    let (ok, st) = status(dir);
    assert!(
        ok && st["system"] == "kafka" && st["healthy"] == true && st["proxy_running"] == true,
        "{st:#}"
    );
    let brokers = st["members"].as_array().unwrap();
    assert_eq!(brokers.len(), 3, "{st:#}");
    assert!(brokers.iter().all(|b| b["running"] == true), "{st:#}");
    let names: Vec<&str> = brokers
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    let controller = st["active_controller"]
        .as_str()
        .unwrap_or_else(|| panic!("no active controller: {st:#}"))
        .to_string();
    assert!(names.contains(&controller.as_str()), "{st:#}");
    let flagged: Vec<_> = brokers
        .iter()
        .filter(|b| b["active_controller"] == true)
        .collect();
    assert_eq!(flagged.len(), 1, "{st:#}");
    assert_eq!(flagged[0]["name"], controller.as_str());
    let api = st["api_url"].as_str().unwrap().to_string();

    let o = rift(&["lab", "up", "kafka", "--state-dir", dir]);
    assert!(
        !o.status.success() && text(&o).contains("already running"),
        "{}",
        text(&o)
    );

    // The background proxy knows which JVM is which broker: cutting the active
    // controller off makes the other two elect a new one.
    let o = rift(&["isolate", &controller, "--api", &api, "--duration", "30s"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = rift(&["status", "--api", &api]);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("isolate") && shown.contains(&format!("| {controller}")),
        "rift status does not show the isolation of {controller}: {shown}"
    );
    let held = shown
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .contains(&"hold")
        })
        .count();
    assert_eq!(
        held, 4,
        "expected 4 held links around {controller}: {shown}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, st) = status(dir);
        if st["active_controller"]
            .as_str()
            .is_some_and(|c| c != controller)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new controller after isolating {controller}: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = rift(&["heal", "--api", &api]);
    assert!(o.status.success(), "{}", text(&o));
    let o = rift(&["status", "--api", &api]);
    assert!(text(&o).contains("no active faults"), "{}", text(&o));

    // `scenario run --attach` needs no --endpoint for Kafka: the brokers' real
    // addresses come from the proxy's topology. The verdicts depend on timing under
    // load; that the run attached and judged is what this CLI test is about.
    let scenario = dir_path.with_extension("scenario.toml");
    std::fs::write(
        &scenario,
        "name = \"cli-attach\"\n[cluster]\nsystem = \"kafka\"\nnodes = 3\n\
         [fault]\nprofile = \"leader-isolation\"\n\
         [timeline]\nbaseline = \"1s\"\nhold = \"4s\"\nsettle = \"1s\"\n\
         [[checker]]\nkind = \"quorum-availability\"\n",
    )
    .unwrap();
    let report_dir = dir_path.with_extension("report");
    let o = rift(&[
        "scenario",
        "run",
        scenario.to_str().unwrap(),
        "--attach",
        &api,
        "--quiet",
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    let report = std::fs::read_to_string(report_dir.join("report.json"))
        .unwrap_or_else(|e| panic!("scenario --attach wrote no report ({e}): {}", text(&o)));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["cluster"]["mode"], "attach", "{report:#}");
    assert_eq!(
        report["cluster"]["brokers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        report["verdicts"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
    eprintln!("attached scenario: {}", report["status"]);
    // The history beside the report holds the fault as the attached proxy applied it.
    let history = std::fs::read_to_string(report_dir.join("history.jsonl")).unwrap();
    let start = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["process"] == "nemesis" && e["f"] == "start")
        .unwrap_or_else(|| panic!("no nemesis start in history.jsonl"));
    assert!(
        start["value"]["rules"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{start}"
    );
    let _ = std::fs::remove_file(&scenario);
    let _ = std::fs::remove_dir_all(&report_dir);
    let o = rift(&["status", "--api", &api]);
    assert!(text(&o).contains("no active faults"), "{}", text(&o));

    let pids: Vec<u64> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["pid"].as_u64().unwrap())
        .collect();
    let o = rift(&["lab", "down", "--state-dir", dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("stopped the kafka lab (4 processes)"),
        "{}",
        text(&o)
    );
    assert!(!Path::new(dir).exists(), "lab down leaves {dir}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        pids.iter().all(|p| pid_gone(*p)),
        "lab down left brokers running"
    );
}
