#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_history::{read_jsonl, write_jsonl};

fuzz_target!(|data: &[u8]| {
    let Ok(history) = read_jsonl(data, "fuzz.jsonl") else {
        return;
    };
    let mut written = Vec::new();
    write_jsonl(&history, &mut written).expect("writing to memory");
    let again = read_jsonl(written.as_slice(), "round-trip").expect("a read history reads back");
    assert_eq!(again.entries.len(), history.entries.len());
});
