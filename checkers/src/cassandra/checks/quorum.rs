//! `quorum-refusal`: at consistency QUORUM (and for lightweight transactions, whose
//! Paxos rounds need a quorum too) a node cut off from a quorum of replicas acknowledges
//! nothing, while the majority side goes on. Judged per configuration on the `quorum/`
//! and `lwt/` operations invoked while a fault was in place (and answered before the
//! heal):
//! - through a minority node: none may be acknowledged; each refusal is named by what
//!   Cassandra (or the client) said: UnavailableException (the coordinator's failure
//!   detector already counted too few live replicas and refused before writing),
//!   WriteTimeout / ReadTimeout (it tried, too few replicas answered within the
//!   server's timeout), or the client's own deadline.
//! - through a majority node: at least one must be acknowledged.
//!
//! PASS: both hold for every fault and configuration. FAIL: a minority node
//! acknowledged an operation (named), or the majority acknowledged none. UNKNOWN: no
//! fault, no `quorum/` or `lwt/` operation in the run, or none on one of the sides
//! during a fault.

use std::collections::BTreeMap;

use rift_history::{History, Nanos, OpType};

use super::{RegOp, register_ops, seconds};
use crate::cassandra::cql::refusal_kind;
use crate::cassandra::workload::Level;
use crate::scenario::Verdict;
use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{FaultWindow, fault_windows, last_time, ms};

pub struct QuorumRefusal;

impl HistoryCheck for QuorumRefusal {
    fn name(&self) -> String {
        "quorum-refusal".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(history);
        if windows.is_empty() {
            v.unknown("no fault in this history");
            return v;
        }
        let all: Vec<RegOp> = register_ops(history)
            .into_iter()
            .filter(|o| o.level != Level::One && !o.is_final)
            .collect();
        if all.is_empty() {
            v.unknown("no quorum/ or lwt/ operation in this history");
            return v;
        }
        let last = last_time(history);
        for level in [Level::Quorum, Level::Lwt] {
            let ops: Vec<&RegOp> = all.iter().filter(|o| o.level == level).collect();
            if !ops.is_empty() {
                judge(&mut v, &ops, &windows, last, level_name(level));
            }
        }
        v.pass("QUORUM and LWT were refused through the minority and acknowledged by the majority");
        v
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::One => "ONE",
        Level::Quorum => "QUORUM",
        Level::Lwt => "LWT",
    }
}

/// Judges the operations of one configuration (`name`: QUORUM or LWT) in every window.
fn judge(v: &mut Verdict, ops: &[&RegOp], windows: &[FaultWindow], last: Nanos, name: &str) {
    for w in windows {
        let inside: Vec<&RegOp> = ops.iter().copied().filter(|o| o.inside(w, last)).collect();
        let (minority, majority): (Vec<&RegOp>, Vec<&RegOp>) = inside
            .iter()
            .copied()
            .filter(|o| w.minority.contains(&o.node) || w.majority.contains(&o.node))
            .partition(|o| w.minority.contains(&o.node));
        if minority.is_empty() {
            v.unknown(format!(
                "no {name} operation through the minority ({}) during fault {}",
                w.minority.join(","),
                w.id
            ));
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &minority {
            if o.outcome == OpType::Ok {
                v.fail(format!(
                    "minority node {} acknowledged a {name} {}: {}",
                    o.node,
                    o.f,
                    o.describe()
                ));
            } else {
                let kind = o.error.as_deref().map_or("no answer", refusal_kind);
                *kinds.entry(kind).or_default() += 1;
            }
        }
        let refused: usize = kinds.values().sum();
        v.evidence(format!(
            "fault {} ({}): minority {}: {refused} of {} {name} operations refused ({})",
            w.id,
            w.label,
            w.minority.join(","),
            minority.len(),
            kinds
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some(first) = minority
            .iter()
            .filter(|o| o.outcome != OpType::Ok)
            .filter_map(|o| o.complete.map(|c| (c, *o)))
            .min_by_key(|(c, _)| *c)
        {
            v.timing(
                format!(
                    "first minority {name} refusal ({}, {} after the fault; ms resolution)",
                    first.1.error.as_deref().map_or("no answer", refusal_kind),
                    seconds(first.0.saturating_sub(w.start))
                ),
                ms(first.0),
            );
        }
        let acked = majority.iter().filter(|o| o.outcome == OpType::Ok).count();
        v.evidence(format!(
            "fault {}: majority {}: {acked} of {} {name} operations acknowledged",
            w.id,
            w.majority.join(","),
            majority.len()
        ));
        if majority.is_empty() {
            v.unknown(format!(
                "no {name} operation through the majority ({}) during fault {}",
                w.majority.join(","),
                w.id
            ));
        } else if acked == 0 {
            v.fail(format!(
                "the majority side ({}) acknowledged none of its {} {name} operations \
                     during fault {}",
                w.majority.join(","),
                majority.len(),
                w.id
            ));
        }
    }
}
