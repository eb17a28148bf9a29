//! `one-availability`: at consistency ONE the cluster stays available on both sides of
//! a partition. Every ONE write and read invoked while the fault was in place (and
//! answered before the heal) through any node must be acknowledged: the coordinator is
//! itself a replica (RF 3 on 3 nodes), so its own replica is enough.
//!
//! Reads through the minority may be stale; each stale read is counted with its
//! *witness*: an acknowledged write to the same key that completed before the read was
//! invoked and was invoked after the write of the value the read returned had
//! completed (so no order of the two writes lets the read's value be the latest).
//!
//! PASS: both sides had ONE writes and reads during the fault, all acknowledged.
//! FAIL: one of them was not (named, with Cassandra's error).
//! UNKNOWN: no fault, or a side had no ONE write or no ONE read during it.

use rift_history::{History, OpType};

use super::{RegOp, register_ops, seconds};
use crate::cassandra::workload::Level;
use crate::scenario::Verdict;
use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{fault_windows, last_time};

pub struct OneAvailability;

/// How many failing operations are named before the rest are only counted.
const NAMED: usize = 5;

impl HistoryCheck for OneAvailability {
    fn name(&self) -> String {
        "one-availability".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(history);
        if windows.is_empty() {
            v.unknown("no fault in this history");
            return v;
        }
        let ops: Vec<RegOp> = register_ops(history)
            .into_iter()
            .filter(|o| o.level == Level::One && !o.is_final)
            .collect();
        let last = last_time(history);
        for w in &windows {
            let inside: Vec<&RegOp> = ops.iter().filter(|o| o.inside(w, last)).collect();
            for (side, nodes) in [("minority", &w.minority), ("majority", &w.majority)] {
                let on: Vec<&RegOp> = inside
                    .iter()
                    .copied()
                    .filter(|o| nodes.contains(&o.node))
                    .collect();
                let count = |f: &str| {
                    let all: Vec<_> = on.iter().filter(|o| o.f == f).collect();
                    let ok = all.iter().filter(|o| o.outcome == OpType::Ok).count();
                    (ok, all.len())
                };
                let (wok, wall) = count("write");
                let (rok, rall) = count("read");
                v.evidence(format!(
                    "fault {} ({}): {side} {}: ONE writes {wok}/{wall} acknowledged, ONE reads \
                     {rok}/{rall} answered",
                    w.id,
                    w.label,
                    nodes.join(",")
                ));
                let refused: Vec<_> = on.iter().filter(|o| o.outcome != OpType::Ok).collect();
                for o in refused.iter().take(NAMED) {
                    v.fail(format!(
                        "a ONE {} through {} ({side}) was not acknowledged during the fault: {}{}",
                        o.f,
                        o.node,
                        o.describe(),
                        o.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ));
                }
                if refused.len() > NAMED {
                    v.evidence(format!(
                        "... and {} more not acknowledged",
                        refused.len() - NAMED
                    ));
                }
                if wall == 0 || rall == 0 {
                    v.unknown(format!(
                        "no ONE {} through the {side} ({}) during fault {}",
                        if wall == 0 { "write" } else { "read" },
                        nodes.join(","),
                        w.id
                    ));
                }
                let stale = stale_reads(&ops, &on);
                v.evidence(format!(
                    "{side}: {} of {rok} answered ONE reads were stale",
                    stale.len()
                ));
                for (read, witness) in stale.iter().take(NAMED) {
                    v.evidence(format!(
                        "  stale: read {} via {} at {}; witness: write {} via {} acknowledged at {}",
                        read.value.map_or("null".into(), |x| x.to_string()),
                        read.node,
                        seconds(read.invoke),
                        witness.value.map_or("null".into(), |x| x.to_string()),
                        witness.node,
                        witness.complete.map_or("?".into(), seconds),
                    ));
                }
            }
        }
        v.pass("ONE writes and reads were acknowledged on both sides of every fault");
        v
    }
}

/// The answered reads among `reads` that a completed write proves stale, each with
/// that write. `all` is every ONE operation of the run (writes anywhere count).
pub fn stale_reads<'a>(all: &'a [RegOp], reads: &[&'a RegOp]) -> Vec<(&'a RegOp, &'a RegOp)> {
    let mut out = Vec::new();
    for r in reads
        .iter()
        .filter(|o| o.f == "read" && o.outcome == OpType::Ok)
    {
        // When the write of the value read completed (None: nothing written, or the
        // value is absent, which every write supersedes).
        let source_done = r.value.and_then(|val| {
            all.iter()
                .find(|w| w.key == r.key && w.f != "read" && w.value == Some(val))
                .and_then(|w| w.complete)
        });
        let witness = all.iter().find(|w| {
            w.key == r.key
                && w.f != "read"
                && w.outcome == OpType::Ok
                && w.value != r.value
                && w.complete.is_some_and(|c| c < r.invoke)
                && match (r.value, source_done) {
                    (None, _) => true,
                    (Some(_), Some(done)) => w.invoke > done,
                    // The value's write never completed: it may have landed any time.
                    (Some(_), None) => false,
                }
        });
        if let Some(w) = witness {
            out.push((*r, w));
        }
    }
    out
}
