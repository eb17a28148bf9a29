//! A short fuzzing run on stable (proptest) of scenario files: every shipped scenario,
//! mutated, goes through `Scenario::parse`, which must answer with a scenario or an
//! error, never a panic. The long run (cargo-fuzz) is in fuzz/ and docs/reliability.md.
//! PROPTEST_CASES raises the number of cases.

use proptest::prelude::*;
use rift_checkers::scenario::spec::Scenario;
use rift_proxy::harness::mutate;

const SEEDS: &[&str] = &[
    include_str!("../../profiles/scenarios/etcd-bridge.toml"),
    include_str!("../../profiles/scenarios/etcd-leader-isolation.toml"),
    include_str!("../../profiles/scenarios/etcd-partial-partition.toml"),
    include_str!("../../profiles/scenarios/etcd-two-vs-two.toml"),
    include_str!("../../profiles/scenarios/kafka-follower-isolation.toml"),
    include_str!("../../profiles/scenarios/kafka-leader-isolation.toml"),
    include_str!("../../profiles/scenarios/kafka-two-vs-two.toml"),
];

const TOKENS: &[&str] = &[
    "[cluster]",
    "[fault]",
    "[timeline]",
    "[workload]",
    "[[checker]]",
    "name = ",
    "kind = ",
    "system = ",
    "nodes = ",
    "profile = ",
    "baseline = ",
    "hold = ",
    "settle = ",
    "duration = ",
    "\"etcd\"",
    "\"kafka\"",
    "\"1s\"",
    "\"18446744073709551615s\"",
    "\"0s\"",
    "0",
    "-1",
    "65",
    "9223372036854775807",
    "inf",
    "nan",
    "[]",
    "{}",
    "\n",
    "=",
    "\"",
    "'''",
    "\"leader-stability\"",
    "\"no-lost-writes\"",
    "set = ",
    "{ leader = \"leader\" }",
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn scenario_files(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..8),
    ) {
        let text = mutate(SEEDS[seed].as_bytes(), &edits, TOKENS);
        let _ = Scenario::parse(&String::from_utf8_lossy(&text), "fuzz.toml");
    }
}

#[test]
fn the_seeds_are_valid_scenarios() {
    for seed in SEEDS {
        Scenario::parse(seed, "seed").unwrap();
    }
}
