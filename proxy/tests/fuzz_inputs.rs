//! A short fuzzing run on stable (proptest): every control API body and query string,
//! topology files and profile files, generated from the fields the parsers know and
//! from mutated valid files, go through the real parsers and the in-process API. No
//! input may panic, answer 5xx, or leave the control plane unusable. The long runs
//! (cargo-fuzz, millions of cases) are in fuzz/ and docs/reliability.md.
//! PROPTEST_CASES raises the number of cases per property.

use proptest::prelude::*;
use rift_proxy::harness::{ApiHarness, TOPOLOGY, mutate, topology_text};
use rift_proxy::profile::Bindings;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/partition"),
    ("POST", "/isolate"),
    ("POST", "/faults"),
    ("POST", "/apply"),
    ("POST", "/sources"),
    ("POST", "/heal"),
    ("GET", "/status"),
    ("GET", "/links"),
    ("GET", "/topology"),
    ("GET", "/profiles"),
    ("GET", "/events"),
    ("DELETE", "/faults/1"),
];

/// Valid bodies, one per route shape, to mutate from.
const BODY_SEEDS: &[&str] = &[
    r#"{"groups":[["n1"],["n2","n3"]],"fault":{"kind":"hold"},"endpoints":["peer"],"duration":"10s"}"#,
    r#"{"node":"n1","fault":{"kind":"reset"},"duration":"500ms"}"#,
    r#"{"label":"x","rules":[{"from":"n1","to":"n2","fault":{"kind":"degrade","latency_ms":5,"jitter_ms":1,"bandwidth_bytes_per_sec":10000,"slow_close_ms":3,"limit_data_bytes":100},"endpoints":["client"]}],"duration":"1m"}"#,
    r#"{"profile":"leader-isolation","bindings":{"leader":"n2"},"duration":"2s"}"#,
    r#"{"profile_toml":"description = \"p\"\nkind = \"one-way\"\ndirection = \"inbound\"\n","profile_name":"p","bindings":{"target":"n3"}}"#,
    r#"{"node":"n2","pids":[1,4294967295],"ips":["127.0.0.2","::1"]}"#,
];

const JSON_TOKENS: &[&str] = &[
    "\"groups\"",
    "\"node\"",
    "\"fault\"",
    "\"kind\"",
    "\"hold\"",
    "\"reset\"",
    "\"blackhole\"",
    "\"degrade\"",
    "\"rules\"",
    "\"from\"",
    "\"to\"",
    "\"endpoints\"",
    "\"duration\"",
    "\"profile\"",
    "\"profile_toml\"",
    "\"bindings\"",
    "\"pids\"",
    "\"ips\"",
    "\"client\"",
    "\"n1\"",
    "\"n3\"",
    "\"nx\"",
    "\"0s\"",
    "\"18446744073709551615s\"",
    "\"1ns\"",
    "18446744073709551615",
    "-1",
    "1e308",
    "null",
    "true",
    "[]",
    "{}",
    "[[]]",
    ",",
    ":",
    "\"",
    "\\u0000",
    "\"latency_ms\"",
    "\"jitter_ms\"",
    "\"bandwidth_bytes_per_sec\"",
    "\"label\"",
];

const TOML_TOKENS: &[&str] = &[
    "[[node]]",
    "[[node.endpoint]]",
    "[api]",
    "name = ",
    "listen = ",
    "upstream = ",
    "source_ips = ",
    "source_pids = ",
    "kind = ",
    "groups = ",
    "target = ",
    "seed = ",
    "fault = ",
    "endpoints = ",
    "direction = ",
    "\"n1\"",
    "\"0.0.0.0:0\"",
    "\"[::1]:65536\"",
    "\"hold\"",
    "\"reset\"",
    "\"split\"",
    "\"bridge\"",
    "\"random-halves\"",
    "\"one-way\"",
    "\"flaky\"",
    "\"leader\"",
    "[]",
    "[[]]",
    "{}",
    "\n",
    "=",
    "\"",
    "'''",
    "9223372036854775807",
    "-1",
    "inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "latency_ms = ",
    "jitter_ms = ",
    "bandwidth_kbps = ",
    "majority = ",
    "minority = ",
    "[[rule]]",
    "from = ",
    "to = ",
];

fn edits() -> impl Strategy<Value = Vec<(u8, u32, u32)>> {
    prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..8)
}

fn api() -> &'static ApiHarness {
    // One harness per test binary thread is enough: every case heals after itself.
    thread_local! {
        static API: &'static ApiHarness = Box::leak(Box::new(ApiHarness::new()));
    }
    API.with(|a| *a)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn api_bodies(route in 0..ROUTES.len(), seed in 0..BODY_SEEDS.len(), edits in edits()) {
        let (method, path) = ROUTES[route];
        let body = mutate(BODY_SEEDS[seed].as_bytes(), &edits, JSON_TOKENS);
        let api = api();
        let result = api.request(method, path, &body);
        api.heal();
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn api_raw_bodies(route in 0..ROUTES.len(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let (method, path) = ROUTES[route];
        let api = api();
        let result = api.request(method, path, &body);
        api.heal();
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn api_query_strings_and_paths(
        tail in "[a-z/?&=%0-9._~-]{0,24}",
        after in prop_oneof![Just("after".to_string()), "[a-z_]{0,6}"],
        value in prop_oneof![any::<i128>().prop_map(|v| v.to_string()), "[ -~]{0,12}"],
        id in prop_oneof![any::<u64>().prop_map(|v| v.to_string()), "[ -~]{0,22}"],
    ) {
        let api = api();
        let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
        for (method, uri) in [
            ("GET", format!("/events?{after}={encoded}")),
            ("GET", format!("/events?{tail}")),
            ("DELETE", format!("/faults/{id}")),
            ("DELETE", format!("/faults/{tail}")),
            ("GET", format!("/{tail}")),
            ("POST", format!("/{tail}")),
        ] {
            let result = api.request(method, &uri, b"");
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
        api.heal();
    }

    #[test]
    fn topology_files(edits in edits()) {
        let text = mutate(TOPOLOGY.as_bytes(), &edits, TOML_TOKENS);
        let result = topology_text(&String::from_utf8_lossy(&text));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn profile_files(
        seed in 0..PROFILE_SEEDS.len(),
        edits in edits(),
        leader in prop_oneof![Just("n1"), Just("n3"), Just("nobody"), Just("")],
    ) {
        let text = mutate(PROFILE_SEEDS[seed].as_bytes(), &edits, TOML_TOKENS);
        let bindings: Bindings = [("leader".to_string(), leader.to_string()), ("target".to_string(), leader.to_string())].into_iter().collect();
        let result = api().profile_text(&String::from_utf8_lossy(&text), &bindings);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

const PROFILE_SEEDS: &[&str] = &[
    include_str!("../../profiles/split.toml"),
    include_str!("../../profiles/bridge.toml"),
    include_str!("../../profiles/flaky.toml"),
    include_str!("../../profiles/leader-isolation.toml"),
    include_str!("../../profiles/majorities-ring.toml"),
    include_str!("../../profiles/minority-isolation.toml"),
    include_str!("../../profiles/one-way.toml"),
    include_str!("../../profiles/random-halves.toml"),
    include_str!("../../profiles/two-vs-two.toml"),
];

/// The seeds themselves are valid: mutations start from real files, not from noise.
#[test]
fn seeds_are_valid() {
    let api = ApiHarness::new();
    for (i, body) in BODY_SEEDS.iter().enumerate() {
        let (method, path) = [
            ("POST", "/partition"),
            ("POST", "/isolate"),
            ("POST", "/faults"),
            ("POST", "/apply"),
            ("POST", "/apply"),
            ("POST", "/sources"),
        ][i];
        let status = api.request(method, path, body.as_bytes()).unwrap();
        assert!(
            matches!(status, Some(200 | 201)),
            "{path} {body}: {status:?}"
        );
        api.heal();
    }
    for text in PROFILE_SEEDS {
        rift_proxy::profile::Profile::parse(text, "seed", "seed.toml").unwrap();
    }
}
