//! No lost writes, judged from the recorded history: every write the workload saw
//! acknowledged (`ok`) is read back with its value by the final reads (linearizable
//! Gets the workload records after the heal, once the run reached its `final` phase).
//! Indeterminate writes (`info`) are resolved by the same reads: each took effect or
//! did not, and the verdict says how many of each. A write that ended `fail` and is
//! read back present means a refusal was not one: FAIL too.
//!
//! UNKNOWN, never PASS for want of evidence: when nothing was acknowledged, when a
//! fault was applied but no write was acknowledged while it was in place (loss across
//! the fault is then not shown), or when an acknowledged write was never read back.

use std::collections::BTreeMap;

use rift_history::{History, Nanos, Op, OpType};
use serde_json::Value;

use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{fault_windows, ms};
use crate::scenario::{Status, Verdict};

/// How many keys each kind of evidence lists.
const SHOWN: usize = 10;

pub struct NoLostWrites;

/// When the final reads began: the `final` phase mark, else the last heal.
fn final_from(h: &History) -> Nanos {
    h.phases()
        .find(|p| p.phase == "final")
        .map(|p| p.time)
        .or_else(|| fault_windows(h).iter().filter_map(|w| w.healed).max())
        .unwrap_or(0)
}

/// The last successful final read of each key: (value read, the read's completion).
fn final_reads(h: &History, from: Nanos) -> BTreeMap<String, (Value, Op)> {
    let mut reads = BTreeMap::new();
    for (invoke, done) in h.pairs() {
        if invoke.f != "read" || invoke.time < from {
            continue;
        }
        if let (Some(key), Some(done)) = (&invoke.key, done)
            && done.r#type == OpType::Ok
        {
            reads.insert(key.clone(), (done.value.clone(), done.clone()));
        }
    }
    reads
}

impl HistoryCheck for NoLostWrites {
    fn name(&self) -> String {
        "no-lost-writes".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new("no-lost-writes");
        let windows = fault_windows(h);
        let reads = final_reads(h, final_from(h));
        let mut acked = 0usize;
        let mut acked_in_fault = 0usize;
        let mut lost = Vec::new();
        let mut unread = Vec::new();
        let mut refused_but_present = Vec::new();
        let (mut took_effect, mut did_not, mut unresolved) = (0usize, 0usize, 0usize);
        for (invoke, done) in h.pairs() {
            if invoke.f != "write" {
                continue;
            }
            let Some(key) = &invoke.key else { continue };
            let read = reads.get(key).map(|(value, _)| value);
            let present = read.is_some_and(|r| *r == invoke.value);
            match done.map(|d| d.r#type) {
                Some(OpType::Ok) => {
                    let done = done.expect("matched Some");
                    acked += 1;
                    if windows.iter().any(|w| w.contains(done.time)) {
                        acked_in_fault += 1;
                    }
                    match read {
                        None => unread.push(key.clone()),
                        Some(_) if present => {}
                        Some(r) => lost.push(format!(
                            "{key}: wrote {} through {} (acknowledged at {} ms), final read {}",
                            invoke.value,
                            invoke.node.as_deref().unwrap_or("?"),
                            ms(done.time),
                            if r.is_null() {
                                "absent".to_string()
                            } else {
                                r.to_string()
                            }
                        )),
                    }
                }
                Some(OpType::Fail) if present => refused_but_present.push(format!(
                    "{key}: {} refused ({}) yet read back",
                    invoke.value,
                    done.and_then(|d| d.error.as_deref())
                        .unwrap_or("no error text")
                )),
                Some(OpType::Fail) => {}
                _ => match read {
                    None => unresolved += 1,
                    Some(_) if present => took_effect += 1,
                    Some(_) => did_not += 1,
                },
            }
        }
        v.evidence(format!(
            "{acked} acknowledged writes, {acked_in_fault} of them acknowledged while a fault was in place; {} keys read back after the heal",
            reads.len()
        ));
        v.evidence(format!(
            "indeterminate writes: {took_effect} took effect, {did_not} did not, {unresolved} not read back"
        ));
        for l in lost.iter().take(SHOWN) {
            v.evidence(format!("lost {l}"));
        }
        for r in refused_but_present.iter().take(SHOWN) {
            v.evidence(format!("present after a refusal: {r}"));
        }
        if !lost.is_empty() {
            v.fail(format!(
                "{} of {acked} acknowledged writes lost",
                lost.len()
            ));
        }
        if !refused_but_present.is_empty() {
            v.fail(format!(
                "{} writes reported as refused (fail) took effect",
                refused_but_present.len()
            ));
        }
        if acked == 0 {
            v.unknown("no write was acknowledged: there is nothing whose loss could be judged");
        } else if !windows.is_empty() && acked_in_fault == 0 {
            v.unknown(
                "no write was acknowledged while the fault was in place: that the fault loses no acknowledged write is not shown",
            );
        }
        if !unread.is_empty() {
            v.unknown(format!(
                "{} acknowledged writes were never read back (first: {})",
                unread.len(),
                unread
                    .iter()
                    .take(SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if v.status == Status::Pass {
            v.pass(format!(
                "all {acked} acknowledged writes ({acked_in_fault} during the fault) read back with their values; indeterminate: {took_effect} took effect, {did_not} did not"
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests;
