//! `no-lost-writes`: every acknowledged write is on the primary at the end, judged from
//! the workload's final `read-writes` of each key (the values `rift.writes` holds for
//! it on that primary). Each acknowledged write missing there is named: its value,
//! key, the member that acknowledged it, when, and whether that was during a fault.
//! After a `promote` during an isolation of the primary this FAILS on real MariaDB:
//! what the old primary acknowledged after its replicas were cut off never reached
//! the new one.

use std::collections::{BTreeMap, BTreeSet};

use rift_history::{History, OpType};
use serde_json::Value;

use super::ms;
use crate::scenario::Verdict;
use crate::scenario::check::HistoryCheck;
use crate::scenario::window::fault_windows;

/// Lost writes named one by one in the evidence; the rest are counted.
const MAX_NAMED: usize = 100;

pub struct NoLostWrites;

impl HistoryCheck for NoLostWrites {
    fn name(&self) -> String {
        "no-lost-writes".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let pairs = history.pairs();
        // The last successful final read of each key's writes, and where it was taken.
        let mut finals: BTreeMap<&str, (BTreeSet<i64>, &str)> = BTreeMap::new();
        for (_, done) in &pairs {
            let Some(d) = done else { continue };
            if d.f != "read-writes" || d.r#type != OpType::Ok {
                continue;
            }
            let (Some(key), Some(values)) = (d.key.as_deref(), d.value.as_array()) else {
                continue;
            };
            let set = values.iter().filter_map(Value::as_i64).collect();
            finals.insert(key, (set, d.node.as_deref().unwrap_or("?")));
        }
        for op in history.nemesis().filter(|n| n.f == "promote") {
            v.evidence(format!(
                "promote from {} ms to {} ms: {} -> {}{}",
                ms(op.invoked),
                ms(op.time),
                op.value["old_primary"].as_str().unwrap_or("?"),
                op.value["new_primary"].as_str().unwrap_or("?"),
                op.error
                    .as_deref()
                    .map(|e| format!(" (error: {e})"))
                    .unwrap_or_default()
            ));
        }
        let windows = fault_windows(history);
        let mut acknowledged = 0usize;
        let mut missing = Vec::new();
        let mut unread = BTreeSet::new();
        let (mut info_present, mut info_absent) = (0usize, 0usize);
        for (invoke, done) in &pairs {
            if invoke.f != "write" {
                continue;
            }
            let (Some(key), Some(value)) = (invoke.key.as_deref(), invoke.value.as_i64()) else {
                continue;
            };
            let outcome = done.map(|d| d.r#type);
            let Some((present, primary)) = finals.get(key) else {
                if outcome == Some(OpType::Ok) {
                    unread.insert(key);
                }
                continue;
            };
            match outcome {
                Some(OpType::Ok) => {
                    acknowledged += 1;
                    if !present.contains(&value) {
                        let d = done.expect("ok has a completion");
                        let during = windows
                            .iter()
                            .find(|w| w.contains(d.time))
                            .map(|w| {
                                format!(
                                    "during fault {} ({} ms after it began)",
                                    w.label,
                                    ms(d.time - w.start)
                                )
                            })
                            .unwrap_or_else(|| "outside any fault".into());
                        missing.push(format!(
                            "write of {value} to {key} acknowledged by {} at {} ms, {during}, is missing on {primary}",
                            d.node.as_deref().unwrap_or("?"),
                            ms(d.time)
                        ));
                    }
                }
                Some(OpType::Fail) => {
                    if present.contains(&value) {
                        v.fail(format!("write of {value} to {key} failed (definitely not applied) but {primary} has it"));
                    }
                }
                _ => {
                    if present.contains(&value) {
                        info_present += 1;
                    } else {
                        info_absent += 1;
                    }
                }
            }
        }
        v.evidence(format!(
            "indeterminate writes: {info_present} took effect on the final primary, {info_absent} did not"
        ));
        for key in &unread {
            v.unknown(format!(
                "no successful final read of the writes of {key}: its writes cannot be judged"
            ));
        }
        if acknowledged == 0 && unread.is_empty() {
            v.unknown("no acknowledged write was read back");
            return v;
        }
        let primaries: BTreeSet<&str> = finals.values().map(|(_, p)| *p).collect();
        let primary = primaries.into_iter().collect::<Vec<_>>().join(", ");
        if missing.is_empty() {
            v.pass(format!(
                "all {acknowledged} acknowledged writes are on {primary}, the primary at the end"
            ));
        } else {
            let summary = format!(
                "{} of {acknowledged} acknowledged writes are missing on {primary}, the primary at the end",
                missing.len()
            );
            for m in missing.iter().take(MAX_NAMED) {
                v.evidence(format!("lost: {m}"));
            }
            if missing.len() > MAX_NAMED {
                v.evidence(format!(
                    "lost: {} more (every one is in history.jsonl)",
                    missing.len() - MAX_NAMED
                ));
            }
            v.fail(summary);
        }
        v
    }
}
