//! Every shipped scenario file parses, names a known system, profile and checkers, and
//! its etcd cluster settings are valid. No cluster is started here.

use std::path::Path;

use rift_checkers::etcd::system::{CHECKERS, EtcdSettings};
use rift_checkers::scenario::spec::Scenario;
use rift_proxy::profile::ProfileLibrary;

#[test]
fn shipped_etcd_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/scenarios");
    let library = ProfileLibrary::builtin();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("etcd-") || !name.ends_with(".toml") {
            continue;
        }
        let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            format!("{}.toml", s.name),
            name,
            "scenario name matches its file"
        );
        assert_eq!(s.cluster.system, "etcd");
        let _: EtcdSettings = s.cluster.parse(&s.origin).unwrap();
        for p in s.profiles() {
            library.get(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for c in &s.checkers {
            assert!(
                CHECKERS.contains(&c.kind.as_str())
                    || rift_checkers::scenario::ANY_SYSTEM_CHECKERS.contains(&c.kind.as_str()),
                "{name}: unknown checker {}",
                c.kind
            );
        }
        seen.push(s.name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "etcd-bridge",
            "etcd-generator",
            "etcd-leader-isolation",
            "etcd-minority-isolation",
            "etcd-pacelc",
            "etcd-partial-partition",
            "etcd-partial-partition-no-prevote",
            "etcd-register-leader-isolation",
            "etcd-two-vs-two"
        ]
    );
}

#[test]
fn a_typo_in_a_checker_setting_names_file_checker_and_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/scenarios");
    let text = std::fs::read_to_string(dir.join("etcd-leader-isolation.toml"))
        .unwrap()
        // A setting with a typo, added to the shipped file's step-down checker.
        .replace(
            "kind = \"leader-step-down\"",
            "kind = \"leader-step-down\"\nwithn = \"3s\"",
        );
    let s = Scenario::parse(&text, "etcd-leader-isolation.toml").unwrap();
    let c = s
        .checkers
        .iter()
        .find(|c| c.kind == "leader-step-down")
        .unwrap();
    let e = c
        .parse::<rift_checkers::etcd::checks::step_down::StepDownConfig>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("etcd-leader-isolation.toml: [[checker]] #1 (leader-step-down)")
            && e.contains("withn"),
        "{e}"
    );
}

/// The MariaDB scenarios and cap-map experiments parse, name known checkers, profiles
/// and actions, and the cap-map ones keep their contract: the primary isolated for at
/// least 6 s after a baseline of at least 2 s, a promote during the fault, a settle of
/// at least 4 s, the register workload with a client on every member.
#[test]
fn shipped_mariadb_scenarios_and_cap_map_experiments_are_valid() {
    use rift_checkers::mariadb::system::{ACTIONS, CHECKERS, MariaSettings};
    use std::time::Duration;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    let library = ProfileLibrary::builtin();
    let files = [
        "scenarios/mariadb-semisync-primary-isolation.toml",
        "scenarios/mariadb-async-failover.toml",
        "cap-map/mariadb-semisync.toml",
        "cap-map/mariadb-async.toml",
    ];
    for file in files {
        let s = Scenario::load(&root.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert!(file.ends_with(&format!("/{}.toml", s.name)), "{file}");
        assert_eq!(s.cluster.system, "mariadb");
        let _: MariaSettings = s.cluster.parse(&s.origin).unwrap();
        for p in s.profiles() {
            library.get(&p).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        for c in &s.checkers {
            assert!(CHECKERS.contains(&c.kind.as_str()), "{file}: {}", c.kind);
        }
        for a in &s.actions {
            assert!(ACTIONS.contains(&a.name.as_str()), "{file}: {}", a.name);
            assert!(
                a.at < s.timeline.hold,
                "{file}: the action comes during the fault"
            );
        }
        let w = s.workload.as_ref().expect("a workload");
        assert_eq!(w.kind, "register");
        if file.starts_with("cap-map/") {
            assert!(s.timeline.baseline >= Duration::from_secs(2), "{file}");
            assert!(s.timeline.hold >= Duration::from_secs(6), "{file}");
            assert!(s.timeline.settle >= Duration::from_secs(4), "{file}");
            assert_eq!(s.actions.len(), 1, "{file}: one promote");
            assert_eq!(s.fault.profile.as_deref(), Some("leader-isolation"));
            assert!(
                s.checkers.iter().any(|c| c.kind == "no-lost-writes"),
                "{file}"
            );
        }
    }
}
