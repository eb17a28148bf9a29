//! `no-lost-writes`: after the heal, the replicas converged and kept every write they
//! acknowledged, as last-write-wins allows. Judged per key on the final reads (every
//! node, at ALL or SERIAL, after the `final` mark):
//! - every node's answered final read of the key returns the same value, else FAIL
//!   (the replicas did not converge);
//! - that value was written by some write or cas of the run (or the key is absent),
//!   else FAIL (a value nobody wrote);
//! - no acknowledged write was invoked after the winning write completed, else FAIL:
//!   that write came strictly later in real time and vanished. (The coordinator stamps
//!   a write when it receives it, so the winner's timestamp precedes its completion,
//!   whether it was acknowledged or timed out; the lab's nodes share one clock.)
//!
//! Writes that last-write-wins discarded are reported: when both sides of a fault
//! acknowledged writes to one key, the two sides' last acknowledged writes meet at the
//! heal and the one stamped earlier vanishes, though no write followed it on its side.
//!
//! UNKNOWN: no final read answered for some key, or no write was acknowledged at all.

use std::collections::BTreeMap;

use rift_history::{History, OpType};

use super::{RegOp, register_ops, seconds};
use crate::scenario::Verdict;
use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{fault_windows, last_time};

pub struct NoLostWrites;

/// How many vanished writes are named per key before the rest are counted.
const NAMED: usize = 3;

impl HistoryCheck for NoLostWrites {
    fn name(&self) -> String {
        "no-lost-writes".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let ops = register_ops(history);
        let mut by_key: BTreeMap<&str, Vec<&RegOp>> = BTreeMap::new();
        for o in &ops {
            by_key.entry(o.key.as_str()).or_default().push(o);
        }
        if !ops
            .iter()
            .any(|o| o.f != "read" && o.outcome == OpType::Ok && !o.is_final)
        {
            v.unknown("no write was acknowledged: nothing to lose");
            return v;
        }
        let windows = fault_windows(history);
        let last = last_time(history);
        let mut discarded_total = 0;
        for (key, ops) in &by_key {
            let finals: Vec<&&RegOp> = ops
                .iter()
                .filter(|o| o.is_final && o.f == "read" && o.outcome == OpType::Ok)
                .collect();
            let Some(first) = finals.first() else {
                v.unknown(format!("key {key}: no final read answered"));
                continue;
            };
            let value = first.value;
            if let Some(other) = finals.iter().find(|o| o.value != value) {
                v.fail(format!(
                    "key {key}: the replicas did not converge after the heal: {} read {} but {} read {}",
                    first.node,
                    show(value),
                    other.node,
                    show(other.value)
                ));
                continue;
            }
            let writes: Vec<&&RegOp> = ops
                .iter()
                .filter(|o| o.f != "read" && o.outcome != OpType::Fail)
                .collect();
            let winner = value.map(|val| writes.iter().find(|w| w.value == Some(val)));
            let winner_done = match winner {
                // Absent: every acknowledged write vanished.
                None => None,
                Some(None) => {
                    v.fail(format!(
                        "key {key}: the final value {} was written by no operation of the run",
                        show(value)
                    ));
                    continue;
                }
                Some(Some(w)) => Some(w.complete.unwrap_or(last)),
            };
            let lost: Vec<&&&RegOp> = writes
                .iter()
                .filter(|w| w.outcome == OpType::Ok && w.value != value)
                .filter(|w| winner_done.is_none_or(|done| w.invoke > done))
                .collect();
            for w in lost.iter().take(NAMED) {
                v.fail(format!(
                    "key {key}: acknowledged write lost: {} was invoked after the final value {} \
                     had been written{}",
                    w.describe(),
                    show(value),
                    winner_done
                        .map(|d| format!(" (at {})", seconds(d)))
                        .unwrap_or_default()
                ));
            }
            v.evidence(format!(
                "key {key}: final value {} on every node ({} final reads), {} acknowledged writes",
                show(value),
                finals.len(),
                writes.iter().filter(|w| w.outcome == OpType::Ok).count()
            ));
            for w in &windows {
                let during = |nodes: &[String]| -> Vec<&RegOp> {
                    writes
                        .iter()
                        .filter(|o| o.outcome == OpType::Ok && o.inside(w, last))
                        .filter(|o| nodes.contains(&o.node))
                        .map(|o| **o)
                        .collect()
                };
                let (Some(m), Some(j)) = (
                    during(&w.minority).into_iter().max_by_key(|o| o.invoke),
                    during(&w.majority).into_iter().max_by_key(|o| o.invoke),
                ) else {
                    continue;
                };
                // At the heal the two sides' last writes meet; the later timestamp wins.
                let (lost_side, lost, won) = if m.invoke < j.invoke {
                    ("minority", m, j)
                } else {
                    ("majority", j, m)
                };
                discarded_total += 1;
                v.evidence(format!(
                    "key {key}: both sides wrote during fault {}; at the heal last-write-wins \
                     discarded the {lost_side}'s last acknowledged write {} for {}",
                    w.id,
                    lost.describe(),
                    won.describe()
                ));
            }
        }
        if discarded_total > 0 {
            v.evidence(format!(
                "{discarded_total} acknowledged writes vanished by last-write-wins (each \
                 overwritten at the heal by a concurrent write of the other side)"
            ));
        }
        v.pass(format!(
            "{} keys converged; no acknowledged write was lost after a later write",
            by_key.len()
        ));
        v
    }
}

fn show(v: Option<i64>) -> String {
    v.map_or("null (absent)".into(), |v| v.to_string())
}
