//! The shipped Cassandra scenarios against a real Cassandra 5.0 cluster of 3 nodes
//! behind rift, started once for the whole binary (a start costs ~20 s of a 2-core
//! machine): every verdict is asserted with its evidence. Needs Java 17 and the
//! Cassandra jars (scripts/setup.sh, scripts/setup.d/36-cassandra.sh); a missing one is
//! a failure naming it, never a skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_checkers::capmap::{CountedReads, Select, classify, evidence};
use rift_checkers::report::Report;
use rift_checkers::scenario::runner::{RunOptions, run};
use rift_checkers::scenario::spec::Scenario;
use rift_checkers::scenario::system::{StartOptions, start_cluster};
use rift_checkers::scenario::{Cluster, Status, Verdict};
use rift_history::OpType;

fn scenario(file: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/scenarios")
        .join(file);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run_on(cluster: &dyn Cluster, s: &Scenario) -> Report {
    let report = run(s, cluster, &RunOptions { quiet: true })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
    println!("{}", report.table());
    for v in &report.verdicts {
        println!("--- {} {:?}: {}", v.checker, v.status, v.summary);
        for e in &v.evidence {
            println!("    {e}");
        }
    }
    report
}

fn verdict<'a>(r: &'a Report, name: &str) -> &'a Verdict {
    r.verdicts
        .iter()
        .find(|v| v.checker == name)
        .unwrap_or_else(|| panic!("no verdict {name}:\n{}", r.table()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_scenarios_on_one_cluster() {
    let minority = scenario("cassandra-minority-isolation.toml");
    let options = StartOptions {
        state_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cassandra-scenarios"),
        base_port: None,
    };
    let _ = std::fs::remove_dir_all(&options.state_dir);
    let started = std::time::Instant::now();
    let cluster = start_cluster(&minority.cluster, &minority.origin, &options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "starting the Cassandra lab failed: {e}\n(scripts/setup.sh installs Java 17 \
                 and the Cassandra jars)"
            )
        });
    println!(
        "cassandra lab up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let r = run_on(cluster.as_ref(), &minority).await;
    let fault = r.fault.as_ref().expect("the fault was applied");
    assert_eq!(fault.minority, vec!["cass3".to_string()], "{fault:?}");

    let one = verdict(&r, "one-availability");
    assert_eq!(one.status, Status::Pass, "{one:#?}");
    assert!(
        one.evidence
            .iter()
            .any(|e| e.contains("minority cass3: ONE writes") && !e.contains("writes 0/")),
        "{one:#?}"
    );

    let quorum = verdict(&r, "quorum-refusal");
    assert_eq!(quorum.status, Status::Pass, "{quorum:#?}");
    assert!(
        quorum
            .evidence
            .iter()
            .any(|e| e.contains("QUORUM operations refused (")),
        "{quorum:#?}"
    );

    assert!(
        quorum
            .evidence
            .iter()
            .any(|e| e.contains("LWT operations refused (")),
        "{quorum:#?}"
    );

    let lost = verdict(&r, "no-lost-writes");
    assert_eq!(lost.status, Status::Pass, "{lost:#?}");

    let lin = verdict(&r, "linearizable (lwt/ keys)");
    assert_eq!(lin.status, Status::Pass, "{lin:#?}");

    // What `rift cap-map` reads from this history for the ONE and QUORUM rows.
    for segment in ["one", "quorum", "lwt"] {
        let ev = evidence(&r.history, Select::KeySegment(segment));
        let c = classify(&ev, CountedReads::Strongest);
        println!("cap-map {segment}: {c:?}\n  {ev:?}");
    }

    // Every final read answered, through every node.
    let finals = r
        .history
        .ops()
        .filter(|o| o.f == "read" && o.r#type == OpType::Ok)
        .filter(|o| r.phase_at("final").is_some_and(|f| o.time / 1_000_000 >= f))
        .count();
    assert!(
        finals >= 18,
        "{finals} final reads answered (3 nodes x 6 keys)"
    );

    tokio::time::timeout(Duration::from_secs(30), cluster.shutdown())
        .await
        .expect("shutdown within 30 s");
}
