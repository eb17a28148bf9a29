//! The Cassandra checks on hand-built histories: each passes on what Cassandra is
//! expected to do and fails, saying why, when the property does not hold.

use rift_history::{Consistency, Entry, History, Nanos, NemesisOp, Op, OpType, PhaseMark};
use serde_json::{Value, json};

use super::lost::NoLostWrites;
use super::one::OneAvailability;
use super::quorum::QuorumRefusal;
use crate::scenario::Status;
use crate::scenario::check::HistoryCheck;

const MS: Nanos = 1_000_000;

/// A fault isolating cass3 from 1000 ms to 5000 ms, the final mark at 8000 ms.
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
            json!({"id": 1, "label": "minority-isolation", "rules": [],
                   "majority": ["cass1", "cass2"], "minority": ["cass3"]}),
        )));
        b.entries.push(Entry::Nemesis(NemesisOp::new(
            5000 * MS,
            5001 * MS,
            "stop",
            json!({"id": 1}),
        )));
        b.entries.push(Entry::Phase(PhaseMark {
            index: 0,
            time: 8000 * MS,
            phase: "final".into(),
        }));
        b
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        f: &str,
        key: &str,
        node: &str,
        value: Value,
        span: (u64, u64),
        outcome: OpType,
        done_value: Value,
        error: Option<&str>,
    ) -> &mut Self {
        self.process += 1;
        let mut invoke = Op::invoke(span.0 * MS, self.process, f, Some(key), value).with_node(node);
        if f == "read" {
            let c = if key.starts_with("one/") {
                Consistency::Serializable
            } else {
                Consistency::Linearizable
            };
            invoke = invoke.with_consistency(c);
        }
        let mut done = invoke.complete(span.1 * MS, outcome, done_value);
        if let Some(e) = error {
            done = done.with_error(e);
        }
        self.entries.push(Entry::Op(invoke));
        self.entries.push(Entry::Op(done));
        self
    }

    fn write(&mut self, key: &str, node: &str, v: i64, at: u64, outcome: OpType) -> &mut Self {
        let error = match outcome {
            OpType::Ok => None,
            OpType::Fail => Some("UnavailableException: the coordinator refused before writing"),
            _ => Some("WriteTimeoutException: 0 of 2 replicas acknowledged in time"),
        };
        self.op(
            "write",
            key,
            node,
            json!(v),
            (at, at + 20),
            outcome,
            json!(v),
            error,
        )
    }

    fn read(&mut self, key: &str, node: &str, v: Option<i64>, at: u64) -> &mut Self {
        self.op(
            "read",
            key,
            node,
            Value::Null,
            (at, at + 10),
            OpType::Ok,
            v.map_or(Value::Null, Value::from),
            None,
        )
    }

    fn refused_read(&mut self, key: &str, node: &str, at: u64, error: &str) -> &mut Self {
        self.op(
            "read",
            key,
            node,
            Value::Null,
            (at, at + 2000),
            OpType::Fail,
            Value::Null,
            Some(error),
        )
    }

    fn build(&self) -> History {
        let mut entries = self.entries.clone();
        entries.sort_by_key(|e| e.time());
        History::new(entries)
    }
}

/// ONE traffic on both sides during the fault, all acknowledged; the minority reads a
/// value the majority has overwritten.
fn one_on_both_sides() -> B {
    let mut b = B::new();
    b.write("one/r/k0", "cass1", 1, 100, OpType::Ok)
        .write("one/r/k0", "cass1", 2, 1500, OpType::Ok)
        .write("one/r/k0", "cass3", 3, 1600, OpType::Ok)
        .read("one/r/k0", "cass2", Some(2), 1700)
        .read("one/r/k0", "cass3", Some(3), 1800);
    b.write("one/r/k1", "cass1", 10, 100, OpType::Ok)
        .write("one/r/k1", "cass2", 11, 2000, OpType::Ok)
        // Stale: 10 was superseded by 11, acknowledged before this read began.
        .read("one/r/k1", "cass3", Some(10), 2100);
    b
}

#[test]
fn one_passes_when_both_sides_answer_and_counts_stale_reads_with_their_witness() {
    let v = OneAvailability.check(&one_on_both_sides().build());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    let text = v.evidence.join("\n");
    assert!(
        text.contains("minority: 1 of 2 answered ONE reads were stale"),
        "{text}"
    );
    assert!(text.contains("stale: read 10 via cass3"), "{text}");
    assert!(text.contains("witness: write 11 via cass2"), "{text}");
}

#[test]
fn one_fails_naming_a_minority_write_that_was_refused() {
    let mut b = one_on_both_sides();
    b.write("one/r/k2", "cass3", 20, 3000, OpType::Fail);
    let v = OneAvailability.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("ONE write through cass3 (minority) was not acknowledged")
            && v.summary.contains("UnavailableException"),
        "{}",
        v.summary
    );
}

#[test]
fn one_is_unknown_without_minority_traffic() {
    let mut b = B::new();
    b.write("one/r/k0", "cass1", 1, 1500, OpType::Ok)
        .read("one/r/k0", "cass2", Some(1), 1700);
    let v = OneAvailability.check(&b.build());
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("through the minority"), "{}", v.summary);
}

fn quorum_refused() -> B {
    let mut b = B::new();
    b.write("quorum/r/k0", "cass1", 1, 1500, OpType::Ok)
        .write("quorum/r/k0", "cass3", 2, 1600, OpType::Info)
        .write("quorum/r/k0", "cass3", 3, 2000, OpType::Fail)
        .refused_read(
            "quorum/r/k0",
            "cass3",
            2200,
            "ReadTimeoutException: 1 of 2 replicas answered in time",
        );
    b
}

#[test]
fn quorum_passes_and_names_each_refusal() {
    let v = QuorumRefusal.check(&quorum_refused().build());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    let text = v.evidence.join("\n");
    assert!(
        text.contains(
            "3 of 3 QUORUM operations refused (ReadTimeout: 1, Unavailable: 1, WriteTimeout: 1)"
        ),
        "{text}"
    );
    assert!(text.contains("majority cass1,cass2: 1 of 1"), "{text}");
}

#[test]
fn quorum_fails_when_the_minority_acknowledges() {
    // What a cut that let the minority reach its peers would show: one acknowledged
    // QUORUM write through the isolated node.
    let mut b = quorum_refused();
    b.write("quorum/r/k0", "cass3", 4, 3000, OpType::Ok);
    let v = QuorumRefusal.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("minority node cass3 acknowledged a QUORUM write"),
        "{}",
        v.summary
    );
}

#[test]
fn quorum_fails_when_the_majority_acknowledges_nothing() {
    let mut b = B::new();
    b.write("quorum/r/k0", "cass1", 1, 1500, OpType::Info)
        .write("quorum/r/k0", "cass3", 2, 1600, OpType::Fail);
    let v = QuorumRefusal.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("majority side (cass1,cass2) acknowledged none"),
        "{}",
        v.summary
    );
}

fn converged() -> B {
    let mut b = B::new();
    b.write("one/r/k0", "cass3", 1, 1500, OpType::Ok)
        .write("one/r/k0", "cass1", 2, 2000, OpType::Ok)
        .write("one/r/k0", "cass2", 3, 6000, OpType::Ok);
    for n in ["cass1", "cass2", "cass3"] {
        b.read("one/r/k0", n, Some(3), 8100);
    }
    b
}

#[test]
fn no_lost_writes_passes_and_reports_the_write_last_write_wins_discarded() {
    let v = NoLostWrites.check(&converged().build());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    let text = v.evidence.join("\n");
    assert!(
        text.contains(
            "last-write-wins discarded the minority's last acknowledged write ok write 1 via cass3"
        ),
        "{text}"
    );
}

#[test]
fn no_lost_writes_fails_when_a_later_acknowledged_write_vanished() {
    let mut b = converged();
    // Acknowledged after 3 had been written, yet every node ends with 3.
    b.write("one/r/k0", "cass3", 4, 7000, OpType::Ok);
    let v = NoLostWrites.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("acknowledged write lost: ok write 4 via cass3"),
        "{}",
        v.summary
    );
}

#[test]
fn no_lost_writes_fails_when_replicas_disagree() {
    let mut b = B::new();
    b.write("one/r/k0", "cass1", 1, 1500, OpType::Ok)
        .read("one/r/k0", "cass1", Some(1), 8100)
        .read("one/r/k0", "cass3", None, 8100);
    let v = NoLostWrites.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(v.summary.contains("did not converge"), "{}", v.summary);
}

#[test]
fn no_lost_writes_is_unknown_without_final_reads() {
    let mut b = B::new();
    b.write("one/r/k0", "cass1", 1, 1500, OpType::Ok);
    let v = NoLostWrites.check(&b.build());
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("no final read"), "{}", v.summary);
}

fn lwt_config() -> crate::register::linearizable::LinearizableConfig {
    let spec = crate::scenario::spec::CheckerSpec {
        kind: "linearizable".into(),
        settings: toml::Table::new(),
        origin: "t.toml: [[checker]] #1 (linearizable)".into(),
    };
    match super::build(&spec).unwrap() {
        crate::scenario::check::CheckerImpl::History(c) => {
            assert_eq!(c.name(), "linearizable (lwt/ keys)");
        }
        _ => panic!("linearizable is a history check"),
    }
    crate::register::linearizable::LinearizableConfig {
        budget: std::time::Duration::from_secs(10),
        include_serializable: false,
        key_prefix: Some("lwt/".into()),
    }
}

/// cas 1 on the majority during the fault; `one/` keys read stale (not linearizable,
/// and not Paxos: left out).
fn lwt_history(minority_read: Option<i64>) -> B {
    let mut b = B::new();
    b.op(
        "cas",
        "lwt/r/k0",
        "cass1",
        json!([null, 1]),
        (1500, 1520),
        OpType::Ok,
        json!([null, 1]),
        None,
    )
    .read("lwt/r/k0", "cass2", Some(1), 1600)
    .write("one/r/k0", "cass1", 7, 1500, OpType::Ok)
    .read("one/r/k0", "cass3", None, 1700);
    if let Some(v) = minority_read {
        b.read("lwt/r/k0", "cass3", Some(v), 2000);
    }
    b
}

#[test]
fn linearizable_judges_only_lwt_keys_and_fails_on_a_stale_serial_read() {
    use crate::register::linearizable::Linearizable;
    let config = lwt_config();
    let v = Linearizable::new(config.clone()).check(&lwt_history(None).build());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(
        v.summary.contains("1 key(s)"),
        "the one/ key is left out: {}",
        v.summary
    );
    // A SERIAL read that returns the register's state before an acknowledged cas.
    let mut b = lwt_history(None);
    b.op(
        "read",
        "lwt/r/k0",
        "cass3",
        Value::Null,
        (2000, 2010),
        OpType::Ok,
        Value::Null,
        None,
    );
    let v = Linearizable::new(config).check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(v.summary.contains("lwt/r/k0"), "{}", v.summary);
}

#[test]
fn quorum_refusal_fails_when_a_minority_lwt_is_acknowledged() {
    let mut b = lwt_history(None);
    b.op(
        "cas",
        "lwt/r/k0",
        "cass3",
        json!([1, 2]),
        (2500, 2600),
        OpType::Ok,
        json!([1, 2]),
        None,
    );
    let v = QuorumRefusal.check(&b.build());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("minority node cass3 acknowledged a LWT cas"),
        "{}",
        v.summary
    );
}
