//! History checks of the register workload besides linearizability, for any system
//! whose scenario isolates a minority: pure functions of the recorded history.
//!
//! - [`MinorityRefusesWrites`] (`minority-refuses-writes`): no write or cas invoked on
//!   a minority member while the fault was in place was acknowledged before the heal.
//! - [`StaleReads`] (`stale-reads`): serializable (plain, unsynced) reads answered by a
//!   minority member during the fault that were definitely stale, counted; a failure
//!   only above `max_stale` when that is set.
//! - [`NoLostWrites`] (`no-lost-writes`): the final reads agree across members, and no
//!   acknowledged write is missing from them (its value overwritten by nothing later).
//!
//! Operations are placed by their `node` (the member the client was bound to) and the
//! fault windows' `minority` as the proxy's rules resolved it.

use std::collections::BTreeMap;

use rift_history::{Consistency, History, Nanos, OpType};
use serde::Deserialize;
use serde_json::Value;

use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{FaultWindow, fault_windows, last_time};
use crate::scenario::{Verdict, window};

/// One register operation with its completion.
#[derive(Debug, Clone)]
struct RegOp {
    entry: usize,
    f: String,
    key: String,
    node: String,
    consistency: Option<Consistency>,
    call: Nanos,
    ret: Option<Nanos>,
    outcome: Option<OpType>,
    /// write: the value; cas: the new value; read: the value read.
    value: Value,
}

impl RegOp {
    fn ok(&self) -> bool {
        self.outcome == Some(OpType::Ok)
    }
    fn is_write(&self) -> bool {
        self.f == "write" || self.f == "cas"
    }
    fn describe(&self) -> String {
        let ret = self
            .ret
            .map_or("never".to_string(), |r| format!("{} ms", window::ms(r)));
        let outcome = self
            .outcome
            .map_or("pending".to_string(), |o| format!("{o:?}").to_lowercase());
        format!(
            "{} {} of {} on {} (entry {}, {} ms → {ret}, {outcome})",
            self.f,
            self.value,
            self.key,
            self.node,
            self.entry,
            window::ms(self.call)
        )
    }
}

fn reg_ops(history: &History) -> Vec<RegOp> {
    history
        .pairs()
        .into_iter()
        .filter(|(inv, _)| matches!(inv.f.as_str(), "read" | "write" | "cas"))
        .map(|(inv, done)| {
            let value = match inv.f.as_str() {
                "cas" => inv.value.get(1).cloned().unwrap_or(Value::Null),
                "write" => inv.value.clone(),
                _ => done.map_or(Value::Null, |d| d.value.clone()),
            };
            RegOp {
                entry: inv.index,
                f: inv.f.clone(),
                key: inv.key.clone().unwrap_or_default(),
                node: inv.node.clone().unwrap_or_default(),
                consistency: inv.consistency.or(done.and_then(|d| d.consistency)),
                call: inv.time,
                ret: done.map(|d| d.time),
                outcome: done.map(|d| d.r#type),
                value,
            }
        })
        .collect()
}

/// Windows that isolated some minority.
fn minority_windows(history: &History) -> Vec<FaultWindow> {
    fault_windows(history)
        .into_iter()
        .filter(|w| !w.minority.is_empty())
        .collect()
}

/// Checks without settings still reject unknown keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// `kind = "minority-refuses-writes"`.
pub struct MinorityRefusesWrites;

impl HistoryCheck for MinorityRefusesWrites {
    fn name(&self) -> String {
        "minority-refuses-writes".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = minority_windows(history);
        if windows.is_empty() {
            v.unknown("no fault isolated a minority in this history");
            return v;
        }
        let last = last_time(history);
        let ops = reg_ops(history);
        let (mut tried, mut refused, mut unknown, mut later, mut majority_acks) = (0, 0, 0, 0, 0);
        for w in &windows {
            let end = w.end_or(last);
            v.evidence(format!(
                "fault {} ({}): minority {} from {} ms to {} ms",
                w.id,
                w.label,
                w.minority.join(", "),
                window::ms(w.start),
                window::ms(end)
            ));
            for op in ops
                .iter()
                .filter(|o| o.is_write() && o.call >= w.start && o.call < end)
            {
                if !w.minority.contains(&op.node) {
                    if op.ok() && op.ret.is_some_and(|r| r < end) {
                        majority_acks += 1;
                    }
                    continue;
                }
                tried += 1;
                match (op.outcome, op.ret) {
                    (Some(OpType::Ok), Some(r)) if r < end => v.fail(format!(
                        "a minority member acknowledged a write during the fault: {}",
                        op.describe()
                    )),
                    (Some(OpType::Ok), _) => later += 1,
                    (Some(OpType::Fail), _) => refused += 1,
                    _ => unknown += 1,
                }
            }
        }
        v.evidence(format!(
            "writes invoked on the minority during the fault: {tried} ({refused} refused, \
             {unknown} indeterminate, {later} acknowledged only after the heal); writes \
             acknowledged by the majority meanwhile: {majority_acks}"
        ));
        if tried == 0 {
            v.unknown("no write was invoked on a minority member during the fault");
        }
        v.pass(format!(
            "no minority member acknowledged a write during the fault ({tried} tried)"
        ));
        v
    }
}

/// `kind = "stale-reads"` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleReadsConfig {
    /// FAIL when more stale reads than this were answered; counted only when absent.
    #[serde(default)]
    pub max_stale: Option<u64>,
}

/// `kind = "stale-reads"`.
pub struct StaleReads(pub StaleReadsConfig);

/// Why `read` is definitely stale: a write acknowledged before the read was called
/// whose value replaced the one read. `None` when it may be fresh.
fn staleness<'a>(read: &RegOp, writes: &[&'a RegOp]) -> Option<&'a RegOp> {
    let producer = writes.iter().find(|w| w.value == read.value);
    writes.iter().copied().find(|u| {
        u.ok()
            && u.value != read.value
            && u.ret.is_some_and(|r| r < read.call)
            && match producer {
                // Absent: any write acknowledged before the read created the key.
                None => read.value.is_null(),
                // The value read was surely in place before `u` replaced it.
                Some(p) => p.ok() && p.ret.is_some_and(|r| r < u.call),
            }
    })
}

impl HistoryCheck for StaleReads {
    fn name(&self) -> String {
        match self.0.max_stale {
            Some(max) => format!("stale-reads (max {max})"),
            None => "stale-reads".into(),
        }
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = minority_windows(history);
        if windows.is_empty() {
            v.unknown("no fault isolated a minority in this history");
            return v;
        }
        let last = last_time(history);
        let ops = reg_ops(history);
        let mut writes: BTreeMap<&str, Vec<&RegOp>> = BTreeMap::new();
        for w in ops.iter().filter(|o| o.is_write()) {
            writes.entry(&w.key).or_default().push(w);
        }
        let (mut answered, mut stale, mut synced) = (0u64, 0u64, 0u64);
        for w in &windows {
            let end = w.end_or(last);
            let on_minority = ops.iter().filter(|o| {
                o.f == "read"
                    && o.ok()
                    && w.minority.contains(&o.node)
                    && o.call >= w.start
                    && o.call < end
            });
            for read in on_minority {
                if read.consistency != Some(Consistency::Serializable) {
                    synced += 1;
                    continue;
                }
                answered += 1;
                let key_writes = writes.get(read.key.as_str()).map_or(&[][..], |w| &w[..]);
                if let Some(u) = staleness(read, key_writes) {
                    stale += 1;
                    if stale <= 5 {
                        v.evidence(format!(
                            "stale: {} read {} after {} was acknowledged",
                            read.node,
                            read.value,
                            u.describe()
                        ));
                    }
                }
            }
        }
        v.evidence(format!(
            "plain reads answered by the minority during the fault: {answered}, {stale} of \
             them stale; linearizable (synced) reads it answered: {synced}"
        ));
        if let Some(max) = self.0.max_stale
            && stale > max
        {
            v.fail(format!(
                "{stale} stale reads on the minority during the fault (max_stale = {max})"
            ));
        }
        if answered == 0 {
            v.unknown("no plain read was answered by a minority member during the fault");
        }
        v.pass(format!(
            "{stale} of {answered} plain reads answered by the minority during the fault were stale"
        ));
        v
    }
}

/// `kind = "no-lost-writes"`.
pub struct NoLostWrites;

impl HistoryCheck for NoLostWrites {
    fn name(&self) -> String {
        "no-lost-writes".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let Some(final_mark) = history
            .phases()
            .filter(|p| p.phase == "final")
            .map(|p| p.time)
            .last()
        else {
            v.unknown("the history has no final phase: no final reads to judge");
            return v;
        };
        let ops = reg_ops(history);
        let mut keys: BTreeMap<&str, (Vec<&RegOp>, Vec<&RegOp>)> = BTreeMap::new();
        for op in &ops {
            let slot = keys.entry(&op.key).or_default();
            if op.is_write() {
                slot.0.push(op);
            } else if op.f == "read" && op.call >= final_mark && op.ok() {
                slot.1.push(op);
            }
        }
        let (mut acked, mut unread) = (0, 0);
        for (key, (writes, finals)) in &keys {
            let ok_writes = writes.iter().filter(|w| w.ok()).count();
            acked += ok_writes;
            let Some(first) = finals.first() else {
                if ok_writes > 0 {
                    unread += 1;
                }
                continue;
            };
            if let Some(other) = finals.iter().find(|r| r.value != first.value) {
                v.fail(format!(
                    "key {key}: members disagree after the heal: {} read {}, {} read {}",
                    first.node, first.value, other.node, other.value
                ));
                continue;
            }
            let value = &first.value;
            let producer = writes.iter().find(|w| &w.value == value);
            for u in writes.iter().filter(|u| u.ok() && &u.value != value) {
                let lost = match producer {
                    // A value no operation wrote (or absence): every acknowledged
                    // write of the key is gone.
                    None => true,
                    Some(p) => p.ok() && p.ret.is_some_and(|r| r < u.call),
                };
                if lost {
                    v.fail(format!(
                        "key {key}: acknowledged {} is lost: the final reads return {value}{}",
                        u.describe(),
                        producer.map_or(" (written by no operation)".to_string(), |p| format!(
                            ", written by {} before it was called",
                            p.describe()
                        ))
                    ));
                }
            }
        }
        v.evidence(format!(
            "{acked} acknowledged writes/cas on {} keys checked against the final reads",
            keys.len()
        ));
        if unread > 0 {
            v.unknown(format!(
                "{unread} key(s) with acknowledged writes have no successful final read"
            ));
        } else if acked == 0 {
            v.unknown("no write was acknowledged: nothing could be lost");
        }
        v.pass(format!("no acknowledged write lost ({acked} checked)"));
        v
    }
}

#[cfg(test)]
mod tests;
