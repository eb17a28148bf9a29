//! The measurement, a pure function of the history: the fault windows of the
//! nemesis steps with the link delays their rules applied, the operation classes,
//! and per class and step the latencies of the operations that ran inside the window.

use std::collections::{BTreeMap, BTreeSet};

use rift_history::{Consistency, History, Nanos, Op, OpType};
use rift_proxy::fault::{Fault, LinkRule};
use serde::Serialize;

/// What the protocol implies a class pays for the injected delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// etcd linearizable read and put: the leader's quorum round trip (ReadIndex's
    /// heartbeat round, a majority append), plus the round trip to the leader when the
    /// client's member is a follower.
    Quorum,
    /// Kafka acks=all: the followers' next fetch carries the offset: at least the
    /// leader's round trip to its nearest follower.
    FollowerFetch,
    /// Served where the client is (serializable read, acks=1, acks=0): no round trip.
    Local,
}

impl Expect {
    /// Whether the class pays for consistency (EC when it does pay).
    pub fn consistent(self) -> bool {
        self != Expect::Local
    }
}

/// An operation class: what was asked, and where the client sat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Class {
    pub name: String,
    pub expect: Expect,
}

/// The class of an operation, given the leader of the step (etcd: the client's
/// member is the leader or a follower). `None` for operations the checker ignores.
pub fn classify(invoke: &Op, leader: Option<&str>) -> Option<Class> {
    let at = |base: &str| match (invoke.node.as_deref(), leader) {
        (Some(n), Some(l)) if n == l => format!("{base} @leader"),
        (Some(_), Some(_)) => format!("{base} @follower"),
        _ => base.to_string(),
    };
    let class = |name: String, expect| Some(Class { name, expect });
    match invoke.f.as_str() {
        "read" => match invoke.consistency? {
            Consistency::Linearizable => class(at("linearizable read"), Expect::Quorum),
            Consistency::Serializable => class(at("serializable read"), Expect::Local),
        },
        "write" => class(at("put"), Expect::Quorum),
        "send" => {
            let payload = invoke.value.as_str()?;
            let isr = ["1", "2", "3"]
                .iter()
                .find(|n| payload.contains(&format!("-misr{n}-")))
                .map(|n| format!(" (min.insync.replicas={n})"))
                .unwrap_or_default();
            if payload.contains("-acksall-") {
                class(format!("acks=all{isr}"), Expect::FollowerFetch)
            } else if payload.contains("-acks1-") {
                class(format!("acks=1{isr}"), Expect::Local)
            } else if payload.contains("-acks0-") {
                class(format!("acks=0{isr}"), Expect::Local)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// One fault step as the history recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// 1-based, in order of application.
    pub step: usize,
    pub label: String,
    /// The proxy confirmed the fault (ns).
    pub start: Nanos,
    /// The heal was requested (ns), or the end of the history.
    pub end: Nanos,
    /// The `delay` binding the step asked for, in ms (wan profile).
    pub requested_delay_ms: Option<u64>,
    /// The `leader` role when the step applied.
    pub leader: Option<String>,
    /// Minimal one-way delay per directed member link (latency − jitter, ms), from
    /// the rules as the proxy returned them.
    pub links: BTreeMap<(String, String), u64>,
}

/// The fault windows, in order; a start that failed applied nothing and is skipped.
pub fn windows(history: &History) -> Vec<Window> {
    let end_of_history = history.entries.last().map_or(0, |e| e.time());
    let mut windows: Vec<(Option<u64>, Window)> = Vec::new();
    for op in history.nemesis() {
        if op.error.is_some() && op.f == "start" {
            continue;
        }
        match op.f.as_str() {
            "start" => {
                let rules: Vec<LinkRule> =
                    serde_json::from_value(op.value["rules"].clone()).unwrap_or_default();
                let bindings = &op.value["bindings"];
                windows.push((
                    op.value["id"].as_u64(),
                    Window {
                        step: windows.len() + 1,
                        label: op.value["label"].as_str().unwrap_or("").to_string(),
                        start: op.time,
                        end: end_of_history,
                        requested_delay_ms: bindings["delay"].as_str().and_then(parse_ms),
                        leader: bindings["leader"].as_str().map(str::to_string),
                        links: link_delays(&rules),
                    },
                ));
            }
            "stop" => {
                let id = op.value["id"].as_u64();
                let all = op.value["all"].as_bool() == Some(true);
                for (wid, w) in windows.iter_mut() {
                    if w.end == end_of_history && (all || (id.is_some() && *wid == id)) {
                        w.end = op.invoked;
                    }
                }
            }
            _ => {}
        }
    }
    windows.into_iter().map(|(_, w)| w).collect()
}

fn parse_ms(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().or_else(|| {
        humantime::parse_duration(text.trim())
            .ok()
            .map(|d| d.as_millis() as u64)
    })
}

/// Minimal one-way delay per directed link between nodes (client links left out).
fn link_delays(rules: &[LinkRule]) -> BTreeMap<(String, String), u64> {
    let mut links = BTreeMap::new();
    for r in rules {
        if r.from == rift_proxy::topology::CLIENT || r.to == rift_proxy::topology::CLIENT {
            continue;
        }
        if let Fault::Degrade(d) = &r.fault {
            let min = d.latency_ms.saturating_sub(d.jitter_ms);
            let e = links.entry((r.from.clone(), r.to.clone())).or_insert(0);
            *e = (*e).max(min);
        }
    }
    links
}

/// Round trips between members during one step, in ms.
#[derive(Debug, Clone)]
pub struct Rtts {
    members: Vec<String>,
    links: BTreeMap<(String, String), u64>,
}

impl Rtts {
    /// `uniform`: every member link delayed by this much instead of the rules (a step
    /// that asked for a delay the rules do not carry is judged by what it asked).
    pub fn new(members: &BTreeSet<String>, w: &Window, uniform: Option<u64>) -> Rtts {
        let members: Vec<String> = members.iter().cloned().collect();
        let mut links = w.links.clone();
        if let Some(d) = uniform {
            for a in &members {
                for b in &members {
                    if a != b {
                        links.insert((a.clone(), b.clone()), d);
                    }
                }
            }
        }
        Rtts { members, links }
    }

    pub fn rtt(&self, a: &str, b: &str) -> u64 {
        let one = |x: &str, y: &str| {
            self.links
                .get(&(x.to_string(), y.to_string()))
                .copied()
                .unwrap_or(0)
        };
        one(a, b) + one(b, a)
    }

    /// Round trips from `node` to every other member, smallest first.
    fn from(&self, node: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .members
            .iter()
            .filter(|m| *m != node)
            .map(|m| self.rtt(node, m))
            .collect();
        v.sort();
        v
    }

    /// The round trip after which `leader` has heard from a majority (itself included).
    pub fn quorum(&self, leader: &str) -> u64 {
        let others_needed = self.members.len() / 2;
        let v = self.from(leader);
        if others_needed == 0 {
            return 0;
        }
        v.get(others_needed - 1).copied().unwrap_or(0)
    }

    /// The round trip to the nearest other member.
    pub fn nearest(&self, node: &str) -> u64 {
        self.from(node).first().copied().unwrap_or(0)
    }

    /// The largest round trip between two members: the step's injected RTT.
    pub fn largest(&self) -> u64 {
        self.members
            .iter()
            .flat_map(|a| self.members.iter().map(move |b| (a, b)))
            .map(|(a, b)| self.rtt(a, b))
            .max()
            .unwrap_or(0)
    }
}

/// The least a class must pay in a step (ms) and the round trip it would pay by
/// leaving its member (the yardstick of "pays none"), the smallest over `nodes`.
pub fn bound(
    class: &Class,
    nodes: &BTreeSet<String>,
    leader: Option<&str>,
    rtts: &Rtts,
) -> (u64, u64) {
    let mut here: Vec<&str> = nodes.iter().map(String::as_str).collect();
    if here.is_empty() {
        here.extend(leader);
    }
    here.iter()
        .map(|n| bound_at(class, n, leader, rtts))
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
        .unwrap_or((0, 0))
}

fn bound_at(class: &Class, here: &str, leader: Option<&str>, rtts: &Rtts) -> (u64, u64) {
    match class.expect {
        Expect::Quorum => {
            let leader = leader.unwrap_or(here);
            let forward = if here != leader {
                rtts.rtt(here, leader)
            } else {
                0
            };
            (forward + rtts.quorum(leader), rtts.nearest(here))
        }
        Expect::FollowerFetch => (rtts.nearest(here), rtts.nearest(here)),
        Expect::Local => (0, rtts.nearest(here)),
    }
}

/// Latency statistics of one class over one span.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// Operations that completed `ok` (the samples).
    pub samples: usize,
    /// Operations that ended `fail` or `info`, or never completed.
    pub failed: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The operations of one class in one span.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// Latencies of the `ok` ones (completion − invoke), sorted.
    pub latencies_ms: Vec<f64>,
    /// `fail`, `info`, or no completion.
    pub failed: usize,
    /// The members their clients talked to.
    pub nodes: BTreeSet<String>,
}

/// Operations of `history` invoked in `[from, to)` and completed by `to`, grouped by
/// class (with the node their client talked to).
pub fn samples(
    history: &History,
    from: Nanos,
    to: Nanos,
    leader: Option<&str>,
) -> BTreeMap<Class, Group> {
    let mut out: BTreeMap<Class, Group> = BTreeMap::new();
    for (invoke, done) in history.pairs() {
        if invoke.time < from || invoke.time >= to {
            continue;
        }
        let Some(class) = classify(invoke, leader) else {
            continue;
        };
        let slot = out.entry(class).or_default();
        slot.nodes.extend(invoke.node.clone());
        match done {
            Some(d) if d.r#type == OpType::Ok && d.time <= to => {
                slot.latencies_ms.push((d.time - invoke.time) as f64 / 1e6);
            }
            Some(d) if d.time > to => {}
            _ => slot.failed += 1,
        }
    }
    for g in out.values_mut() {
        g.latencies_ms.sort_by(f64::total_cmp);
    }
    out
}

pub fn stats(sorted: &[f64], failed: usize) -> Stats {
    Stats {
        samples: sorted.len(),
        failed,
        min_ms: sorted.first().copied().unwrap_or(f64::NAN),
        p50_ms: percentile(sorted, 50.0),
        p90_ms: percentile(sorted, 90.0),
    }
}
