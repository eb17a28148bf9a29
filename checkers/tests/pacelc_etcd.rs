//! The shipped etcd PACELC scenario against real etcd behind rift: the inter-region
//! delay swept 0/5/20/50 ms one way, then the same sweep through a wan profile that
//! puts every member in one region (it adds no delay), which must FAIL saying why.
//! Needs etcd (scripts/setup.sh installs it); a missing etcd is a failure, not a skip.

use std::path::{Path, PathBuf};

use rift_checkers::pacelc::judge::Outcome;
use rift_checkers::report::Report;
use rift_checkers::scenario::Status;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};

// One cluster at a time: 2 cores do not fit two etcd clusters with 50 ms heartbeats.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shipped() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/scenarios/etcd-pacelc.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run_text(tag: &str, text: &str) -> Report {
    let scenario = Scenario::parse(text, &format!("{tag}.toml")).unwrap();
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pacelc-{tag}")),
        base_port: None,
    };
    let cluster = start_cluster(&scenario.cluster, &scenario.origin, &options)
        .await
        .unwrap_or_else(|e| {
            panic!("starting etcd failed: {e}\n(run scripts/setup.sh to install etcd)")
        });
    let report = run(&scenario, cluster.as_ref(), &RunOptions { quiet: true }).await;
    cluster.shutdown().await;
    let report = report.unwrap();
    println!("{}", report.table());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_shows_consistent_classes_paying_and_local_reads_not() {
    let _g = SERIAL.lock().await;
    let r = run_text("sweep", &shipped()).await;
    let v = r.verdicts.iter().find(|v| v.checker == "pacelc").unwrap();
    let m = v.pacelc.as_ref().unwrap();
    // No class behaved against its protocol; from 20 ms one way on, every class is
    // judged (at 5 ms a loaded machine's baseline may be too noisy to tell: UNKNOWN).
    assert_ne!(v.status, Status::Fail, "{}", r.table());
    for s in &m.steps[2..] {
        for c in &s.classes {
            assert_eq!(
                c.outcome,
                Outcome::Pass,
                "step {} {}: {}",
                s.step,
                c.class,
                c.reason
            );
        }
        assert_eq!(s.classes.len(), 6, "3 classes x leader/follower clients");
    }
    assert_eq!(
        m.steps
            .iter()
            .map(|s| s.injected_rtt_ms)
            .collect::<Vec<_>>(),
        vec![0, 10, 40, 100]
    );
    let map = rift_checkers::pacelc::judge::from_measurement(m);
    assert_eq!(map.ec, Some(true), "{}", map.reading);
    assert!(
        map.el.iter().any(|c| c.starts_with("serializable read")),
        "{}",
        map.reading
    );
    // The figures are a pure function of the history: judged again from history.jsonl.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pacelc-sweep-report");
    let files = r.write_all(&dir).unwrap();
    assert!(files.iter().any(|f| f.ends_with("pacelc.svg")));
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let history = rift_history::read_jsonl(text.as_bytes(), "history.jsonl").unwrap();
    assert_eq!(
        rift_checkers::pacelc::cap_map(&history).reading,
        map.reading
    );
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("id=\"pacelc\"") && page.contains("Resolution: latency = completion"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wan_profile_that_adds_no_delay_fails_saying_why() {
    let _g = SERIAL.lock().await;
    // Every member in one region: the rules the proxy applies delay nothing.
    let text = shipped()
        .replace(
            "name = \"etcd-pacelc\"",
            "name = \"etcd-pacelc-one-region\"",
        )
        .replace("ms\" }", "ms\", regions = \"1\" }");
    assert_eq!(text.matches("regions = \"1\"").count(), 4);
    let r = run_text("one-region", &text).await;
    let v = r.verdicts.iter().find(|v| v.checker == "pacelc").unwrap();
    assert_eq!(v.status, Status::Fail, "{}", r.table());
    assert!(v.summary.contains("did not pay the"), "{}", v.summary);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("delay 50 ms one way, injected RTT 100 ms")
                && e.contains("(the profile adds no delay)")),
        "{}",
        r.table()
    );
}
