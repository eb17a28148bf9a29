//! The classifier on constructed histories: each label, and each way to UNKNOWN.

use rift_history::{Consistency, Entry, History, NemesisOp, Op, OpType, PhaseMark, Recorder};
use serde_json::{Value, json};

use super::*;

const MS: u64 = 1_000_000;

/// Builds a history in time order: the partition holds from 1000 to 5000 ms with n1 on
/// the minority; `final` is marked at 6000 ms.
struct Builder {
    entries: Vec<(u64, Entry)>,
    next_process: u64,
}

impl Builder {
    fn partitioned() -> Builder {
        Builder::cut_by(json!([]))
    }

    /// The partition with these rules in the nemesis start.
    fn cut_by(rules: Value) -> Builder {
        let mut b = Builder {
            entries: vec![],
            next_process: 0,
        };
        let start = json!({"id": 1, "label": "minority-isolation", "rules": rules,
            "minority": ["n1"], "majority": ["n2", "n3"]});
        b.push(Entry::Nemesis(NemesisOp::new(
            990 * MS,
            1000 * MS,
            "start",
            start,
        )));
        b.push(Entry::Nemesis(NemesisOp::new(
            5000 * MS,
            5010 * MS,
            "stop",
            json!({"id": 1}),
        )));
        b.push(Entry::Phase(PhaseMark {
            index: 0,
            time: 6000 * MS,
            phase: "final".into(),
        }));
        b
    }

    fn push(&mut self, e: Entry) {
        self.entries.push((e.time(), e));
    }

    /// An operation from `at` to `until` ms; `outcome` None leaves it open.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        f: &str,
        key: &str,
        node: &str,
        value: Value,
        at: u64,
        until: u64,
        outcome: OpType,
        result: Value,
    ) -> &mut Self {
        let p = self.next_process;
        self.next_process += 1;
        let mut invoke = Op::invoke(at * MS, p, f, Some(key), value).with_node(node);
        if f == "read" {
            invoke = invoke.with_consistency(Consistency::Linearizable);
        }
        let done = invoke.complete(until * MS, outcome, result);
        self.push(Entry::Op(invoke));
        self.push(Entry::Op(done));
        self
    }

    fn write(
        &mut self,
        key: &str,
        node: &str,
        v: i64,
        at: u64,
        until: u64,
        outcome: OpType,
    ) -> &mut Self {
        self.op("write", key, node, json!(v), at, until, outcome, json!(v))
    }

    fn read(&mut self, key: &str, node: &str, got: Value, at: u64, until: u64) -> &mut Self {
        self.op("read", key, node, Value::Null, at, until, OpType::Ok, got)
    }

    fn history(&mut self) -> History {
        self.entries.sort_by_key(|(t, _)| *t);
        let recorder = Recorder::new(std::time::Instant::now());
        for (_, e) in self.entries.drain(..) {
            recorder.record(e);
        }
        recorder.snapshot()
    }
}

fn label(h: &History, counted: CountedReads) -> Classification {
    classify(&evidence(h, Select::All), counted)
}

#[test]
fn a_minority_that_refuses_and_loses_nothing_is_cp() {
    let h = Builder::partitioned()
        .write("k", "n2", 1, 500, 510, OpType::Ok)
        .write("k", "n1", 2, 2000, 3000, OpType::Info)
        .write("k", "n1", 3, 3100, 3110, OpType::Fail)
        .write("k", "n2", 4, 2000, 2010, OpType::Ok)
        .read("k", "n2", json!(4), 6100, 6110)
        .read("k", "n1", json!(4), 6100, 6110)
        .history();
    let c = label(&h, CountedReads::Strongest);
    assert_eq!(c.cap, Cap::CP, "{c:?}");
    assert_eq!(c.minority_available, Some(false));
    assert_eq!(c.majority_available, Some(true));
    assert!(
        c.reasons[0].contains(
            "acknowledged none of 2 writes during the partition (1 refused, 1 indeterminate)"
        ),
        "{c:?}"
    );
}

#[test]
fn a_minority_that_acknowledges_writes_and_serves_stale_reads_is_ap_with_the_witness() {
    let h = Builder::partitioned()
        .write("k", "n2", 1, 500, 510, OpType::Ok)
        .write("k", "n1", 2, 1500, 1510, OpType::Ok)
        .write("k", "n2", 3, 2000, 2010, OpType::Ok)
        // Began after write 3 was acknowledged, returned 2: stale.
        .read("k", "n1", json!(2), 2500, 2510)
        .read("k", "n2", json!(3), 6100, 6110)
        .history();
    let ev = evidence(&h, Select::All);
    let c = classify(&ev, CountedReads::Strongest);
    assert_eq!(c.cap, Cap::AP, "{c:?}");
    assert_eq!(c.stale_counted, 1);
    let stale = &ev.stale_reads[0];
    assert_eq!(
        (stale.value.clone(), stale.witness_value.clone()),
        (json!(2), json!(3))
    );
    assert_eq!(stale.node.as_deref(), Some("n1"));
    assert!(
        c.reasons
            .iter()
            .any(|r| r.contains("1 reads during the partition proven stale"))
    );
}

#[test]
fn an_acknowledged_write_missing_from_the_final_read_is_named_lost() {
    let h = Builder::partitioned()
        .write("k", "n2", 1, 500, 510, OpType::Ok)
        .write("k", "n1", 2, 2000, 2010, OpType::Fail)
        .write("k", "n2", 3, 2500, 2600, OpType::Ok)
        // After the heal the register went back to 1: write 3 vanished.
        .read("k", "n2", json!(1), 6100, 6110)
        .history();
    let ev = evidence(&h, Select::All);
    let c = classify(&ev, CountedReads::Strongest);
    assert_eq!(c.cap, Cap::Neither, "{c:?}");
    assert_eq!(ev.lost_writes.len(), 1);
    let lost = &ev.lost_writes[0];
    assert_eq!(
        (lost.value.clone(), lost.read_value.clone()),
        (json!(3), json!(1))
    );
    assert!(
        c.reasons
            .iter()
            .any(|r| r.contains("1 acknowledged writes missing after the heal"))
    );
}

#[test]
fn local_reads_are_stale_by_design_under_strongest_and_counted_under_all() {
    let mut b = Builder::partitioned();
    b.write("k", "n2", 1, 500, 510, OpType::Ok)
        .write("k", "n2", 2, 2000, 2010, OpType::Ok)
        .write("k", "n1", 9, 2000, 4000, OpType::Info)
        .read("k", "n2", json!(2), 6100, 6110);
    let p = 99;
    let invoke = Op::invoke(2500 * MS, p, "read", Some("k"), Value::Null)
        .with_node("n1")
        .with_consistency(Consistency::Serializable);
    let done = invoke.complete(2510 * MS, OpType::Ok, json!(1));
    b.push(Entry::Op(invoke));
    b.push(Entry::Op(done));
    let h = b.history();
    let strongest = label(&h, CountedReads::Strongest);
    assert_eq!(
        (
            strongest.cap,
            strongest.stale_counted,
            strongest.stale_local
        ),
        (Cap::CP, 0, 1)
    );
    let all = label(&h, CountedReads::All);
    assert_eq!((all.cap, all.stale_counted), (Cap::Neither, 1), "{all:?}");
}

#[test]
fn an_indeterminate_write_is_never_a_witness_and_its_value_is_never_stale() {
    let h = Builder::partitioned()
        .write("k", "n2", 1, 500, 510, OpType::Ok)
        .write("k", "n1", 2, 1500, 4000, OpType::Info)
        .write("k", "n2", 3, 2000, 2010, OpType::Ok)
        // 2 may have taken effect after 3: not provably stale.
        .read("k", "n2", json!(2), 3000, 3010)
        .read("k", "n2", json!(2), 6100, 6110)
        .history();
    let ev = evidence(&h, Select::All);
    assert!(
        ev.stale_reads.is_empty() && ev.lost_writes.is_empty(),
        "{ev:?}"
    );
}

#[test]
fn missing_evidence_is_unknown_and_says_what_is_missing() {
    let mut no_fault = Builder {
        entries: vec![],
        next_process: 0,
    };
    no_fault.write("k", "n1", 1, 0, 10, OpType::Ok);
    let c = label(&no_fault.history(), CountedReads::Strongest);
    assert_eq!(c.cap, Cap::Unknown);
    assert!(c.reasons[0].contains("no fault"), "{c:?}");

    let h = Builder::partitioned()
        .write("k", "n2", 1, 2000, 2010, OpType::Ok)
        .read("k", "n2", json!(1), 6100, 6110)
        .history();
    let c = label(&h, CountedReads::Strongest);
    assert_eq!(c.cap, Cap::Unknown);
    assert!(
        c.reasons[0].contains("no write was attempted on the minority (n1)"),
        "{c:?}"
    );

    let h = Builder::partitioned()
        .write("k", "n1", 1, 2000, 2010, OpType::Fail)
        .history();
    let c = label(&h, CountedReads::Strongest);
    assert_eq!((c.cap, c.consistent), (Cap::Unknown, None));
    assert!(
        c.reasons.iter().any(|r| r.contains("no final read")),
        "{c:?}"
    );
}

#[test]
fn a_value_no_write_wrote_breaks_consistency() {
    let h = Builder::partitioned()
        .write("k", "n1", 1, 2000, 2010, OpType::Fail)
        .read("k", "n2", json!(77), 6100, 6110)
        .history();
    let c = label(&h, CountedReads::Strongest);
    assert_eq!(c.consistent, Some(false));
    assert!(
        c.reasons.iter().any(|r| r.contains("no write wrote")),
        "{c:?}"
    );
}

#[test]
fn configurations_sharing_a_run_are_judged_apart_by_key_prefix() {
    let h = Builder::partitioned()
        .write("one/k", "n1", 1, 2000, 2010, OpType::Ok)
        .write("quorum/k", "n1", 2, 2000, 3000, OpType::Fail)
        .write("quorum/k", "n2", 3, 2000, 2010, OpType::Ok)
        .read("one/k", "n2", json!(1), 6100, 6110)
        .read("quorum/k", "n2", json!(3), 6100, 6110)
        .history();
    let one = classify(&evidence(&h, Select::KeySegment("one")), CountedReads::All);
    let quorum = classify(
        &evidence(&h, Select::KeySegment("quorum")),
        CountedReads::Strongest,
    );
    assert_eq!(
        (one.cap, quorum.cap),
        (Cap::AP, Cap::CP),
        "{one:?} {quorum:?}"
    );
}

#[test]
fn unknown_systems_are_named_with_the_known_ones() {
    let err = select(&["mongodb".into()]).unwrap_err();
    assert!(err.contains("mongodb") && err.contains("etcd"), "{err}");
    assert!(!select(&[]).unwrap().is_empty());
}

#[test]
fn the_table_puts_the_measured_label_beside_the_textbook_one() {
    let h = Builder::partitioned()
        .write("k", "n1", 1, 2000, 2010, OpType::Fail)
        .write("k", "n2", 2, 2000, 2010, OpType::Ok)
        .read("k", "n2", json!(2), 6100, 6110)
        .history();
    let row = Row::measure(&CATALOGUE[0], &h, "r".into());
    let table = render::table(std::slice::from_ref(&row));
    let line = table.lines().nth(1).unwrap();
    assert!(
        line.starts_with("etcd") && line.contains("CP") && line.contains("0/1"),
        "{table}"
    );
    assert!(render::html(&[row]).contains("class=\"CP\""));
}

#[test]
fn acknowledged_sends_missing_from_the_final_log_are_lost_and_sides_come_from_the_client_rules() {
    // The producer is cut, with the leader n1, from n2 and n3.
    let mut b = Builder::cut_by(json!([
        {"from": "n1", "to": "n2", "fault": "hold"}, {"from": "n2", "to": "n1", "fault": "hold"},
        {"from": "client", "to": "n2", "fault": "hold"}, {"from": "n3", "to": "client", "fault": "hold"}
    ]));
    let send = |b: &mut Builder, v: &str, at: u64, outcome: OpType| {
        let p = b.next_process;
        b.next_process += 1;
        let invoke = Op::invoke(at * MS, p, "send", Some("t/0"), json!(v));
        let result = if outcome == OpType::Ok {
            json!([p, v])
        } else {
            json!(v)
        };
        let done = invoke.complete((at + 5) * MS, outcome, result);
        b.push(Entry::Op(invoke));
        b.push(Entry::Op(done));
    };
    send(&mut b, "r-acks1-p0-0", 500, OpType::Ok);
    send(&mut b, "r-acks1-p0-1", 2000, OpType::Ok);
    send(&mut b, "r-acksall-p0-2", 2000, OpType::Info);
    let log = json!([[0, "r-acks1-p0-0"]]);
    let read = Op::invoke(6100 * MS, 50, "read", Some("t/0"), Value::Null);
    b.push(Entry::Op(read.clone()));
    b.push(Entry::Op(read.complete(6200 * MS, OpType::Ok, log)));
    let h = b.history();

    let acks1 = evidence(&h, Select::WriteValueContains("-acks1-"));
    assert_eq!(
        acks1.window.as_ref().unwrap().client_on_minority,
        Some(true)
    );
    assert_eq!(
        (acks1.minority_writes.ok, acks1.final_reads),
        (1, 1),
        "{acks1:?}"
    );
    assert_eq!(acks1.lost_writes.len(), 1, "{acks1:?}");
    assert_eq!(acks1.lost_writes[0].value, json!("r-acks1-p0-1"));
    assert_eq!(classify(&acks1, CountedReads::Strongest).cap, Cap::AP);

    let all = evidence(&h, Select::WriteValueContains("-acksall-"));
    let c = classify(&all, CountedReads::Strongest);
    assert_eq!((c.cap, c.lost), (Cap::CP, 0), "{c:?}");
}

#[test]
fn a_final_table_of_every_value_written_names_the_writes_it_lacks() {
    let mut b = Builder::partitioned();
    b.write("k", "n1", 1, 500, 510, OpType::Ok)
        .write("k", "n1", 2, 2000, 2010, OpType::Ok)
        .write("k", "n2", 3, 4000, 4010, OpType::Ok)
        // The register's final value is the newest write: nothing looks lost there.
        .read("k", "n2", json!(3), 6100, 6110);
    // But the new primary's table of the key's writes lacks 2, acknowledged by n1.
    let invoke = Op::invoke(6200 * MS, 77, "read-writes", Some("k"), Value::Null).with_node("n2");
    b.push(Entry::Op(invoke.clone()));
    b.push(Entry::Op(invoke.complete(
        6210 * MS,
        OpType::Ok,
        json!([1, 3]),
    )));
    let ev = evidence(&b.history(), Select::All);
    assert_eq!(ev.lost_writes.len(), 1, "{ev:?}");
    assert_eq!(
        (
            ev.lost_writes[0].value.clone(),
            ev.lost_writes[0].node.as_deref()
        ),
        (json!(2), Some("n1"))
    );
    assert_eq!(classify(&ev, CountedReads::Strongest).cap, Cap::AP);
}
