//! The linearizable checker on hand-built histories: PASS, FAIL with its evidence, and
//! each way to be UNKNOWN.

use rift_history::{Consistency, Entry, NemesisOp, Op, OpType};
use serde_json::{Value, json};

use super::*;
use crate::scenario::Status;

const MS: u64 = 1_000_000;

/// Builds a history from (process, f, key, value, call ms, return ms, outcome,
/// consistency, node) and a fault from 100 ms to 500 ms.
struct Builder {
    entries: Vec<(u64, Entry)>,
}

impl Builder {
    fn new(fault: bool) -> Self {
        let mut entries = Vec::new();
        if fault {
            entries.push((
                100 * MS,
                Entry::Nemesis(NemesisOp::new(
                    99 * MS,
                    100 * MS,
                    "start",
                    json!({"id": 1, "label": "leader-isolation", "minority": ["n1"], "majority": ["n2", "n3"], "rules": []}),
                )),
            ));
            entries.push((
                500 * MS,
                Entry::Nemesis(NemesisOp::new(500 * MS, 501 * MS, "stop", json!({"id": 1}))),
            ));
        }
        Builder { entries }
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        mut self,
        process: u64,
        f: &str,
        invoke_value: Value,
        done_value: Value,
        call_ms: u64,
        ret_ms: u64,
        outcome: OpType,
        consistency: Option<Consistency>,
        node: &str,
    ) -> Self {
        let mut invoke =
            Op::invoke(call_ms * MS, process, f, Some("k"), invoke_value).with_node(node);
        if let Some(c) = consistency {
            invoke = invoke.with_consistency(c);
        }
        let done = invoke.complete(ret_ms * MS, outcome, done_value);
        self.entries.push((call_ms * MS, Entry::Op(invoke)));
        self.entries.push((ret_ms * MS, Entry::Op(done)));
        self
    }

    fn write(self, p: u64, v: i64, call: u64, ret: u64, outcome: OpType) -> Self {
        self.op(
            p,
            "write",
            json!(v),
            json!(v),
            call,
            ret,
            outcome,
            None,
            "n2",
        )
    }

    fn read(self, p: u64, v: Value, call: u64, ret: u64, c: Consistency, node: &str) -> Self {
        self.op(
            p,
            "read",
            Value::Null,
            v,
            call,
            ret,
            OpType::Ok,
            Some(c),
            node,
        )
    }

    fn build(mut self) -> History {
        // Stable: at equal times, entries keep the order they were added in.
        self.entries.sort_by_key(|(t, _)| *t);
        History::new(self.entries.into_iter().map(|(_, e)| e).collect())
    }
}

fn check(h: &History, include_serializable: bool) -> Verdict {
    Linearizable::new(LinearizableConfig {
        budget: Duration::from_secs(10),
        include_serializable,
        key_prefix: None,
    })
    .check(h)
}

/// Writes 1 then 2 through the majority during the fault; the cut-off member n1 keeps
/// answering serializable reads with 1 after 2 was acknowledged.
fn stale_minority() -> History {
    use Consistency::*;
    Builder::new(true)
        .write(0, 1, 10, 20, OpType::Ok)
        .read(1, json!(1), 30, 40, Linearizable, "n2")
        .write(0, 2, 150, 160, OpType::Ok)
        .read(1, json!(2), 170, 180, Linearizable, "n3")
        .read(2, json!(1), 200, 210, Serializable, "n1")
        // The minority's linearizable read times out: a read that failed saw nothing.
        .op(
            3,
            "read",
            Value::Null,
            Value::Null,
            220,
            1220,
            OpType::Fail,
            Some(Linearizable),
            "n1",
        )
        // A write through the minority timed out: indeterminate, never observed.
        .write(4, 3, 230, 1230, OpType::Info)
        .read(1, json!(2), 600, 610, Linearizable, "n1")
        .build()
}

#[test]
fn linearizable_reads_pass_with_their_evidence() {
    let v = check(&stale_minority(), false);
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert_eq!(v.summary, "linearizable: 5 operations on 1 key(s)");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("1 serializable reads") && e.contains("1 failed")),
        "{:?}",
        v.evidence
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.starts_with("2 checked operations were acknowledged while a fault")),
        "{:?}",
        v.evidence
    );
    assert!(v.evidence.iter().any(|e| e.contains("ns resolution")));
    let report = v
        .linearizability
        .expect("the report is kept for report.html");
    assert_eq!(report.counts.indeterminate_unobserved, 1);
}

#[test]
fn a_stale_serializable_read_counted_as_linearizable_fails_naming_it() {
    let v = check(&stale_minority(), true);
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    // The summary names the key, the stale read, where and when it ran, and what the
    // register held.
    assert!(
        v.summary.starts_with("not linearizable: key \"k\""),
        "{}",
        v.summary
    );
    assert!(
        v.summary.contains("read → 1")
            && v.summary.contains("0.200000000 s → 0.210000000 s on n1")
            && v.summary.contains("the register held 2"),
        "{}",
        v.summary
    );
    let text = v.evidence.join("\n");
    assert!(text.contains("longest partial linearization"), "{text}");
    assert!(text.contains("write 2"), "{text}");
    assert!(
        text.contains("it read 1, but the register holds 2"),
        "{text}"
    );
    let report = v.linearizability.expect("report kept");
    let failure = report.keys[0].failure.as_ref().expect("failure evidence");
    assert_eq!(failure.stuck.node.as_deref(), Some("n1"));
}

#[test]
fn an_indeterminate_write_that_was_observed_may_have_taken_effect() {
    use Consistency::*;
    // The write of 3 timed out, but a later read saw 3: it took effect, linearizable.
    let h = Builder::new(true)
        .write(0, 1, 10, 20, OpType::Ok)
        .write(4, 3, 150, 1150, OpType::Info)
        .read(1, json!(1), 160, 170, Linearizable, "n2")
        .read(1, json!(3), 600, 610, Linearizable, "n2")
        .build();
    let v = check(&h, false);
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    // A value no one wrote cannot be explained by any indeterminate write.
    let h = Builder::new(true)
        .write(0, 1, 10, 20, OpType::Ok)
        .write(4, 3, 150, 1150, OpType::Info)
        .read(1, json!(7), 600, 610, Linearizable, "n2")
        .build();
    let v = check(&h, false);
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(v.summary.contains("read → 7"), "{}", v.summary);
}

#[test]
fn no_acknowledgement_during_the_fault_is_unknown_not_pass() {
    use Consistency::*;
    let h = Builder::new(true)
        .write(0, 1, 10, 20, OpType::Ok)
        .read(1, json!(1), 30, 40, Linearizable, "n2")
        .read(1, json!(1), 600, 610, Linearizable, "n2")
        .build();
    let v = check(&h, false);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(
        v.summary
            .contains("no checked operation was acknowledged while a fault")
    );
    // Serializable reads acknowledged during the fault do not count unless included.
    let h = Builder::new(true)
        .write(0, 1, 10, 20, OpType::Ok)
        .read(2, json!(1), 200, 210, Serializable, "n1")
        .build();
    assert_eq!(check(&h, false).status, Status::Unknown);
    assert_eq!(check(&h, true).status, Status::Pass);
}

#[test]
fn nothing_to_check_is_unknown() {
    let v = check(&Builder::new(true).build(), false);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("no register operation"), "{}", v.summary);
}

#[test]
fn a_malformed_history_is_unknown_with_the_entry_named() {
    let h = Builder::new(false)
        .op(
            0,
            "increment",
            json!(1),
            json!(1),
            10,
            20,
            OpType::Ok,
            None,
            "n2",
        )
        .build();
    let v = check(&h, false);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(
        v.summary.contains("entry 0") && v.summary.contains("increment"),
        "{}",
        v.summary
    );
}

#[test]
fn a_budget_that_runs_out_is_unknown() {
    // Sixteen concurrent writes and a read of a value none wrote: the search must try
    // every subset of the writes before it can say FAIL, far more than the budget allows.
    let mut b = Builder::new(true);
    for p in 0..16u64 {
        b = b.write(p, p as i64 + 1, 150, 400, OpType::Ok);
    }
    let h = b
        .read(20, json!(99), 450, 460, Consistency::Linearizable, "n2")
        .build();
    let v = Linearizable::new(LinearizableConfig {
        budget: Duration::from_nanos(1),
        include_serializable: false,
        key_prefix: None,
    })
    .check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(v.summary.contains("time budget ran out"), "{}", v.summary);
}

#[test]
fn the_budget_is_bounded() {
    let c = |budget| LinearizableConfig {
        budget,
        include_serializable: false,
        key_prefix: None,
    };
    let e = c(Duration::ZERO)
        .validate("s.toml: [[checker]] #1")
        .unwrap_err();
    assert!(e.to_string().contains("budget"), "{e}");
    assert!(c(Duration::from_secs(7200)).validate("s").is_err());
    assert!(c(Duration::from_secs(60)).validate("s").is_ok());
}
