//! A short fuzzing run on stable (proptest) of history files: mutated history.jsonl
//! text goes through `read_jsonl`; what parses must write back and read again to the
//! same history, and the linearizability checker must give a verdict (within a small
//! budget) without panicking. The long run (cargo-fuzz) is in fuzz/ and
//! docs/reliability.md. PROPTEST_CASES raises the number of cases.

use std::time::Duration;

use proptest::prelude::*;
use rift_history::linear::{Options, check};
use rift_history::{read_jsonl, write_jsonl};
use rift_proxy::harness::mutate;

const SEED: &str = r#"{"time":1,"process":1,"type":"invoke","f":"write","key":"a","value":1}
{"time":2,"process":2,"type":"invoke","f":"read","key":"a","value":null}
{"time":3,"process":2,"type":"ok","f":"read","key":"a","value":1}
{"time":4,"process":1,"type":"info","f":"write","key":"a","value":1}
{"time":5,"process":3,"type":"invoke","f":"cas","key":"b","value":[1,2]}
{"time":6,"process":3,"type":"fail","f":"cas","key":"b","value":[1,2]}
{"time":7,"invoked":7,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2"]}}
{"time":8,"started":7,"observation":"leader","node":"n1","value":"n2"}
{"time":9,"phase":"heal"}
"#;

const TOKENS: &[&str] = &[
    "\"time\":",
    "\"process\":",
    "\"type\":",
    "\"f\":",
    "\"key\":",
    "\"value\":",
    "\"invoke\"",
    "\"ok\"",
    "\"fail\"",
    "\"info\"",
    "\"read\"",
    "\"write\"",
    "\"cas\"",
    "\"nemesis\"",
    "\"phase\":",
    "\"observation\":",
    "\"invoked\":",
    "\"started\":",
    "18446744073709551615",
    "-9223372036854775808",
    "1e999",
    "null",
    "[]",
    "{}",
    "\n",
    ",",
    "\"index\":",
    "\"serializable\":true",
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn history_files(edits in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..8)) {
        let text = mutate(SEED.as_bytes(), &edits, TOKENS);
        one_history(&text)?;
    }

    #[test]
    fn raw_history_bytes(text in prop::collection::vec(any::<u8>(), 0..512)) {
        one_history(&text)?;
    }
}

fn one_history(text: &[u8]) -> Result<(), TestCaseError> {
    let Ok(history) = read_jsonl(text, "fuzz.jsonl") else {
        return Ok(());
    };
    let mut written = Vec::new();
    write_jsonl(&history, &mut written).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = read_jsonl(written.as_slice(), "round-trip")
        .map_err(|e| TestCaseError::fail(format!("a read history does not read back: {e}")))?;
    prop_assert_eq!(again.entries.len(), history.entries.len());
    let options = Options {
        budget: Duration::from_millis(200),
        threads: 1,
        ..Options::default()
    };
    let _ = check(&history, &options);
    Ok(())
}

#[test]
fn the_seed_is_a_valid_history() {
    let history = read_jsonl(SEED.as_bytes(), "seed").unwrap();
    assert_eq!(history.entries.len(), 9);
}
