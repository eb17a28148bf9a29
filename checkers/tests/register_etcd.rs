//! The register workload and the linearizable checker against real etcd behind rift,
//! both ways, in one leader-isolation run of the shipped scenario (shortened): with
//! serializable reads left out the history is linearizable; counting them as if they
//! were linearizable FAILS, and the evidence names a stale read served by the isolated
//! member during the fault. Needs etcd (scripts/setup.sh installs it); a missing etcd
//! is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_checkers::report::Report;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};
use rift_checkers::scenario::{Status, Verdict};
use rift_history::linear::Completion;
use rift_history::{Consistency, OpType};

const MS: u64 = 1_000_000;

async fn run_shipped_with(extra: &str) -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios/etcd-register-leader-isolation.toml");
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    let mut scenario = Scenario::parse(&text, "etcd-register-leader-isolation.toml").unwrap();
    scenario.timeline.baseline = Duration::from_secs(1);
    scenario.timeline.hold = Duration::from_secs(5);
    scenario.timeline.settle = Duration::from_secs(2);
    // The isolated member's two clients spend a whole deadline on each read, write or
    // cas that cannot reach a quorum; a shorter deadline and more serializable reads
    // make it all but certain (a 0.6^16 chance of none) that they answer some
    // serializable reads during the shortened hold, which the negative check needs.
    let workload = scenario
        .workload
        .as_mut()
        .expect("the shipped file has a workload");
    workload
        .settings
        .insert("timeout".into(), toml::Value::String("500ms".into()));
    let mix: toml::Table =
        toml::from_str("read = 2\nserializable_read = 4\nwrite = 2\ncas = 2").unwrap();
    workload
        .settings
        .insert("mix".into(), toml::Value::Table(mix));
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("register-etcd"),
        base_port: None,
    };
    let cluster = start_cluster(&scenario.cluster, &scenario.origin, &options)
        .await
        .unwrap_or_else(|e| {
            panic!("starting the cluster failed: {e}\n(run scripts/setup.sh to install etcd)")
        });
    let report = run(&scenario, cluster.as_ref(), &RunOptions { quiet: true }).await;
    cluster.shutdown().await;
    let report = report.unwrap();
    println!("{}", report.table());
    report
}

fn verdict<'a>(r: &'a Report, name: &str) -> &'a Verdict {
    r.verdicts
        .iter()
        .find(|v| v.checker == name)
        .unwrap_or_else(|| panic!("no verdict {name}:\n{}", r.table()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_isolation_is_linearizable_and_stale_serializable_reads_are_not() {
    let r = run_shipped_with(
        r#"
[[checker]]
kind = "linearizable"
include_serializable = true   # wrong on purpose: the isolated member serves stale reads
"#,
    )
    .await;
    let table = r.table();
    let fault = r.fault.as_ref().expect("fault applied");
    let isolated = fault.bindings["leader"].clone();
    assert_eq!(fault.minority, vec![isolated.clone()], "{table}");
    let h = &r.history;
    let start = h.nemesis().find(|n| n.f == "start").unwrap().time;
    let stop = h.nemesis().find(|n| n.f == "stop").unwrap().invoked;

    // The workload as issue 9 records it: every invoke completed once, by the process
    // that invoked it; clients on every member, reads with their consistency.
    let pairs = h.pairs();
    assert!(pairs.len() > 200, "{} operations\n{table}", pairs.len());
    for (inv, done) in &pairs {
        let done = done.unwrap_or_else(|| panic!("never completed: {inv:?}"));
        assert_eq!(
            (done.process, &done.f, &done.key),
            (inv.process, &inv.f, &inv.key)
        );
        if inv.f == "read" {
            assert!(inv.consistency.is_some(), "{inv:?}");
        }
    }
    let during = |node: &str, f: &str, c: Option<Consistency>| {
        pairs
            .iter()
            .filter(move |(i, d)| {
                let d = d.unwrap();
                i.node.as_deref() == Some(node)
                    && i.f == f
                    && i.consistency == c
                    && i.time > start + 1_000 * MS
                    && d.time < stop
            })
            .map(|(_, d)| d.unwrap().r#type)
            .collect::<Vec<_>>()
    };
    // A second after the cut, the isolated member has stepped down: its linearizable
    // reads fail, its writes are never acknowledged, its serializable reads still answer.
    let lin = during(&isolated, "read", Some(Consistency::Linearizable));
    assert!(
        !lin.is_empty() && lin.iter().all(|t| *t == OpType::Fail),
        "{lin:?}"
    );
    let writes = during(&isolated, "write", None);
    assert!(writes.iter().all(|t| *t != OpType::Ok), "{writes:?}");
    let ser = during(&isolated, "read", Some(Consistency::Serializable));
    assert!(ser.contains(&OpType::Ok), "{ser:?}");
    let majority = fault.majority[0].clone();
    let acked = during(&majority, "write", None);
    assert!(
        acked.contains(&OpType::Ok),
        "majority writes go on: {acked:?}"
    );

    // Serializable reads left out: linearizable.
    let pass = verdict(&r, "linearizable");
    assert_eq!(pass.status, Status::Pass, "{table}");
    let report = pass.linearizability.as_ref().unwrap();
    assert!(report.counts.serializable_reads > 0, "{:?}", report.counts);
    assert!(report.counts.checked > 100, "{:?}", report.counts);
    assert!(
        pass.evidence
            .iter()
            .any(|e| e.contains("acknowledged while a fault was in place")),
        "{table}"
    );

    // Counted as linearizable: FAIL, and for some key the operation no order explains
    // is a serializable read the isolated member answered during the fault, returning a
    // value other than what the register held after the longest partial linearization.
    let fail = verdict(&r, "linearizable (serializable reads included)");
    assert_eq!(fail.status, Status::Fail, "{table}");
    assert!(
        fail.summary.starts_with("not linearizable: key \""),
        "{}",
        fail.summary
    );
    let report = fail.linearizability.as_ref().unwrap();
    assert_eq!(report.counts.serializable_reads, 0);
    let stale: Vec<_> = report
        .failures()
        .filter_map(|k| {
            let f = k.failure.as_ref().unwrap();
            let entry = match &h.entries[f.stuck.entry] {
                rift_history::Entry::Op(op) => op,
                other => panic!("stuck is not an op: {other:?}"),
            };
            (f.stuck.node.as_deref() == Some(isolated.as_str())
                && entry.consistency == Some(Consistency::Serializable)
                && f.stuck.completion == Completion::Ok
                && f.stuck.call > start
                && f.stuck.call < stop)
                .then_some((k, f))
        })
        .collect();
    assert!(
        !stale.is_empty(),
        "no failing key is stuck on a serializable read of {isolated} during the fault\n{table}"
    );
    for (key, f) in stale {
        assert!(fail.summary.contains("not linearizable") && !key.key.is_empty());
        // Around the failure point: the prefix, and the stale read among the
        // operations that could not come next, with why.
        assert!(!f.linearized.is_empty());
        let why = f
            .candidates
            .iter()
            .find(|c| c.op.entry == f.stuck.entry)
            .unwrap_or_else(|| panic!("the stuck read is a candidate: {f:?}"));
        assert!(
            why.reason.contains("but the register holds"),
            "{}",
            why.reason
        );
        assert!(
            !f.stuck
                .describe
                .ends_with(&format!("→ {}", rift_history::linear::show_value(f.state)))
        );
        assert!(
            fail.evidence
                .iter()
                .any(|e| e.contains(&format!("key {:?}: FAIL", key.key))),
            "{table}"
        );
    }
    // Both checkers see one run: the overall verdict is FAIL.
    assert_eq!(r.status, Status::Fail);

    assert_report_page(&r, pairs.len());
}

/// report.html in a real browser (Debian's chromium, headless): the page's script ran
/// without a console message and drew every operation, the one fault window, the
/// failing linearizability evidence and one row per verdict.
fn assert_report_page(r: &Report, ops: usize) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("register-etcd-report");
    let _ = std::fs::remove_dir_all(&dir);
    r.write_all(&dir).unwrap();
    let page = dir.join("report.html");
    let browser = std::env::var("RIFT_CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let output = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {browser} ({e}): scripts/setup.sh installs it (60-browser.sh)")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{browser} failed: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let dom = String::from_utf8_lossy(&output.stdout);
    let summary = &dom[dom.find("id=\"summary\"").expect("summary element")..];
    let summary = &summary[..summary.find('>').unwrap()];
    let attr = |name: &str| {
        let key = format!("{name}=\"");
        let at = summary
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {summary}"))
            + key.len();
        summary[at..at + summary[at..].find('"').unwrap()].to_string()
    };
    assert_eq!(attr("data-ops"), ops.to_string(), "{summary}");
    assert_eq!(attr("data-drawn-ops"), ops.to_string(), "{summary}");
    assert_eq!(attr("data-faults"), "1", "{summary}");
    assert_eq!(attr("data-errors"), "0", "{summary}");
    assert_eq!(attr("data-verdict"), "FAIL", "{summary}");
    assert_eq!(attr("data-members"), "3", "{summary}");
    assert_eq!(
        dom.matches("<tr class=\"verdict\"").count(),
        r.verdicts.len(),
        "one row per verdict"
    );
    // The evidence view drew the stuck operation (its table row) for the failing key.
    assert!(
        dom.contains("class=\"clickable stuck\""),
        "no stuck operation drawn"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
