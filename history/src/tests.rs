use std::time::Instant;

use serde_json::json;

use super::*;

fn sample() -> History {
    let recorder = Recorder::new(Instant::now());
    recorder.record(Entry::Phase(PhaseMark {
        index: 0,
        time: 1,
        phase: "baseline".into(),
    }));
    let read = Op::invoke(10, 3, "read", Some("k1"), json!(null))
        .with_node("etcd1")
        .with_consistency(Consistency::Serializable);
    recorder.record(Entry::Op(read.clone()));
    recorder.record(Entry::Nemesis(NemesisOp::new(
        11,
        12,
        "start",
        json!({"id": 1, "rules": [{"src": "etcd1", "dst": "etcd2", "state": "hold"}]}),
    )));
    recorder.record(Entry::Op(read.complete(20, OpType::Ok, json!(7))));
    recorder.record(Entry::Observation(Observation {
        index: 0,
        time: 30,
        started: 25,
        observation: "etcd-status".into(),
        node: "etcd2".into(),
        value: json!({"leader": "etcd2", "term": 3}),
        error: None,
    }));
    recorder.snapshot()
}

#[test]
fn round_trips_through_jsonl_with_indices_in_order() {
    let history = sample();
    let mut text = Vec::new();
    write_jsonl(&history, &mut text).unwrap();
    let back = read_jsonl(text.as_slice(), "mem").unwrap();
    assert_eq!(back, history);
    let indices: Vec<usize> = back.entries.iter().map(Entry::index).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4]);
}

#[test]
fn client_ops_use_exactly_the_documented_fields() {
    let history = sample();
    let Entry::Op(op) = &history.entries[3] else {
        panic!("entry 3 is the read's completion");
    };
    let line = serde_json::to_value(op).unwrap();
    let mut fields: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "consistency",
            "f",
            "index",
            "key",
            "node",
            "process",
            "time",
            "type",
            "value"
        ]
    );
    assert_eq!(line["type"], "ok");
    assert_eq!(line["value"], 7);
    let nemesis = serde_json::to_value(&history.entries[2]).unwrap();
    assert_eq!(nemesis["process"], "nemesis");
    assert_eq!(nemesis["type"], "info");
}

#[test]
fn pairs_match_completions_to_their_invocations_by_process() {
    let text = r#"{"time":1,"process":1,"type":"invoke","f":"write","key":"a","value":1}
{"time":2,"process":2,"type":"invoke","f":"read","key":"a","value":null}
{"time":3,"process":2,"type":"ok","f":"read","key":"a","value":1}
{"time":4,"process":1,"type":"info","f":"write","key":"a","value":1}
{"time":5,"process":3,"type":"invoke","f":"write","key":5,"value":2}
"#;
    let history = read_jsonl(text.as_bytes(), "mem").unwrap();
    let pairs = history.pairs();
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[0].1.unwrap().r#type, OpType::Info);
    assert_eq!(pairs[1].1.unwrap().value, json!(1));
    assert!(pairs[2].1.is_none(), "an open invocation has no completion");
    assert_eq!(
        pairs[2].0.key.as_deref(),
        Some("5"),
        "integer keys read as text"
    );
}

#[test]
fn bad_lines_are_named_with_their_line_and_field() {
    let cases = [
        ("{\"time\":1}\n", "no `process`"),
        ("[1,2]\n", "expected a JSON object"),
        ("{not json\n", "not JSON"),
        (
            "{\"time\":1,\"process\":1,\"type\":\"done\",\"f\":\"read\"}\n",
            "unknown variant `done`",
        ),
        (
            "{\"time\":1,\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"colour\":1}\n",
            "unknown field `colour`",
        ),
        (
            "{\"time\":-4,\"process\":1,\"type\":\"ok\",\"f\":\"read\"}\n",
            "client operation",
        ),
    ];
    for (text, expected) in cases {
        let padded = format!("\n{text}");
        let err = read_jsonl(padded.as_bytes(), "h.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("h.jsonl:2: "), "{err}");
        assert!(err.contains(expected), "{text:?} gave {err}");
    }
}

#[test]
fn a_poisoned_recorder_keeps_recording() {
    let recorder = Recorder::new(Instant::now());
    let clone = recorder.clone();
    let _ = std::thread::spawn(move || {
        let _guard = clone.entries.lock().unwrap();
        panic!("poison the lock");
    })
    .join();
    recorder.record(Entry::Phase(PhaseMark {
        index: 0,
        time: recorder.now(),
        phase: "final".into(),
    }));
    assert_eq!(recorder.snapshot().entries.len(), 1);
}

#[test]
fn fresh_processes_are_unique_across_clones() {
    let recorder = Recorder::new(Instant::now());
    let clone = recorder.clone();
    let ids = [
        recorder.fresh_process(),
        clone.fresh_process(),
        recorder.fresh_process(),
    ];
    assert_eq!(ids, [0, 1, 2]);
}
