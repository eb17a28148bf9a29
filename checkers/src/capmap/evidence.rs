//! What one run's history proves about a system under a minority partition: a pure
//! function of the history, independent of the system that produced it.
//!
//! The history must hold a register workload (docs/history.md): `write` and `cas`
//! operations with values unique in the run, `read` operations with the value read,
//! each with the `node` the client talked to; one nemesis `start` whose value names
//! the `minority` and `majority` sides, and its `stop`; a `final` phase mark after which
//! every key is read once more with the system's strongest read.
//!
//! Everything here is a witness, never a guess:
//! - a read is **stale** when it returned the value of an acknowledged write `w'` (or
//!   nothing) although another acknowledged write `w` began after `w'` had completed
//!   and completed before the read began: real time proves the register held `w` or
//!   later. Indeterminate (`info`) writes are never used as witnesses;
//! - an acknowledged write is **lost** when a final read of its key, after the heal,
//!   returned a value whose acknowledged write completed before it began (or nothing).

use std::collections::{BTreeMap, HashMap};

use rift_history::{Consistency, History, Nanos, Op, OpType};
use serde::Serialize;
use serde_json::Value;

/// The first fault of the run: when it held and which sides it made.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    /// ns: when the proxy confirmed the fault.
    pub start: Nanos,
    /// ns: when the heal was requested (operations acknowledged before it were
    /// acknowledged while the partition held).
    pub stop: Nanos,
    pub minority: Vec<String>,
    pub majority: Vec<String>,
}

/// Operations of one kind on one side, invoked while the partition held.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Outcomes {
    pub attempted: usize,
    /// Acknowledged before the heal.
    pub ok: usize,
    pub fail: usize,
    /// Indeterminate, or acknowledged only after the heal.
    pub info: usize,
    /// The slowest acknowledgement before the heal, in ms (client clock, ns resolution).
    pub slowest_ok_ms: Option<f64>,
}

/// A read that real time proves stale, with the write that proves it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StaleRead {
    /// History index of the read's completion.
    pub index: usize,
    pub node: Option<String>,
    pub key: String,
    pub value: Value,
    pub consistency: Option<Consistency>,
    /// History index of the acknowledged write that completed before the read began.
    pub witness_index: usize,
    pub witness_value: Value,
    pub final_read: bool,
}

/// An acknowledged write that a final read did not see.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LostWrite {
    /// History index of the write's acknowledgement.
    pub index: usize,
    pub node: Option<String>,
    pub key: String,
    pub value: Value,
    /// The final read that missed it: its index, member and value.
    pub read_index: usize,
    pub read_node: Option<String>,
    pub read_value: Value,
}

/// Everything the CAP map says about one configuration of one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// The configuration's key prefix, when the run held several.
    pub config: Option<String>,
    /// `None`: no fault started and stopped in the history.
    pub window: Option<Window>,
    pub minority_writes: Outcomes,
    pub majority_writes: Outcomes,
    /// Reads that did not ask for a local (serializable) answer.
    pub minority_reads: Outcomes,
    pub majority_reads: Outcomes,
    /// Local (serializable) reads on the minority: served from the member's own state.
    pub minority_local_reads: Outcomes,
    /// Reads during the partition proven stale (final reads are in `lost`).
    pub stale_reads: Vec<StaleRead>,
    /// Acknowledged final reads (after the heal and settle).
    pub final_reads: usize,
    pub lost_writes: Vec<LostWrite>,
    /// Reads that returned a value no write in the history wrote.
    pub foreign_values: usize,
}

/// One operation: its invocation and completion.
struct Call<'a> {
    invoke: &'a Op,
    done: Option<&'a Op>,
}

impl Call<'_> {
    fn ok(&self) -> bool {
        self.done.is_some_and(|d| d.r#type == OpType::Ok)
    }
    fn completed(&self) -> Nanos {
        self.done.map_or(Nanos::MAX, |d| d.time)
    }
    fn node(&self) -> Option<String> {
        self.invoke.node.clone()
    }
}

/// The value a write leaves in its register: a write's value, a cas's new value.
fn written(op: &Op) -> Option<&Value> {
    match op.f.as_str() {
        "write" => Some(&op.value),
        "cas" => op.value.as_array().and_then(|a| a.get(1)),
        _ => None,
    }
}

/// Evidence for the operations whose key starts with `config` (all when `None`).
pub fn evidence(history: &History, config: Option<&str>) -> Evidence {
    let window = window(history);
    let final_mark = history
        .phases()
        .filter(|p| p.phase == "final")
        .map(|p| p.time)
        .last();
    let calls: Vec<Call> = history
        .pairs()
        .into_iter()
        .filter(|(op, _)| {
            op.key
                .as_deref()
                .is_some_and(|k| config.is_none_or(|c| k.starts_with(c)))
        })
        .map(|(invoke, done)| Call { invoke, done })
        .collect();
    let mut ev = Evidence {
        config: config.map(str::to_string),
        window: window.clone(),
        minority_writes: Outcomes::default(),
        majority_writes: Outcomes::default(),
        minority_reads: Outcomes::default(),
        majority_reads: Outcomes::default(),
        minority_local_reads: Outcomes::default(),
        stale_reads: vec![],
        final_reads: 0,
        lost_writes: vec![],
        foreign_values: 0,
    };
    let Some(window) = window else {
        return ev;
    };
    for call in &calls {
        let is_write = written(call.invoke).is_some();
        if !is_write && call.invoke.f != "read" {
            continue;
        }
        if call.invoke.time < window.start || call.invoke.time >= window.stop {
            continue;
        }
        let Some(node) = call.invoke.node.as_deref() else {
            continue;
        };
        let local = call.invoke.consistency == Some(Consistency::Serializable);
        let on_minority = window.minority.iter().any(|n| n == node);
        let side = match (on_minority, is_write, local) {
            (true, true, _) => &mut ev.minority_writes,
            (true, false, true) => &mut ev.minority_local_reads,
            (true, false, false) => &mut ev.minority_reads,
            (false, true, _) => &mut ev.majority_writes,
            (false, false, _) => &mut ev.majority_reads,
        };
        tally(side, call, window.stop);
    }

    let writes = WritesByKey::new(&calls);
    let mut lost: BTreeMap<usize, LostWrite> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.invoke.f == "read" && c.ok()) {
        let done = call.done.expect("ok reads are completed");
        let key = call.invoke.key.clone().unwrap_or_default();
        let is_final = final_mark.is_some_and(|m| call.invoke.time >= m);
        if is_final {
            ev.final_reads += 1;
        }
        let verdict = writes.judge(&key, &done.value, call.invoke.time);
        match verdict {
            ReadJudgement::Foreign => ev.foreign_values += 1,
            ReadJudgement::Current => {}
            ReadJudgement::Stale(overwritten) => {
                if is_final {
                    for w in overwritten {
                        let ack = w.done.expect("witnesses are acknowledged");
                        lost.entry(ack.index).or_insert_with(|| LostWrite {
                            index: ack.index,
                            node: w.node(),
                            key: key.clone(),
                            value: written(w.invoke).cloned().unwrap_or(Value::Null),
                            read_index: done.index,
                            read_node: call.node(),
                            read_value: done.value.clone(),
                        });
                    }
                } else if call.invoke.time >= window.start && call.invoke.time < window.stop {
                    let w = overwritten.last().expect("a stale read has a witness");
                    ev.stale_reads.push(StaleRead {
                        index: done.index,
                        node: call.node(),
                        key: key.clone(),
                        value: done.value.clone(),
                        consistency: call.invoke.consistency,
                        witness_index: w.done.expect("acknowledged").index,
                        witness_value: written(w.invoke).cloned().unwrap_or(Value::Null),
                        final_read: false,
                    });
                }
            }
        }
    }
    ev.lost_writes = lost.into_values().collect();
    ev
}

fn tally(side: &mut Outcomes, call: &Call, stop: Nanos) {
    side.attempted += 1;
    match call.done.map(|d| d.r#type) {
        Some(OpType::Ok) if call.completed() < stop => {
            side.ok += 1;
            let ms = (call.completed() - call.invoke.time) as f64 / 1e6;
            side.slowest_ok_ms = Some(side.slowest_ok_ms.map_or(ms, |s: f64| s.max(ms)));
        }
        Some(OpType::Fail) => side.fail += 1,
        _ => side.info += 1,
    }
}

/// The first fault that started without error, and the stop that followed it.
fn window(history: &History) -> Option<Window> {
    let mut nemesis = history.nemesis().filter(|n| n.error.is_none());
    let start = nemesis.find(|n| n.f == "start")?;
    let stop = nemesis.find(|n| n.f == "stop")?;
    let names = |field: &str| -> Vec<String> {
        start.value[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Window {
        start: start.time,
        stop: stop.invoked,
        minority: names("minority"),
        majority: names("majority"),
    })
}

enum ReadJudgement<'a, 'h> {
    /// Nothing proves it stale.
    Current,
    /// Stale: the acknowledged writes that real time proves it should have seen,
    /// oldest completion first.
    Stale(Vec<&'a Call<'h>>),
    /// No write in the history wrote this value.
    Foreign,
}

/// Every write of each key, to judge reads against.
struct WritesByKey<'a, 'h> {
    /// key -> writes, acknowledged or not.
    by_key: HashMap<&'h str, Vec<&'a Call<'h>>>,
}

impl<'a, 'h> WritesByKey<'a, 'h> {
    fn new(calls: &'a [Call<'h>]) -> Self {
        let mut by_key: HashMap<&'h str, Vec<&'a Call<'h>>> = HashMap::new();
        for call in calls.iter().filter(|c| written(c.invoke).is_some()) {
            if let Some(key) = call.invoke.key.as_deref() {
                by_key.entry(key).or_default().push(call);
            }
        }
        for writes in by_key.values_mut() {
            writes.sort_by_key(|c| c.completed());
        }
        WritesByKey { by_key }
    }

    /// Judges a read of `key` that began at `began` and returned `value`.
    fn judge(&self, key: &str, value: &Value, began: Nanos) -> ReadJudgement<'a, 'h> {
        let writes = self.by_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
        // When the value read was written: `None` for absent (the register's start).
        let source_completed = if value.is_null() {
            Some(0)
        } else {
            match writes.iter().find(|w| written(w.invoke) == Some(value)) {
                None => return ReadJudgement::Foreign,
                // An indeterminate write may take effect at any time: never stale.
                Some(w) if !w.ok() => None,
                Some(w) => Some(w.completed()),
            }
        };
        let Some(source_completed) = source_completed else {
            return ReadJudgement::Current;
        };
        let overwritten: Vec<&Call> = writes
            .iter()
            .copied()
            .filter(|w| {
                w.ok()
                    && w.completed() < began
                    && w.invoke.time > source_completed
                    && written(w.invoke) != Some(value)
            })
            .collect();
        if overwritten.is_empty() {
            ReadJudgement::Current
        } else {
            ReadJudgement::Stale(overwritten)
        }
    }
}
