//! The register history checks on hand-built histories: each passes on a history where
//! its property holds and fails, saying why, where it does not.

use rift_history::{Consistency, Entry, NemesisOp, Op, OpType, PhaseMark};
use serde_json::{Value, json};

use super::*;
use crate::scenario::Status;

const MS: u64 = 1_000_000;

/// A fault isolating n1 from 100 ms to 500 ms, the final phase from 900 ms.
struct H {
    entries: Vec<(u64, Entry)>,
    process: u64,
}

impl H {
    fn new() -> Self {
        let entries = vec![
            (
                100 * MS,
                Entry::Nemesis(NemesisOp::new(
                    99 * MS,
                    100 * MS,
                    "start",
                    json!({"id": 1, "label": "minority-isolation", "minority": ["n1"], "majority": ["n2", "n3"], "rules": []}),
                )),
            ),
            (
                500 * MS,
                Entry::Nemesis(NemesisOp::new(500 * MS, 501 * MS, "stop", json!({"id": 1}))),
            ),
            (
                900 * MS,
                Entry::Phase(PhaseMark {
                    index: 0,
                    time: 900 * MS,
                    phase: "final".into(),
                }),
            ),
        ];
        H {
            entries,
            process: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        mut self,
        f: &str,
        node: &str,
        value: Value,
        done: Value,
        call: u64,
        ret: u64,
        t: OpType,
        c: Option<Consistency>,
    ) -> Self {
        self.process += 1;
        let mut inv = Op::invoke(call * MS, self.process, f, Some("k"), value).with_node(node);
        if let Some(c) = c {
            inv = inv.with_consistency(c);
        }
        let d = inv.complete(ret * MS, t, done);
        self.entries.push((call * MS, Entry::Op(inv)));
        self.entries.push((ret * MS, Entry::Op(d)));
        self
    }

    fn write(self, node: &str, v: i64, call: u64, ret: u64, t: OpType) -> Self {
        self.op("write", node, json!(v), json!(v), call, ret, t, None)
    }

    fn read(self, node: &str, v: Value, call: u64, ret: u64, c: Consistency) -> Self {
        self.op("read", node, Value::Null, v, call, ret, OpType::Ok, Some(c))
    }

    fn build(mut self) -> History {
        self.entries.sort_by_key(|(t, _)| *t);
        History::new(self.entries.into_iter().map(|(_, e)| e).collect())
    }
}

fn base() -> H {
    use Consistency::*;
    H::new()
        .write("n2", 1, 10, 20, OpType::Ok)
        .write("n1", 2, 150, 400, OpType::Info)
        .write("n1", 3, 160, 170, OpType::Fail)
        .write("n2", 4, 200, 220, OpType::Ok)
        .read("n1", json!(1), 150, 151, Serializable)
        .read("n1", json!(1), 300, 301, Serializable)
        .read("n1", json!(4), 950, 960, Linearizable)
        .read("n2", json!(4), 950, 960, Linearizable)
}

#[test]
fn minority_writes_pass_when_refused_and_fail_when_acknowledged() {
    let v = MinorityRefusesWrites.check(&base().build());
    assert_eq!(v.status, Status::Pass, "{v:?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("2 (1 refused, 1 indeterminate")),
        "{v:?}"
    );

    let bad = base().write("n1", 9, 300, 320, OpType::Ok).build();
    let v = MinorityRefusesWrites.check(&bad);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("acknowledged a write") && v.summary.contains("write 9 of k on n1"),
        "{}",
        v.summary
    );

    // Acknowledged after the heal: allowed (it may commit once the quorum is back).
    let late = base().write("n1", 9, 300, 600, OpType::Ok).build();
    assert_eq!(MinorityRefusesWrites.check(&late).status, Status::Pass);

    let none = H::new().write("n2", 1, 10, 20, OpType::Ok).build();
    let v = MinorityRefusesWrites.check(&none);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
}

#[test]
fn stale_reads_are_counted_and_fail_only_above_the_limit() {
    let h = base().build();
    let v = StaleReads(StaleReadsConfig::default()).check(&h);
    assert_eq!(v.status, Status::Pass, "{v:?}");
    // The read at 300 ms returned 1 after 4 replaced it (acknowledged at 220 ms); the
    // read at 150 ms came before.
    assert!(v.summary.starts_with("1 of 2 plain reads"), "{}", v.summary);
    let v = StaleReads(StaleReadsConfig { max_stale: Some(0) }).check(&h);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("1 stale reads") && v.summary.contains("max_stale = 0"),
        "{}",
        v.summary
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("stale: n1 read 1 after write 4")),
        "{v:?}"
    );

    let none = H::new().write("n2", 1, 10, 20, OpType::Ok).build();
    assert_eq!(
        StaleReads(StaleReadsConfig::default()).check(&none).status,
        Status::Unknown
    );
}

#[test]
fn lost_writes_fail_when_the_final_reads_miss_an_acknowledged_write() {
    let v = NoLostWrites.check(&base().build());
    assert_eq!(v.status, Status::Pass, "{v:?}");

    // The final reads return 1, but 4 was acknowledged after 1 was: 4 is lost.
    let lost = H::new()
        .write("n2", 1, 10, 20, OpType::Ok)
        .write("n2", 4, 200, 220, OpType::Ok)
        .read("n1", json!(1), 950, 960, Consistency::Linearizable)
        .build();
    let v = NoLostWrites.check(&lost);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains("acknowledged write 4 of k") && v.summary.contains("is lost"),
        "{}",
        v.summary
    );

    let split = base()
        .read("n3", json!(1), 950, 961, Consistency::Linearizable)
        .build();
    let v = NoLostWrites.check(&split);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(v.summary.contains("members disagree"), "{}", v.summary);

    let unread = H::new().write("n2", 1, 10, 20, OpType::Ok).build();
    assert_eq!(NoLostWrites.check(&unread).status, Status::Unknown);
}
