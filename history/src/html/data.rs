//! What the page draws, extracted from a history: operation bars, fault windows,
//! leader/term and ISR lanes, markers, and the checker's evidence. Reading observations
//! is tolerant: any of the usual field names for leader, term and ISR is understood,
//! and an observation that has none of them simply draws nothing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::linear::{self, show_value};
use crate::{Entry, History, OpType};

#[derive(Debug, Serialize)]
pub struct OpBar {
    /// The invocation's position in the history.
    pub id: usize,
    pub process: u64,
    pub f: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub describe: String,
    pub call: u64,
    /// Completion time (`ok`, `fail`, `info`); `None` when it never completed.
    pub ret: Option<u64>,
    /// `ok`, `fail`, `info` or `pending`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FaultWindow {
    pub start: u64,
    /// `None`: never healed within the history.
    pub end: Option<u64>,
    pub label: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub text: String,
    /// `leader`, `follower`, `none` (no leader known) or `down` (the poll failed).
    pub role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Lane {
    pub label: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Serialize)]
pub struct Marker {
    pub time: u64,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct StepRef {
    pub id: usize,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct CandidateRef {
    pub id: usize,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct KeyEvidence {
    pub key: String,
    pub verdict: &'static str,
    pub ops: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub linearized: Vec<StepRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck: Option<usize>,
    pub candidates: Vec<CandidateRef>,
}

#[derive(Debug, Serialize)]
pub struct CheckData {
    pub verdict: &'static str,
    pub elapsed_ns: u64,
    pub keys: Vec<KeyEvidence>,
}

#[derive(Debug, Serialize)]
pub struct PageData {
    pub title: String,
    /// `ns` or `line`.
    pub unit: &'static str,
    pub start: u64,
    pub end: u64,
    pub ops: Vec<OpBar>,
    pub faults: Vec<FaultWindow>,
    pub members: Vec<Lane>,
    pub isr: Vec<Lane>,
    pub markers: Vec<Marker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckData>,
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

pub fn ops(history: &History) -> Vec<OpBar> {
    let mut bars: Vec<OpBar> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (id, entry) in history.entries.iter().enumerate() {
        let Entry::Op(op) = entry else { continue };
        if op.r#type == OpType::Invoke {
            open.insert(op.process, bars.len());
            bars.push(OpBar {
                id,
                process: op.process,
                f: op.f.clone(),
                key: op.key.clone(),
                describe: if op.f == "read" {
                    "read".to_string()
                } else {
                    format!("{} {}", op.f, short(&op.value))
                },
                call: op.time,
                ret: None,
                outcome: "pending",
                node: op.node.clone(),
                consistency: op.consistency.map(|c| format!("{c:?}").to_lowercase()),
                error: None,
            });
        } else if let Some(slot) = open.remove(&op.process) {
            let bar = &mut bars[slot];
            bar.ret = Some(op.time);
            bar.outcome = op.r#type.name();
            bar.error = op.error.clone();
            if op.f == "read" && op.r#type == OpType::Ok {
                bar.describe = format!("read → {}", short(&op.value));
            }
        }
    }
    bars
}

fn fault_label(v: &Value) -> String {
    let text = match v {
        Value::Object(map) => ["profile", "name", "fault", "kind"]
            .iter()
            .find_map(|k| map.get(*k).map(short))
            .unwrap_or_else(|| v.to_string()),
        other => short(other),
    };
    let mut label: String = text.chars().take(60).collect();
    if label.len() < text.len() {
        label.push('…');
    }
    label
}

/// Pairs fault starts with their stops: by the value's `id` when both carry one, else
/// the oldest open fault is the one stopped.
pub fn faults(history: &History) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    let mut open: Vec<(Option<Value>, usize)> = Vec::new();
    for op in history.nemesis() {
        let id = op.value.get("id").cloned();
        let f = op.f.as_str();
        if f.starts_with("start") || f == "apply" {
            open.push((id, windows.len()));
            windows.push(FaultWindow {
                start: op.time,
                end: None,
                label: fault_label(&op.value),
            });
        } else if f.starts_with("stop") || f.starts_with("heal") {
            let slot = match &id {
                Some(id) => open.iter().position(|(o, _)| o.as_ref() == Some(id)),
                None => None,
            }
            .or(if open.is_empty() { None } else { Some(0) });
            if let Some(slot) = slot {
                let (_, w) = open.remove(slot);
                windows[w].end = Some(op.time);
            }
        }
    }
    windows
}

fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n))
        .filter(|v| !v.is_null())
}

/// One lane per member: consecutive observations with the same leader and term merge
/// into one segment, drawn from the first poll's end to the next change.
pub fn members(history: &History, end: u64) -> Vec<Lane> {
    let mut lanes: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    for o in history.observations() {
        let leader = field(
            &o.value,
            &["leader", "leader_id", "leader_node", "leaderId"],
        );
        let term = field(
            &o.value,
            &["term", "raft_term", "epoch", "leader_epoch", "raftTerm"],
        );
        let (text, role) = if o.value.is_null() || o.error.is_some() {
            ("unreachable".to_string(), "down")
        } else if leader.is_none() && term.is_none() {
            continue;
        } else {
            let leader_text = leader.map(short);
            let role = match &leader_text {
                None => "none",
                Some(l) if l == "0" || l == "none" => "none",
                Some(l) if *l == o.node => "leader",
                Some(_) => "follower",
            };
            let mut text = format!("leader {}", leader_text.as_deref().unwrap_or("?"));
            if let Some(t) = term {
                text.push_str(&format!(" · term {}", short(t)));
            }
            (text, role)
        };
        let lane = lanes.entry(o.node.clone()).or_default();
        match lane.last_mut() {
            Some(last) if last.text == text => {}
            Some(last) => {
                last.end = o.time;
                lane.push(Segment {
                    start: o.time,
                    end,
                    text,
                    role,
                });
            }
            None => lane.push(Segment {
                start: o.time,
                end,
                text,
                role,
            }),
        }
    }
    lanes
        .into_iter()
        .map(|(label, segments)| Lane { label, segments })
        .collect()
}

fn isr_size(v: &Value) -> Option<usize> {
    if let Some(Value::Array(isr)) = field(v, &["isr", "in_sync_replicas"]) {
        return Some(isr.len());
    }
    field(v, &["isr_size", "isrSize"])
        .and_then(Value::as_u64)
        .map(|n| n as usize)
}

/// ISR size lanes, one per partition seen (`topic-partition`, else the member polled).
pub fn isr(history: &History, end: u64) -> Vec<Lane> {
    let mut lanes: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    let mut push = |label: String, time: u64, size: usize| {
        let text = format!("ISR {size}");
        let lane = lanes.entry(label).or_default();
        match lane.last_mut() {
            Some(last) if last.text == text => {}
            Some(last) => {
                last.end = time;
                lane.push(Segment {
                    start: time,
                    end,
                    text,
                    role: "isr",
                });
            }
            None => lane.push(Segment {
                start: time,
                end,
                text,
                role: "isr",
            }),
        }
    };
    for o in history.observations() {
        let label_of = |v: &Value, fallback: &str| match (v.get("topic"), v.get("partition")) {
            (Some(t), Some(p)) => format!("{}-{}", short(t), short(p)),
            _ => fallback.to_string(),
        };
        if let Some(size) = isr_size(&o.value) {
            push(label_of(&o.value, &o.node), o.time, size);
        }
        if let Some(Value::Array(parts)) = o.value.get("partitions") {
            for p in parts {
                if let Some(size) = isr_size(p) {
                    push(label_of(p, &o.node), o.time, size);
                }
            }
        }
    }
    lanes
        .into_iter()
        .map(|(label, segments)| Lane { label, segments })
        .collect()
}

pub fn check(report: &linear::Report) -> CheckData {
    let keys = report
        .keys
        .iter()
        .map(|k| {
            let f = k.failure.as_ref();
            KeyEvidence {
                key: k.key.clone(),
                verdict: k.verdict.name(),
                ops: k.ops,
                reason: k.reason.clone(),
                linearized: f.map_or_else(Vec::new, |f| {
                    f.linearized
                        .iter()
                        .map(|s| StepRef {
                            id: s.op.entry,
                            state: show_value(s.state),
                        })
                        .collect()
                }),
                state: f.map(|f| show_value(f.state)),
                stuck: f.map(|f| f.stuck.entry),
                candidates: f.map_or_else(Vec::new, |f| {
                    f.candidates
                        .iter()
                        .map(|c| CandidateRef {
                            id: c.op.entry,
                            reason: c.reason.clone(),
                        })
                        .collect()
                }),
            }
        })
        .collect();
    CheckData {
        verdict: report.verdict.name(),
        elapsed_ns: report.elapsed_ns,
        keys,
    }
}
