//! The no-lost-writes judgement on hand-built histories, asserting the evidence.

use rift_history::{Entry, NemesisOp, Op, PhaseMark};
use serde_json::json;

use super::*;

const MS: Nanos = 1_000_000;

struct B {
    entries: Vec<Entry>,
    process: u64,
}

impl B {
    fn new() -> Self {
        let mut b = B {
            entries: Vec::new(),
            process: 0,
        };
        b.entries.push(Entry::Nemesis(NemesisOp::new(
            999 * MS,
            1000 * MS,
            "start",
            json!({"id": 1, "label": "f", "rules": []}),
        )));
        b.entries.push(Entry::Nemesis(NemesisOp::new(
            5000 * MS,
            5001 * MS,
            "stop",
            json!({"id": 1}),
        )));
        b
    }

    /// One operation invoked at `span.0` and completed at `span.1` (ms).
    fn op(
        &mut self,
        f: &str,
        key: &str,
        value: Value,
        span: (u64, u64),
        outcome: OpType,
        done_value: Value,
    ) -> &mut Self {
        self.process += 1;
        let invoke = Op::invoke(span.0 * MS, self.process, f, Some(key), value).with_node("etcd1");
        let done = invoke.complete(span.1 * MS, outcome, done_value);
        self.entries.push(Entry::Op(invoke));
        self.entries.push(Entry::Op(done));
        self
    }

    fn write(&mut self, key: &str, v: u64, at_ms: u64, outcome: OpType) -> &mut Self {
        self.op(
            "write",
            key,
            json!(v),
            (at_ms, at_ms + 20),
            outcome,
            json!(v),
        )
    }

    fn read(&mut self, key: &str, found: Value) -> &mut Self {
        self.op("read", key, Value::Null, (9000, 9002), OpType::Ok, found)
    }

    fn finish(&mut self) -> History {
        self.entries.push(Entry::Phase(PhaseMark {
            index: 0,
            time: 8000 * MS,
            phase: "final".into(),
        }));
        // Entries in time order, as a recorder would have them.
        self.entries.sort_by_key(|e| e.time());
        History::new(self.entries.clone())
    }
}

#[test]
fn passes_and_resolves_indeterminate_writes() {
    let h = B::new()
        .write("k1", 1, 500, OpType::Ok)
        .write("k2", 2, 2000, OpType::Ok)
        .write("k3", 3, 2100, OpType::Info)
        .write("k4", 4, 2200, OpType::Info)
        .read("k1", json!(1))
        .read("k2", json!(2))
        .read("k3", json!(3))
        .read("k4", Value::Null)
        .finish();
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(
        v.summary
            .contains("all 2 acknowledged writes (1 during the fault)"),
        "{}",
        v.summary
    );
    assert!(
        v.summary
            .contains("indeterminate: 1 took effect, 1 did not"),
        "{}",
        v.summary
    );
}

#[test]
fn fails_naming_the_lost_write() {
    let h = B::new()
        .write("k1", 1, 500, OpType::Ok)
        .write("k2", 2, 2000, OpType::Ok)
        .read("k1", json!(1))
        .read("k2", Value::Null)
        .finish();
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert_eq!(v.summary, "1 of 2 acknowledged writes lost");
    assert!(
        v.evidence
            .iter()
            .any(|e| e
                == "lost k2: wrote 2 through etcd1 (acknowledged at 2020 ms), final read absent"),
        "{v:?}"
    );
}

#[test]
fn a_refused_write_that_took_effect_fails() {
    let h = B::new()
        .write("k1", 1, 2000, OpType::Ok)
        .write("k2", 2, 2000, OpType::Fail)
        .read("k1", json!(1))
        .read("k2", json!(2))
        .finish();
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary
            .contains("1 writes reported as refused (fail) took effect"),
        "{}",
        v.summary
    );
}

#[test]
fn unknown_without_an_acknowledgement_during_the_fault() {
    // Two-vs-two: nothing is acknowledged while the fault is in place.
    let h = B::new()
        .write("k1", 1, 500, OpType::Ok)
        .write("k2", 2, 2000, OpType::Info)
        .read("k1", json!(1))
        .read("k2", json!(2))
        .finish();
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary
            .starts_with("no write was acknowledged while the fault was in place"),
        "{}",
        v.summary
    );
}

#[test]
fn unknown_when_an_acknowledged_write_was_never_read_back() {
    let h = B::new()
        .write("k1", 1, 2000, OpType::Ok)
        .write("k2", 2, 2000, OpType::Ok)
        .read("k1", json!(1))
        .finish();
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert_eq!(
        v.summary,
        "1 acknowledged writes were never read back (first: k2)"
    );
    // A read before the final phase is not a final read.
    let h = B::new()
        .write("k1", 1, 2000, OpType::Ok)
        .op(
            "read",
            "k1",
            Value::Null,
            (3000, 3001),
            OpType::Ok,
            json!(1),
        )
        .finish();
    assert_eq!(NoLostWrites.check(&h).status, Status::Unknown);
}
