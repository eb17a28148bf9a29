//! The log checker on hand-built histories: a clean log passes; each defect fails
//! naming the partition, offset and record; missing evidence is UNKNOWN.

use rift_history::{Entry, NemesisOp, Op};
use serde_json::{Value, json};

use super::*;
use crate::scenario::Status;

const MS: u64 = 1_000_000;
const KEY: &str = "t/0";

struct B {
    entries: Vec<(u64, Entry)>,
    process: u64,
}

impl B {
    /// A fault from 100 ms to 500 ms.
    fn new(fault: bool) -> Self {
        let mut entries = Vec::new();
        if fault {
            entries.push((
                100 * MS,
                Entry::Nemesis(NemesisOp::new(
                    99 * MS,
                    100 * MS,
                    "start",
                    json!({"id": 1, "label": "leader-isolation", "rules": []}),
                )),
            ));
            entries.push((
                500 * MS,
                Entry::Nemesis(NemesisOp::new(500 * MS, 501 * MS, "stop", json!({"id": 1}))),
            ));
        }
        B {
            entries,
            process: 0,
        }
    }

    fn op(mut self, f: &str, invoke: Value, outcome: OpType, done: Value, at: u64) -> Self {
        let i = Op::invoke(at * MS, self.process, f, Some(KEY), invoke);
        let d = i.complete((at + 5) * MS, outcome, done);
        self.process += 1;
        self.entries.push((at * MS, Entry::Op(i)));
        self.entries.push(((at + 5) * MS, Entry::Op(d)));
        self
    }

    fn send(self, value: &str, offset: i64, at: u64) -> Self {
        self.op("send", json!(value), OpType::Ok, json!([offset, value]), at)
    }

    fn read(self, log: &[(i64, &str)], at: u64) -> Self {
        let log: Vec<Value> = log.iter().map(|(o, v)| json!([o, v])).collect();
        self.op("read", Value::Null, OpType::Ok, Value::Array(log), at)
    }

    fn build(mut self) -> History {
        self.entries.sort_by_key(|(t, _)| *t);
        History::new(self.entries.into_iter().map(|(_, e)| e).collect())
    }
}

fn check(h: &History, config: LogConfig) -> Verdict {
    LogChecker::new(Some("t".into()), config).check(h)
}

fn strict() -> LogConfig {
    LogConfig::default()
}

fn clean() -> B {
    B::new(true)
        .send("r-acksall-p0-0", 0, 10)
        .send("r-acksall-p0-1", 1, 150)
        .send("r-acks1-p0-0", 2, 160)
        .send("r-acksall-p0-2", 3, 600)
}

#[test]
fn parses_rift_payloads() {
    assert_eq!(
        parse_record("isolated-acks1-p3-17"),
        Some(RecordId {
            producer: "isolated-acks1".into(),
            acks_all: false,
            seq: 17
        })
    );
    assert!(parse_record("record-acksall-p0-2").unwrap().acks_all);
    assert_eq!(parse_record("no-partition-17"), None);
    assert_eq!(parse_record("x-p0-y"), None);
}

#[test]
fn a_complete_log_passes() {
    let h = clean()
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "r-acksall-p0-1"),
                (2, "r-acks1-p0-0"),
                (3, "r-acksall-p0-2"),
            ],
            900,
        )
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(v.evidence[0].starts_with("4 acknowledged sends on 1 partition(s), 2 of them"));
    // Another topic's history is not this checker's evidence.
    let v = LogChecker::new(Some("other".into()), strict()).check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
}

#[test]
fn a_lost_acks_all_record_fails_naming_its_offset() {
    // Offset 1 was overwritten by another leader's record, offset 3 truncated away.
    let h = clean()
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "other-acksall-p0-0"),
                (2, "r-acks1-p0-0"),
            ],
            900,
        )
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary.starts_with("2 acknowledged acks=all record(s) lost: t/0 offset 1 \"r-acksall-p0-1\" (acknowledged during a fault): offset 1 now holds \"other-acksall-p0-0\""),
        "{}",
        v.summary
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e
                == "lost (acks=all): t/0 offset 3 \"r-acksall-p0-2\": offset 3 is not in the log"),
        "{:?}",
        v.evidence
    );
}

#[test]
fn truncated_acks1_records_are_named_and_fail_only_when_forbidden() {
    let h = clean()
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "r-acksall-p0-1"),
                (2, "new-acksall-p0-0"),
                (3, "r-acksall-p0-2"),
            ],
            900,
        )
        .build();
    let v = check(&h, strict());
    // Offset 2 was overwritten by another leader's record: no hole, and the acks=1
    // record is gone, which is allowed by default and named.
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(
        v.summary.contains("1 acks=1 truncated, allowed"),
        "{}",
        v.summary
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with("truncated (acks=1): t/0 offset 2 \"r-acks1-p0-0\"")),
        "{:?}",
        v.evidence
    );
    let v = check(
        &h,
        LogConfig {
            allow_acks1_loss: false,
            ..strict()
        },
    );
    assert_eq!(v.status, Status::Fail);
    assert!(
        v.summary
            .starts_with("1 acknowledged acks=1 record(s) truncated: t/0 offset 2")
    );
}

#[test]
fn duplicates_reorders_and_offset_holes_fail() {
    let h = clean()
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "r-acksall-p0-1"),
                (2, "r-acks1-p0-0"),
                (3, "r-acksall-p0-2"),
                (4, "r-acksall-p0-1"),
            ],
            900,
        )
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary == "1 record(s) duplicated: t/0: \"r-acksall-p0-1\" at offsets [1, 4]",
        "{}",
        v.summary
    );
    // The same record again after #2 is also out of its producer's order.
    assert!(
        v.evidence
            .iter()
            .any(|e| e == "out of order: t/0: producer r-acksall's #1 (sent before #2) is at offset 4, after #2 at offset 3"),
        "{:?}",
        v.evidence
    );
    let relaxed = LogConfig {
        allow_duplicates: true,
        allow_reorder: true,
        ..strict()
    };
    assert_eq!(check(&h, relaxed.clone()).status, Status::Pass);

    let h = clean()
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "r-acksall-p0-1"),
                (2, "r-acks1-p0-0"),
                (5, "r-acksall-p0-2"),
            ],
            900,
        )
        .build();
    let v = check(&h, relaxed);
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary.starts_with("1 acknowledged acks=all record(s) lost: t/0 offset 3 \"r-acksall-p0-2\": found at offset [5] instead"),
        "{}",
        v.summary
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with("offsets: t/0: offsets 3..4 skipped")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn a_timed_out_send_appended_late_is_named_not_failed() {
    // #1 timed out (indeterminate); its bytes reached the leader after #2 was appended.
    let h = B::new(true)
        .send("r-acksall-p0-0", 0, 10)
        .op(
            "send",
            json!("r-acksall-p0-1"),
            OpType::Info,
            json!("r-acksall-p0-1"),
            150,
        )
        .send("r-acksall-p0-2", 1, 200)
        .read(
            &[
                (0, "r-acksall-p0-0"),
                (1, "r-acksall-p0-2"),
                (2, "r-acksall-p0-1"),
            ],
            900,
        )
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(
        v.evidence.iter().any(|e| e
            == "appended late (send not acknowledged): t/0: \"r-acksall-p0-1\" (not acknowledged) is at offset 2, after #2 at offset 1"),
        "{:?}",
        v.evidence
    );
}

#[test]
fn an_offset_acknowledged_twice_fails() {
    let h = B::new(true)
        .send("r-acksall-p0-0", 0, 150)
        .send("r-acksall-p0-1", 0, 160)
        .read(&[(0, "r-acksall-p0-0")], 900)
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Fail);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("offset 0 acknowledged for both")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn missing_evidence_is_unknown() {
    // No final read of the partition.
    let v = check(&clean().build(), strict());
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("no final read of t/0"), "{}", v.summary);
    // Nothing acknowledged during the fault.
    let h = B::new(true)
        .send("r-acksall-p0-0", 0, 10)
        .read(&[(0, "r-acksall-p0-0")], 900)
        .build();
    let v = check(&h, strict());
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("while a fault was in place"));
    // Nothing acknowledged at all.
    let h = B::new(true)
        .op(
            "send",
            json!("r-acksall-p0-0"),
            OpType::Info,
            json!("r-acksall-p0-0"),
            150,
        )
        .read(&[], 900)
        .build();
    assert_eq!(check(&h, strict()).status, Status::Unknown);
}
