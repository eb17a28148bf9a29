//! What one run's history proves about a system under a minority partition: a pure
//! function of the history, independent of the system that produced it.
//!
//! The history must hold a register workload (docs/history.md): `write` and `cas`
//! operations with values unique in the run, `read` operations with the value read,
//! each with the `node` the client talked to; one nemesis `start` whose value names
//! the `minority` and `majority` sides, and its `stop`; a `final` phase mark after which
//! every key is read once more with the system's strongest read.
//!
//! Logs are judged too: a `send` (Kafka) is a write of its record; a final read whose
//! value is a log (Kafka's `[[offset, value], ...]`, or MariaDB's `read-writes`: every
//! value the key's table holds) proves lost every acknowledged write of its key that
//! the log lacks.
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
    /// The side of clients whose operations name no member (Kafka's producer talks to
    /// whichever broker leads), read from the fault's rules: the identity `client` is
    /// on the minority when every node it is cut from is on the majority, and the
    /// other way round. `None` when the rules do not place it.
    pub client_on_minority: Option<bool>,
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

/// Which operations of a run belong to one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    /// Every operation.
    All,
    /// Operations on keys with this `/`-separated segment (`one` keeps `r/ab/one/k2`).
    KeySegment(&'static str),
    /// Reads, and writes whose value contains this text (Kafka's records name their
    /// acks level: `-acks1-`).
    WriteValueContains(&'static str),
}

impl Select {
    fn keeps(self, op: &Op) -> bool {
        let Some(key) = op.key.as_deref() else {
            return false;
        };
        match self {
            Select::All => true,
            Select::KeySegment(segment) => key.split('/').any(|s| s == segment),
            Select::WriteValueContains(text) => {
                op.f == "read" || op.value.as_str().is_some_and(|v| v.contains(text))
            }
        }
    }
}

/// Everything the CAP map says about one configuration of one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Which operations were judged.
    pub select: Select,
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
        "send" => Some(&op.value),
        _ => None,
    }
}

/// Evidence for the operations `select` keeps.
pub fn evidence(history: &History, select: Select) -> Evidence {
    let window = window(history);
    let final_mark = history
        .phases()
        .filter(|p| p.phase == "final")
        .map(|p| p.time)
        .last();
    let calls: Vec<Call> = history
        .pairs()
        .into_iter()
        .filter(|(op, _)| select.keeps(op))
        .map(|(invoke, done)| Call { invoke, done })
        .collect();
    let mut ev = Evidence {
        select,
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
        let on_minority = match call.invoke.node.as_deref() {
            Some(node) => window.minority.iter().any(|n| n == node),
            None => match window.client_on_minority {
                Some(side) => side,
                None => continue,
            },
        };
        let local = call.invoke.consistency == Some(Consistency::Serializable);
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
    for call in calls.iter().filter(|c| is_read(c.invoke) && c.ok()) {
        let done = call.done.expect("ok reads are completed");
        let key = call.invoke.key.clone().unwrap_or_default();
        let is_final = final_mark.is_some_and(|m| call.invoke.time >= m);
        if is_final {
            ev.final_reads += 1;
        }
        if let Some(log) = done.value.as_array().filter(|_| is_final) {
            for w in writes.missing_from_log(&key, log, call.invoke.time) {
                let ack = w.done.expect("only acknowledged sends are missing");
                lost.entry(ack.index).or_insert_with(|| LostWrite {
                    index: ack.index,
                    node: w.node(),
                    key: key.clone(),
                    value: w.invoke.value.clone(),
                    read_index: done.index,
                    read_node: call.node(),
                    read_value: Value::String(format!("a log of {} records", log.len())),
                });
            }
            continue;
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

/// A read of one key: its value (`read`), or every value ever written to it
/// (`read-writes`, a final read only).
fn is_read(op: &Op) -> bool {
    matches!(op.f.as_str(), "read" | "read-writes")
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
    let (minority, majority) = (names("minority"), names("majority"));
    let cut_from: Vec<&str> = start.value["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| match (r["from"].as_str(), r["to"].as_str()) {
            (Some(CLIENT), Some(other)) | (Some(other), Some(CLIENT)) => Some(other),
            _ => None,
        })
        .collect();
    let all_in = |side: &[String]| cut_from.iter().all(|n| side.iter().any(|s| s == n));
    let client_on_minority = if cut_from.is_empty() {
        None
    } else if all_in(&majority) {
        Some(true)
    } else if all_in(&minority) {
        Some(false)
    } else {
        None
    };
    Some(Window {
        start: start.time,
        stop: stop.invoked,
        minority,
        majority,
        client_on_minority,
    })
}

/// The identity of clients in a fault's rules (`{"from": "client", ...}`).
const CLIENT: &str = "client";

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

    /// Acknowledged writes of `key`, completed before `began`, whose value is not in
    /// `log` (entries `[offset, value]`).
    fn missing_from_log(&self, key: &str, log: &[Value], began: Nanos) -> Vec<&'a Call<'h>> {
        // Kafka's entries are `[offset, value]`; a table of every value written to a key
        // (MariaDB's `read-writes`) lists the values alone.
        let present: Vec<&Value> = log
            .iter()
            .map(|e| e.as_array().and_then(|a| a.get(1)).unwrap_or(e))
            .collect();
        self.by_key
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|w| w.ok() && w.completed() < began)
            .filter(|w| !present.contains(&&w.invoke.value))
            .collect()
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
