use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{Consistency, Entry, History, Op, OpType};

/// Builds histories by hand: `op(process, f, key, value, call, ret, outcome)`.
#[derive(Default)]
struct Builder {
    /// (time, entry) before sorting into history order.
    events: Vec<(u64, usize, Entry)>,
}

impl Builder {
    fn op(
        &mut self,
        process: u64,
        f: &str,
        key: &str,
        invoke_value: Value,
        call: u64,
        end: Option<(u64, OpType, Value)>,
    ) -> &mut Self {
        let invoke = Op::invoke(call, process, f, Some(key), invoke_value);
        let seq = self.events.len();
        if let Some((time, outcome, value)) = end {
            let done = invoke.complete(time, outcome, value);
            self.events.push((time, seq + 1, Entry::Op(done)));
        }
        self.events.push((call, seq, Entry::Op(invoke)));
        self
    }
    fn write(&mut self, p: u64, key: &str, v: i64, call: u64, ret: u64) -> &mut Self {
        self.op(
            p,
            "write",
            key,
            json!(v),
            call,
            Some((ret, OpType::Ok, json!(v))),
        )
    }
    fn write_info(&mut self, p: u64, key: &str, v: i64, call: u64) -> &mut Self {
        self.op(
            p,
            "write",
            key,
            json!(v),
            call,
            Some((call + 1, OpType::Info, json!(v))),
        )
    }
    fn read(&mut self, p: u64, key: &str, v: Option<i64>, call: u64, ret: u64) -> &mut Self {
        self.op(
            p,
            "read",
            key,
            Value::Null,
            call,
            Some((ret, OpType::Ok, json!(v))),
        )
    }
    fn cas(
        &mut self,
        p: u64,
        key: &str,
        a: i64,
        b: i64,
        call: u64,
        end: Option<(u64, OpType)>,
    ) -> &mut Self {
        self.op(
            p,
            "cas",
            key,
            json!([a, b]),
            call,
            end.map(|(t, o)| (t, o, json!([a, b]))),
        )
    }
    fn build(&self) -> History {
        let mut events: Vec<&(u64, usize, Entry)> = self.events.iter().collect();
        events.sort_by_key(|(t, seq, _)| (*t, *seq));
        let mut entries: Vec<Entry> = events.into_iter().map(|(_, _, e)| e.clone()).collect();
        for (i, e) in entries.iter_mut().enumerate() {
            if let Entry::Op(op) = e {
                op.index = i;
            }
        }
        History::new(entries)
    }
}

fn run(history: &History) -> Report {
    check(history, &Options::default()).expect("valid input")
}

#[test]
fn sequential_reads_writes_and_cas_pass() {
    let mut b = Builder::default();
    b.read(1, "k", None, 0, 5)
        .write(1, "k", 1, 10, 15)
        .read(2, "k", Some(1), 20, 25)
        .cas(2, "k", 1, 2, 30, Some((35, OpType::Ok)))
        .read(1, "k", Some(2), 40, 45);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    assert_eq!(report.counts.checked, 5);
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_write() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 100)
        .read(2, "k", None, 10, 20)
        .read(3, "k", Some(1), 30, 40)
        .read(2, "k", Some(1), 101, 110);
    assert_eq!(run(&b.build()).verdict, Verdict::Pass);
}

#[test]
fn a_stale_read_fails_naming_the_key_the_read_and_the_prefix() {
    let mut b = Builder::default();
    b.write(1, "a", 7, 0, 5).read(2, "a", Some(7), 6, 8);
    b.write(1, "k", 1, 10, 20)
        .write(2, "k", 2, 30, 40)
        .read(3, "k", Some(1), 50, 60);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.keys[0].key, "a");
    assert_eq!(report.keys[0].verdict, Verdict::Pass);
    let bad: Vec<&KeyReport> = report.failures().collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].key, "k");
    let f = bad[0].failure.as_ref().expect("evidence");
    let prefix: Vec<&str> = f
        .linearized
        .iter()
        .map(|s| s.op.describe.as_str())
        .collect();
    assert_eq!(prefix, ["write 1", "write 2"]);
    assert_eq!(f.state, Some(2));
    assert_eq!(f.stuck.describe, "read → 1");
    assert_eq!(f.stuck.process, 3);
    assert_eq!(f.candidates.len(), 1);
    assert_eq!(
        f.candidates[0].reason,
        "it read 1, but the register holds 2"
    );
    let text = report::render_text(&report, &|op| format!("entry {}", op.entry));
    assert!(text.contains("key \"k\": FAIL"), "{text}");
    assert!(text.contains("process 3 read → 1"), "{text}");
}

#[test]
fn an_indeterminate_write_may_take_effect_long_after_its_call() {
    let mut b = Builder::default();
    b.write_info(1, "k", 1, 0)
        .read(2, "k", None, 10, 20)
        .read(3, "k", Some(1), 1_000, 1_010);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    assert_eq!(report.counts.indeterminate, 1);
}

fn sop(call: u64, ret: Option<u64>, op: RegisterOp) -> SearchOp<RegisterOp> {
    SearchOp {
        call,
        ret: ret.unwrap_or(u64::MAX),
        indeterminate: ret.is_none(),
        op,
    }
}

#[test]
fn the_search_lets_an_indeterminate_write_never_take_effect() {
    // Called straight, without the pruning of unobserved writes: the write of 2 must be
    // placed after everything else for the later reads of 1 to hold.
    let ops = [
        sop(0, Some(5), RegisterOp::Write(Some(1))),
        sop(10, None, RegisterOp::Write(Some(2))),
        sop(20, Some(30), RegisterOp::Read(Some(1))),
        sop(40, Some(50), RegisterOp::Read(Some(1))),
    ];
    let far = std::time::Instant::now() + Duration::from_secs(60);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let searched = search(&Register, &ops, far, &cancel);
    assert!(
        matches!(searched.outcome, Outcome::Linearizable),
        "{searched:?}"
    );
    // A determinate write in its place is a violation, found at the second read.
    let mut ops = ops;
    ops[1] = sop(10, Some(15), RegisterOp::Write(Some(2)));
    let searched = search(&Register, &ops, far, &cancel);
    let Outcome::NotLinearizable(longest) = searched.outcome else {
        panic!("{searched:?}");
    };
    assert_eq!(longest.state, Some(2));
    assert_eq!(longest.blocker, 2);
}

#[test]
fn an_unobserved_indeterminate_write_is_left_out() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 5)
        .write_info(2, "k", 2, 10)
        .read(3, "k", Some(1), 20, 30);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.counts.indeterminate_unobserved, 1);
    assert_eq!(report.counts.checked, 2);
}

#[test]
fn an_indeterminate_write_cannot_take_effect_before_its_call() {
    let mut b = Builder::default();
    b.read(1, "k", Some(5), 0, 10).write_info(2, "k", 5, 20);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Fail);
    let f = report.keys[0].failure.as_ref().unwrap();
    assert!(f.linearized.is_empty());
    assert_eq!(f.stuck.describe, "read → 5");
    assert_eq!(
        f.candidates[0].reason,
        "it read 5, but the register holds null"
    );
}

#[test]
fn an_operation_that_never_completed_is_indeterminate() {
    let mut b = Builder::default();
    b.op(1, "write", "k", json!(4), 0, None)
        .read(2, "k", Some(4), 50, 60)
        .read(2, "k", Some(4), 70, 80);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Pass);
    let f_never = prepare(&b.build(), false).unwrap();
    assert_eq!(f_never.keys[0].origins[0].completion, Completion::Pending);
}

#[test]
fn an_indeterminate_cas_applies_or_not_but_not_both() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 5)
        .cas(2, "k", 1, 2, 10, Some((11, OpType::Info)))
        .read(3, "k", Some(1), 20, 30)
        .read(3, "k", Some(2), 40, 50);
    assert_eq!(run(&b.build()).verdict, Verdict::Pass);
    // Seen applied, then seen not applied: no single point works.
    b.read(3, "k", Some(1), 60, 70);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Fail);
    let f = report.keys[0].failure.as_ref().unwrap();
    assert_eq!(f.stuck.describe, "read → 1");
    assert_eq!(f.state, Some(2));
}

#[test]
fn failed_operations_never_took_effect() {
    let mut b = Builder::default();
    b.op(
        1,
        "write",
        "k",
        json!(5),
        0,
        Some((10, OpType::Fail, json!(5))),
    )
    .read(2, "k", None, 20, 30);
    assert_eq!(run(&b.build()).verdict, Verdict::Pass);
    b.read(2, "k", Some(5), 40, 50);
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.counts.failed, 1);
}

#[test]
fn a_successful_cas_needs_its_expected_value() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 5)
        .cas(2, "k", 3, 4, 10, Some((20, OpType::Ok)));
    let report = run(&b.build());
    assert_eq!(report.verdict, Verdict::Fail);
    let f = report.keys[0].failure.as_ref().unwrap();
    assert_eq!(f.stuck.describe, "cas 3 → 4");
    assert_eq!(
        f.candidates[0].reason,
        "it succeeded expecting 3, but the register holds 1"
    );
}

fn stale_serializable() -> History {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 10).write(1, "k", 2, 20, 30);
    let read = Op::invoke(40, 2, "read", Some("k"), Value::Null)
        .with_node("etcd3")
        .with_consistency(Consistency::Serializable);
    let done = read.complete(50, OpType::Ok, json!(1));
    let mut h = b.build();
    h.entries.push(Entry::Op(read));
    h.entries.push(Entry::Op(done));
    h
}

#[test]
fn serializable_reads_are_left_out_unless_asked_for() {
    let history = stale_serializable();
    let report = run(&history);
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.counts.serializable_reads, 1);
    let options = Options {
        include_serializable: true,
        ..Options::default()
    };
    let report = check(&history, &options).unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    let f = report.keys[0].failure.as_ref().unwrap();
    assert_eq!(f.stuck.describe, "read → 1");
    assert_eq!(f.stuck.node.as_deref(), Some("etcd3"));
}

#[test]
fn running_out_of_budget_is_unknown_never_pass() {
    // Thirty concurrent writes and a read of a value none wrote: the search must try
    // subsets of the writes before it can say no.
    let mut b = Builder::default();
    for p in 0..30 {
        b.write(p, "k", p as i64, 0, 1_000);
    }
    b.read(99, "k", Some(1_000), 2_000, 2_001);
    let options = Options {
        budget: Duration::ZERO,
        ..Options::default()
    };
    let report = check(&b.build(), &options).unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(report.keys[0].reason.as_deref().unwrap().contains("budget"));
}

#[test]
fn malformed_operations_name_the_entry_and_field() {
    let mut b = Builder::default();
    b.op(
        1,
        "incr",
        "k",
        json!(1),
        0,
        Some((5, OpType::Ok, Value::Null)),
    );
    let err = check(&b.build(), &Options::default()).unwrap_err();
    assert_eq!((err.entry, err.field), (0, "f"));

    let mut b = Builder::default();
    b.op(1, "cas", "k", json!([1]), 0, None);
    let err = check(&b.build(), &Options::default()).unwrap_err();
    assert_eq!(err.field, "value");
    assert!(err.reason.contains("[expected, new]"), "{err}");

    let done = Op::invoke(5, 1, "read", Some("k"), Value::Null).complete(6, OpType::Ok, json!(1));
    let err = check(&History::new(vec![Entry::Op(done)]), &Options::default()).unwrap_err();
    assert_eq!((err.entry, err.field), (0, "type"));

    let mut b = Builder::default();
    b.read(1, "k", None, 0, 10);
    let mut h = b.build();
    if let Entry::Op(op) = &mut h.entries[1] {
        op.value = json!("seven");
    }
    let err = check(&h, &Options::default()).unwrap_err();
    assert_eq!((err.entry, err.field), (1, "value"));
}

/// A tiny deterministic generator, so the cross-check below needs no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Linearizable by exhaustion: some subset of the indeterminate operations, in some
/// order that respects real time, replays correctly.
fn brute_force(ops: &[SearchOp<RegisterOp>]) -> bool {
    fn go(ops: &[SearchOp<RegisterOp>], used: &mut Vec<bool>, state: RegisterValue) -> bool {
        let pending: Vec<usize> = (0..ops.len()).filter(|&i| !used[i]).collect();
        if pending.iter().all(|&i| ops[i].indeterminate) {
            return true;
        }
        for &i in &pending {
            // i may go next only if no other pending op returned before i was called.
            if pending.iter().any(|&j| j != i && ops[j].ret < ops[i].call) {
                continue;
            }
            if let Some(next) = Register.step(state, &ops[i].op, ops[i].indeterminate) {
                used[i] = true;
                if go(ops, used, next) {
                    used[i] = false;
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], None)
}

#[test]
fn agrees_with_exhaustive_search_on_random_small_histories() {
    let mut rng = Lcg(42);
    let (mut pass, mut fail) = (0, 0);
    for _ in 0..3_000 {
        let mut b = Builder::default();
        let n = 1 + rng.next(7);
        for p in 0..n {
            let call = rng.next(40);
            let ret = call + 1 + rng.next(20);
            let v = rng.next(3) as i64;
            let end = match rng.next(6) {
                0 => None,
                1 => Some(OpType::Info),
                _ => Some(OpType::Ok),
            };
            match rng.next(3) {
                0 => {
                    let seen = if rng.next(4) == 0 { None } else { Some(v) };
                    b.read(p, "k", seen, call, ret);
                }
                1 => {
                    b.op(
                        p,
                        "write",
                        "k",
                        json!(v),
                        call,
                        end.map(|o| (ret, o, json!(v))),
                    );
                }
                _ => {
                    let to = rng.next(3) as i64;
                    b.cas(p, "k", v, to, call, end.map(|o| (ret, o)));
                }
            }
        }
        let history = b.build();
        let prepared = prepare(&history, false).unwrap();
        // The exhaustive check sees every operation, pruned or not.
        let unpruned = {
            let mut ops = Vec::new();
            for (inv, done) in history.pairs() {
                let outcome = done.map(|d| d.r#type);
                let op = match inv.f.as_str() {
                    "read" if outcome == Some(OpType::Ok) => {
                        RegisterOp::Read(done.unwrap().value.as_i64())
                    }
                    "read" => continue,
                    "write" => RegisterOp::Write(inv.value.as_i64()),
                    _ => RegisterOp::Cas(inv.value[0].as_i64(), inv.value[1].as_i64()),
                };
                let indeterminate = outcome != Some(OpType::Ok);
                ops.push(SearchOp {
                    call: inv.time,
                    ret: if indeterminate {
                        u64::MAX
                    } else {
                        done.unwrap().time
                    },
                    indeterminate,
                    op,
                });
            }
            ops
        };
        let expected = brute_force(&unpruned);
        let report = run(&history);
        let got = report.verdict == Verdict::Pass;
        assert_eq!(
            got, expected,
            "history {history:#?}\nprepared {:?}",
            prepared.keys
        );
        if expected { pass += 1 } else { fail += 1 }
    }
    // Both answers must be well represented for the comparison to mean anything.
    assert!(pass > 500 && fail > 500, "pass {pass}, fail {fail}");
}
