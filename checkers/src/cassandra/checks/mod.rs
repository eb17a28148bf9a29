//! Cassandra checks: pure functions of the recorded history of the register workload
//! ([`super::workload`]), judged per configuration (the key's prefix) and per side of
//! each fault (the nemesis `start`'s `minority` and `majority`, computed from the
//! proxy's rules on the storage endpoint).
//!
//! - [`one`] (`one-availability`): at ONE, writes and reads through every node stay
//!   acknowledged during the fault, on both sides; stale reads on the minority are
//!   counted, each with the write that proves it stale.
//! - [`quorum`] (`quorum-refusal`): at QUORUM, nothing is acknowledged through a
//!   minority node during the fault (each refusal named: Unavailable, WriteTimeout,
//!   ReadTimeout, client timeout), while the majority side keeps acknowledging.
//! - [`lost`] (`no-lost-writes`): after the heal, every node's final read of a key
//!   agrees, and no acknowledged write is lost: none was acknowledged after the
//!   winning write had completed. Writes that last-write-wins discarded (acknowledged
//!   on one side while the other side wrote the key too) are named.
//! - `linearizable`: the `lwt/` keys (Paxos) through rift-history's linearizability
//!   search, with the register workload's checker (`crate::register::linearizable`) limited to
//!   those keys.

pub mod lost;
pub mod one;
pub mod quorum;

use rift_history::{History, Nanos, OpType};
use serde::Deserialize;
use serde_json::Value;

use super::workload::Level;
use crate::register::linearizable::{Linearizable, LinearizableConfig};
use crate::scenario::ScenarioError;
use crate::scenario::check::CheckerImpl;
use crate::scenario::spec::CheckerSpec;
use crate::scenario::window::FaultWindow;

pub const CHECKERS: &[&str] = &[
    "one-availability",
    "quorum-refusal",
    "no-lost-writes",
    "linearizable",
];

/// Builds the check of a `[[checker]]` table.
pub fn build(spec: &CheckerSpec) -> Result<CheckerImpl, ScenarioError> {
    Ok(match spec.kind.as_str() {
        "one-availability" => {
            let _: NoSettings = spec.parse()?;
            CheckerImpl::History(Box::new(one::OneAvailability))
        }
        "quorum-refusal" => {
            let _: NoSettings = spec.parse()?;
            CheckerImpl::History(Box::new(quorum::QuorumRefusal))
        }
        "no-lost-writes" => {
            let _: NoSettings = spec.parse()?;
            CheckerImpl::History(Box::new(lost::NoLostWrites))
        }
        "linearizable" => {
            let mut config: LinearizableConfig = spec.parse()?;
            // Only Paxos promises linearizability: ONE and QUORUM keys are left out.
            if config.key_prefix.is_none() {
                config.key_prefix = Some(Level::Lwt.prefix().to_string());
            }
            CheckerImpl::History(Box::new(Linearizable::new(config.validate(&spec.origin)?)))
        }
        other => {
            return Err(ScenarioError::Field {
                origin: spec.origin.clone(),
                field: "kind".into(),
                value: other.to_string(),
                reason: format!("unknown Cassandra checker (known: {})", CHECKERS.join(", ")),
            });
        }
    })
}

/// Checkers without settings still reject unknown keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

/// One register operation of the workload: its invocation and completion together.
#[derive(Debug, Clone)]
pub struct RegOp {
    /// History index of the invocation (and of the completion, when there is one).
    pub entry: usize,
    pub done_entry: Option<usize>,
    pub key: String,
    pub level: Level,
    /// `read`, `write` or `cas`.
    pub f: String,
    pub node: String,
    pub invoke: Nanos,
    /// Completion time; `None` when it never completed.
    pub complete: Option<Nanos>,
    /// `Ok`, `Fail` or `Info` (`Info` too when it never completed).
    pub outcome: OpType,
    /// A read's value (on `ok`), or the value a write or cas stores.
    pub value: Option<i64>,
    pub error: Option<String>,
    /// Invoked after the `final` phase mark: a final read.
    pub is_final: bool,
}

impl RegOp {
    /// `f value on node (t0 → t1)`, with times in seconds since the run started.
    pub fn describe(&self) -> String {
        let v = self.value.map_or("null".into(), |v| v.to_string());
        let done = self.complete.map_or("never completed".to_string(), seconds);
        format!(
            "{} {} {v} via {} ({} → {done}, entry {})",
            self.outcome_name(),
            self.f,
            self.node,
            seconds(self.invoke),
            self.entry
        )
    }

    fn outcome_name(&self) -> &'static str {
        match self.outcome {
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            _ => "info",
        }
    }

    /// Invoked while `w` was surely in place, and completed before it ended.
    pub fn inside(&self, w: &FaultWindow, last: Nanos) -> bool {
        let end = w.end_or(last);
        self.invoke >= w.start && self.complete.is_none_or(|c| c <= end) && self.invoke < end
    }
}

/// Seconds since the run started, at millisecond precision (the history has ns).
pub fn seconds(ns: Nanos) -> String {
    format!("{}.{:03} s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
}

/// The workload's register operations, in invocation order. Keys without a
/// configuration prefix (other workloads) are left out.
pub fn register_ops(history: &History) -> Vec<RegOp> {
    let final_mark = history
        .phases()
        .find(|p| p.phase == "final")
        .map(|p| p.time);
    let mut out = Vec::new();
    for (inv, done) in history.pairs() {
        let Some(key) = inv.key.as_deref() else {
            continue;
        };
        let Some(level) = Level::of_key(key) else {
            continue;
        };
        if !matches!(inv.f.as_str(), "read" | "write" | "cas") {
            continue;
        }
        let stored = |v: &Value| match inv.f.as_str() {
            "cas" => v.get(1).and_then(Value::as_i64),
            _ => v.as_i64(),
        };
        let outcome = done.map_or(OpType::Info, |d| d.r#type);
        let value = match inv.f.as_str() {
            "read" => done
                .filter(|d| d.r#type == OpType::Ok)
                .and_then(|d| d.value.as_i64()),
            _ => stored(&inv.value),
        };
        out.push(RegOp {
            entry: inv.index,
            done_entry: done.map(|d| d.index),
            key: key.to_string(),
            level,
            f: inv.f.clone(),
            node: inv.node.clone().unwrap_or_default(),
            invoke: inv.time,
            complete: done.map(|d| d.time),
            outcome,
            value,
            error: done.and_then(|d| d.error.clone()),
            is_final: final_mark.is_some_and(|m| inv.time >= m),
        });
    }
    out
}

#[cfg(test)]
mod tests;
