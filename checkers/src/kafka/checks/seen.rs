//! What a Kafka run's history says, for the checkers: the sends to a topic with their
//! acks level and outcome, the partitions' logs as read back after the heal, and the
//! poller's view of a topic's partitions and of the KRaft quorum.

use std::collections::BTreeMap;

use rift_history::{History, Nanos, OpType};
use serde_json::Value;

use crate::kafka::client::{Acks, PartitionView};
use crate::kafka::ops::acks_of;
use crate::scenario::window::{FaultWindow, Interval, first_seen};

/// The poller's metadata observation (`crate::kafka::observe`).
pub const METADATA: &str = "kafka-metadata";
/// The poller's DescribeQuorum observation.
pub const QUORUM: &str = "kafka-quorum";

/// One `send` of the history: its invocation and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOp {
    pub partition: i32,
    /// From the value ([`crate::kafka::ops::payload`]); `None` for foreign values.
    pub acks: Option<Acks>,
    pub payload: String,
    pub invoked: Nanos,
    /// `None`: never completed (indeterminate).
    pub done: Option<Nanos>,
    pub outcome: OpType,
    pub offset: Option<i64>,
    pub error: Option<String>,
}

impl SendOp {
    pub fn is_ok(&self) -> bool {
        self.outcome == OpType::Ok
    }

    /// Invoked after the fault was in place and answered before its heal was asked.
    pub fn within(&self, w: &FaultWindow) -> bool {
        self.invoked >= w.start && self.done.is_some_and(|d| w.end.is_none_or(|end| d < end))
    }

    /// Refused with NOT_ENOUGH_REPLICAS (definitely not appended).
    pub fn not_enough_replicas(&self) -> bool {
        self.outcome == OpType::Fail
            && self
                .error
                .as_deref()
                .is_some_and(|e| e.contains("NotEnoughReplicas"))
    }

    /// The error's name without the `acks=...: ` prefix the recorder adds.
    pub fn error_name(&self) -> String {
        let e = self.error.as_deref().unwrap_or("no answer");
        e.split_once(": ").map_or(e, |(_, name)| name).to_string()
    }
}

fn split_key(key: &str) -> Option<(&str, i32)> {
    let (topic, partition) = key.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

/// Every `send` to `topic`, in invocation order.
pub fn sends(h: &History, topic: &str) -> Vec<SendOp> {
    h.pairs()
        .into_iter()
        .filter(|(i, _)| i.f == "send")
        .filter_map(|(invoke, done)| {
            let (t, partition) = split_key(invoke.key.as_deref()?)?;
            if t != topic {
                return None;
            }
            let payload = invoke.value.as_str().unwrap_or_default().to_string();
            let outcome = done.map_or(OpType::Info, |d| d.r#type);
            Some(SendOp {
                partition,
                acks: acks_of(&payload),
                invoked: invoke.time,
                done: done.map(|d| d.time),
                outcome,
                offset: done
                    .filter(|d| d.r#type == OpType::Ok)
                    .and_then(|d| d.value[0].as_i64()),
                error: done.and_then(|d| d.error.clone()),
                payload,
            })
        })
        .collect()
}

/// The last `read` of each partition of `topic`: its log, or why it could not be read.
pub fn final_reads(h: &History, topic: &str) -> BTreeMap<i32, Result<Vec<(i64, String)>, String>> {
    let mut reads = BTreeMap::new();
    for (invoke, done) in h.pairs().into_iter().filter(|(i, _)| i.f == "read") {
        let Some((t, partition)) = invoke.key.as_deref().and_then(split_key) else {
            continue;
        };
        if t != topic {
            continue;
        }
        let result = match done {
            Some(d) if d.r#type == OpType::Ok => {
                serde_json::from_value::<Vec<(i64, String)>>(d.value.clone())
                    .map_err(|e| format!("the read's value is not a log: {e}"))
            }
            Some(d) => Err(d
                .error
                .clone()
                .unwrap_or_else(|| d.r#type.name().to_string())),
            None => Err("the read never completed".to_string()),
        };
        reads.insert(partition, result);
    }
    reads
}

/// `topic`'s partitions in one metadata observation's value.
pub fn topic_partitions(v: &Value, topic: &str) -> Option<Vec<PartitionView>> {
    let t = v["topics"]
        .as_array()?
        .iter()
        .find(|t| t["name"].as_str() == Some(topic))?;
    serde_json::from_value(t["partitions"].clone()).ok()
}

/// One partition of `topic` in a metadata observation's value.
pub fn partition(v: &Value, topic: &str, partition: i32) -> Option<PartitionView> {
    topic_partitions(v, topic)?
        .into_iter()
        .find(|p| p.partition == partition)
}

/// The newest observation before `at` (from any broker) in which every partition of
/// `topic` has a leader: the topic as it stood when a fault began.
pub fn partitions_at(h: &History, topic: &str, at: Nanos) -> Option<Vec<PartitionView>> {
    h.observations()
        .filter(|o| o.observation == METADATA && o.error.is_none() && o.time <= at)
        .filter_map(|o| topic_partitions(&o.value, topic))
        .filter(|p| !p.is_empty() && p.iter().all(|p| p.leader >= 0))
        .last()
}

/// The first poll of any of `nodes` (started at or after `from`, ended by `until`)
/// in which `holds` is true of the observation `kind`: the earliest such interval.
pub fn first_seen_any(
    h: &History,
    nodes: &[String],
    kind: &str,
    from: Nanos,
    until: Nanos,
    holds: impl Fn(&Value) -> bool,
) -> Option<(String, Interval)> {
    nodes
        .iter()
        .filter_map(|n| first_seen(h, n, kind, from, until, &holds).map(|i| (n.clone(), i)))
        .min_by_key(|(_, i)| i.hi)
}

/// Number of successful polls of `node` of kind `kind` that started in `[from, until)`.
pub fn answered(h: &History, node: &str, kind: &str, from: Nanos, until: Nanos) -> usize {
    h.observations()
        .filter(|o| o.node == node && o.observation == kind && o.error.is_none())
        .filter(|o| o.started >= from && o.started < until)
        .count()
}

/// The active controller just before `at`: among the last quorum answers of each
/// node, the one leading with the highest epoch (name, epoch).
pub fn controller_at(h: &History, at: Nanos) -> Option<(String, i64)> {
    let mut last: BTreeMap<&str, &Value> = BTreeMap::new();
    for o in h.observations() {
        if o.observation == QUORUM && o.error.is_none() && o.time <= at {
            last.insert(o.node.as_str(), &o.value);
        }
    }
    last.into_iter()
        .filter(|(_, v)| v["leads"].as_bool() == Some(true))
        .filter_map(|(n, v)| Some((n.to_string(), v["leader_epoch"].as_i64()?)))
        .max_by_key(|(_, e)| *e)
}

/// Whether `topic` appears in any broker's metadata observed in `[from, until)`:
/// the first poll that lists it.
pub fn topic_listed(
    h: &History,
    topic: &str,
    from: Nanos,
    until: Nanos,
) -> Option<(String, Nanos)> {
    h.observations()
        .filter(|o| o.observation == METADATA && o.error.is_none())
        .filter(|o| o.time >= from && o.time < until)
        .find(|o| topic_partitions(&o.value, topic).is_some())
        .map(|o| (o.node.clone(), o.time))
}
