//! From a recorded history to what the search needs: client operations paired with
//! their completions, split by key, with failed operations removed, serializable reads
//! excluded unless asked for, and indeterminate operations returning at +infinity.
//! Every malformed operation is refused with the entry and field it concerns.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::model::{Model, Register, RegisterOp, RegisterValue};
use super::search::SearchOp;
use crate::{Consistency, Entry, History, Op, OpType};

/// A malformed operation: `entry` is its position in the history (0-based, in file
/// order), so a caller that knows where entries came from can name the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {entry}: field `{field}`: {reason}")]
pub struct InputError {
    pub entry: usize,
    pub field: &'static str,
    pub reason: String,
}

/// How a checked operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Completion {
    Ok,
    /// Completed `info`: it may have taken effect, at any time after its call.
    Info,
    /// Never completed: as indeterminate as `info`.
    Pending,
}

/// Where an operation is in the history and what it was, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpRef {
    /// Position of the invocation in the history.
    pub entry: usize,
    /// Position of the completion, when there is one.
    pub completion_entry: Option<usize>,
    /// The invocation's `index` field.
    pub index: usize,
    pub process: u64,
    pub f: String,
    /// The operation as the model sees it, e.g. `cas 3 → 4`, `read → null`.
    pub describe: String,
    /// Invocation time.
    pub call: u64,
    /// Completion time; `None` when indeterminate.
    pub ret: Option<u64>,
    pub completion: Completion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What was checked and what was left out, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Operations given to the search.
    pub checked: usize,
    /// Of those, writes and cas that completed `info` or never completed.
    pub indeterminate: usize,
    /// Indeterminate writes and cas whose value no read returned and no cas expected:
    /// taking effect or not cannot matter, so they are left out (exactly).
    pub indeterminate_unobserved: usize,
    /// Operations that completed `fail`: definitely not applied.
    pub failed: usize,
    /// Serializable reads, left out unless asked for.
    pub serializable_reads: usize,
    /// Reads that completed `info` or never completed: they observed nothing.
    pub reads_without_value: usize,
}

/// Where a checked operation came from; the full [`OpRef`] is only built for the
/// operations a report names, not for every operation checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub entry: usize,
    pub completion_entry: Option<usize>,
    pub completion: Completion,
}

/// One key's operations, in invocation order, and where each came from.
#[derive(Debug, Clone)]
pub struct KeyOps {
    pub key: String,
    pub ops: Vec<SearchOp<RegisterOp>>,
    pub origins: Vec<Origin>,
}

impl KeyOps {
    /// The operation at position `i`, for a report.
    pub fn op_ref(&self, history: &History, i: usize) -> OpRef {
        let origin = self.origins[i];
        let op = match history.entries.get(origin.entry) {
            Some(Entry::Op(op)) => Some(op),
            _ => None,
        };
        let search = &self.ops[i];
        OpRef {
            entry: origin.entry,
            completion_entry: origin.completion_entry,
            index: op.map_or(origin.entry, |o| o.index),
            process: op.map_or(0, |o| o.process),
            f: op.map_or_else(String::new, |o| o.f.clone()),
            describe: Register.describe_op(&search.op),
            call: search.call,
            ret: (!search.indeterminate).then_some(search.ret),
            completion: origin.completion,
            node: op.and_then(|o| o.node.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub keys: Vec<KeyOps>,
    pub counts: Counts,
}

fn value_of(v: &Value, entry: usize, field: &'static str) -> Result<RegisterValue, InputError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| InputError {
            entry,
            field,
            reason: format!("{n} is not a 64-bit integer"),
        }),
        other => Err(InputError {
            entry,
            field,
            reason: format!("expected an integer or null, got {other}"),
        }),
    }
}

fn register_op(
    invoke: &Op,
    entry: usize,
    read_value: Option<&Value>,
) -> Result<RegisterOp, InputError> {
    match invoke.f.as_str() {
        "read" => Ok(RegisterOp::Read(match read_value {
            Some(v) => value_of(v, entry, "value")?,
            None => None,
        })),
        "write" => Ok(RegisterOp::Write(value_of(&invoke.value, entry, "value")?)),
        "cas" => match &invoke.value {
            Value::Array(pair) if pair.len() == 2 => Ok(RegisterOp::Cas(
                value_of(&pair[0], entry, "value")?,
                value_of(&pair[1], entry, "value")?,
            )),
            other => Err(InputError {
                entry,
                field: "value",
                reason: format!("a cas carries [expected, new], got {other}"),
            }),
        },
        other => Err(InputError {
            entry,
            field: "f",
            reason: format!("the register model knows read, write and cas, not {other:?}"),
        }),
    }
}

struct Open<'a> {
    entry: usize,
    op: &'a Op,
}

/// Pairs, validates and splits `history` for the register model.
pub fn prepare(history: &History, include_serializable: bool) -> Result<Prepared, InputError> {
    let mut open: HashMap<u64, Open<'_>> = HashMap::new();
    // (invoke, completion) in invocation order.
    let mut pairs: Vec<(Open<'_>, Option<(usize, &Op)>)> = Vec::new();
    let mut slot_of: HashMap<u64, usize> = HashMap::new();
    for (entry, e) in history.entries.iter().enumerate() {
        let Entry::Op(op) = e else { continue };
        if op.r#type == OpType::Invoke {
            if let Some(prev) = open.get(&op.process) {
                return Err(InputError {
                    entry,
                    field: "process",
                    reason: format!(
                        "process {} invokes again before its operation at entry {} completed",
                        op.process, prev.entry
                    ),
                });
            }
            register_op(op, entry, None)?;
            open.insert(op.process, Open { entry, op });
            slot_of.insert(op.process, pairs.len());
            pairs.push((Open { entry, op }, None));
            continue;
        }
        let Some(inv) = open.remove(&op.process) else {
            return Err(InputError {
                entry,
                field: "type",
                reason: format!(
                    "process {} completes ({}) an operation it never invoked",
                    op.process,
                    op.r#type.name()
                ),
            });
        };
        if op.f != inv.op.f {
            return Err(InputError {
                entry,
                field: "f",
                reason: format!(
                    "completion is {:?} but the invocation at entry {} is {:?}",
                    op.f, inv.entry, inv.op.f
                ),
            });
        }
        if op.key != inv.op.key {
            return Err(InputError {
                entry,
                field: "key",
                reason: format!(
                    "completion is for key {:?} but the invocation at entry {} is for {:?}",
                    op.key, inv.entry, inv.op.key
                ),
            });
        }
        if op.time < inv.op.time {
            return Err(InputError {
                entry,
                field: "time",
                reason: format!(
                    "completion at {} ns is before its invocation at {} ns",
                    op.time, inv.op.time
                ),
            });
        }
        let slot = slot_of[&op.process];
        pairs[slot].1 = Some((entry, op));
    }

    let mut counts = Counts::default();
    let mut by_key: BTreeMap<String, KeyOps> = BTreeMap::new();
    for (inv, done) in &pairs {
        let outcome = done.map(|(_, op)| op.r#type);
        if outcome == Some(OpType::Fail) {
            counts.failed += 1;
            continue;
        }
        let is_read = inv.op.f == "read";
        if is_read && outcome != Some(OpType::Ok) {
            counts.reads_without_value += 1;
            continue;
        }
        let consistency = done.and_then(|(_, c)| c.consistency).or(inv.op.consistency);
        if is_read && consistency == Some(Consistency::Serializable) && !include_serializable {
            counts.serializable_reads += 1;
            continue;
        }
        let (entry, op) = (inv.entry, inv.op);
        let read_value = done.map(|(_, c)| &c.value);
        let model_op = register_op(op, done.map_or(entry, |(e, _)| e), read_value)?;
        let completion = match outcome {
            Some(OpType::Ok) => Completion::Ok,
            Some(_) => Completion::Info,
            None => Completion::Pending,
        };
        let indeterminate = completion != Completion::Ok;
        let ret = done.filter(|_| !indeterminate).map(|(_, c)| c.time);
        let key = op.key.as_deref().unwrap_or_default();
        if !by_key.contains_key(key) {
            let fresh = KeyOps {
                key: key.to_string(),
                ops: Vec::new(),
                origins: Vec::new(),
            };
            by_key.insert(key.to_string(), fresh);
        }
        let Some(slot) = by_key.get_mut(key) else {
            continue;
        };
        slot.ops.push(SearchOp {
            call: op.time,
            // A determinate return is always before any indeterminate one.
            ret: ret.map_or(u64::MAX, |t| t.min(u64::MAX - 1)),
            indeterminate,
            op: model_op,
        });
        slot.origins.push(Origin {
            entry,
            completion_entry: done.map(|(e, _)| e),
            completion,
        });
    }
    for key in by_key.values_mut() {
        drop_unobserved(key, &mut counts);
        counts.checked += key.ops.len();
        counts.indeterminate += key.ops.iter().filter(|o| o.indeterminate).count();
    }
    Ok(Prepared {
        keys: by_key.into_values().collect(),
        counts,
    })
}

/// Leaves out indeterminate writes and cas whose resulting value nothing observes: no
/// read returned it and no cas expected it. Any linearization that lets such an
/// operation take effect stays valid with it (and the indeterminate cas that saw its
/// value) moved after everything else, where it is unobserved: so whether it took
/// effect cannot change the verdict. Unique written values make this the common case
/// for writes that timed out on a minority.
fn drop_unobserved(key: &mut KeyOps, counts: &mut Counts) {
    let mut observed: HashSet<RegisterValue> = HashSet::new();
    for op in &key.ops {
        match op.op {
            RegisterOp::Read(v) => {
                observed.insert(v);
            }
            RegisterOp::Cas(expected, _) => {
                observed.insert(expected);
            }
            RegisterOp::Write(_) => {}
        }
    }
    let keep: Vec<bool> = key
        .ops
        .iter()
        .map(|op| {
            let result = match op.op {
                RegisterOp::Write(v) | RegisterOp::Cas(_, v) => v,
                RegisterOp::Read(_) => return true,
            };
            !op.indeterminate || observed.contains(&result)
        })
        .collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return;
    }
    counts.indeterminate_unobserved += dropped;
    let mut flags = keep.iter();
    key.ops.retain(|_| *flags.next().unwrap_or(&true));
    let mut flags = keep.iter();
    key.origins.retain(|_| *flags.next().unwrap_or(&true));
}
