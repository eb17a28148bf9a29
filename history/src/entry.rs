//! The four kinds of history entry and their JSON shapes.
//!
//! A line is told apart by its fields, never by position: `phase` marks a phase,
//! `observation` an observation, `"process": "nemesis"` a nemesis operation, and any
//! other line with an integer `process` and a `type` is a client operation.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::Nanos;

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Op(Op),
    Nemesis(NemesisOp),
    Observation(Observation),
    Phase(PhaseMark),
}

impl Entry {
    pub fn index(&self) -> usize {
        match self {
            Entry::Op(e) => e.index,
            Entry::Nemesis(e) => e.index,
            Entry::Observation(e) => e.index,
            Entry::Phase(e) => e.index,
        }
    }

    pub fn time(&self) -> Nanos {
        match self {
            Entry::Op(e) => e.time,
            Entry::Nemesis(e) => e.time,
            Entry::Observation(e) => e.time,
            Entry::Phase(e) => e.time,
        }
    }

    pub(crate) fn set_index(&mut self, index: usize) {
        match self {
            Entry::Op(e) => e.index = index,
            Entry::Nemesis(e) => e.index = index,
            Entry::Observation(e) => e.index = index,
            Entry::Phase(e) => e.index = index,
        }
    }
}

/// How an operation ended, or that it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// Took effect.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// Indeterminate: may take effect at any later time, or never.
    Info,
}

impl OpType {
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// The consistency a read asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Linearizable,
    Serializable,
}

/// A client operation: its invocation or its completion.
///
/// `value`: a read's invoke has `null`, its completion the value read (`null` for
/// absent); a write carries its value; a cas `[expected, new]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    #[serde(default)]
    pub index: usize,
    pub time: Nanos,
    pub process: u64,
    #[serde(rename = "type")]
    pub r#type: OpType,
    pub f: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "key_as_string"
    )]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    /// The member the client talked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Why a `fail` or `info` completion ended that way, as the client said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// An invocation at `time` (index is assigned when recorded).
    pub fn invoke(time: Nanos, process: u64, f: &str, key: Option<&str>, value: Value) -> Self {
        Op {
            index: 0,
            time,
            process,
            r#type: OpType::Invoke,
            f: f.to_string(),
            key: key.map(str::to_string),
            value,
            node: None,
            consistency: None,
            error: None,
        }
    }

    /// The completion of this invocation, at `time`, with `outcome` and `value`.
    pub fn complete(&self, time: Nanos, outcome: OpType, value: Value) -> Self {
        Op {
            index: 0,
            time,
            r#type: outcome,
            value,
            error: None,
            ..self.clone()
        }
    }

    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

fn key_as_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    // Other tools key their histories by integers (Jepsen's independent keys).
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// The nemesis's process id in the JSON: always the string `"nemesis"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NemesisProcess;

impl Serialize for NemesisProcess {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("nemesis")
    }
}

impl<'de> Deserialize<'de> for NemesisProcess {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "nemesis" {
            Ok(NemesisProcess)
        } else {
            Err(serde::de::Error::custom(format!(
                "process: expected \"nemesis\", got {s:?}"
            )))
        }
    }
}

/// A fault started or stopped (Jepsen: an `info` op of the nemesis process).
///
/// `f` is `start` or `stop`; `value` carries the fault id, the profile and the
/// directed rules as the proxy resolved and applied them; `invoked` is when the
/// request was sent, `time` when the proxy confirmed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisOp {
    #[serde(default)]
    pub index: usize,
    pub time: Nanos,
    pub invoked: Nanos,
    pub process: NemesisProcess,
    #[serde(rename = "type")]
    pub r#type: OpType,
    pub f: String,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NemesisOp {
    pub fn new(invoked: Nanos, time: Nanos, f: &str, value: Value) -> Self {
        NemesisOp {
            index: 0,
            time,
            invoked,
            process: NemesisProcess,
            r#type: OpType::Info,
            f: f.to_string(),
            value,
            error: None,
        }
    }
}

/// One poll of one member: what it said, or why it said nothing. `started` is when
/// the poll began and `time` when it ended; a change first seen in this poll happened
/// in between the previous poll's start and `time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    #[serde(default)]
    pub index: usize,
    pub time: Nanos,
    pub started: Nanos,
    /// What was observed, e.g. `etcd-status`, `kafka-metadata`.
    pub observation: String,
    pub node: String,
    /// The member's answer (leader, term, ISR...); `null` when the poll failed.
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The runner entering a phase (`baseline`, `fault-applied`, `healed`, `final`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseMark {
    #[serde(default)]
    pub index: usize,
    pub time: Nanos,
    pub phase: String,
}
