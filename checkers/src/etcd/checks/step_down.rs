//! Leader step-down, judged from the recorded history: for each fault, the leader the
//! members agreed on just before it, once cut off, stops calling itself leader (etcd's
//! CheckQuorum), and a majority of members follows a new leader whose applied term is
//! higher. Both are read from the poller's `etcd-status` observations, so each instant
//! is an interval (previous poll's start, this poll's end] and is reported with its
//! resolution. The limit defaults to 4 election timeouts: CheckQuorum steps down after
//! one to two, and followers campaign after one to two (randomised).
//!
//! FAIL: an event was observed later than the limit (even at the earliest instant the
//! polls allow), or never although the member answered polls during the fault.
//! UNKNOWN: no fault applied, no leader agreed before it, or no poll answered.

use std::collections::BTreeMap;
use std::time::Duration;

use rift_history::{History, Nanos};
use serde::Deserialize;
use serde_json::Value;

use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{
    FaultWindow, Interval, fault_windows, first_seen, last_time, ms, polls,
};
use crate::scenario::{Status, Verdict};

const STATUS: &str = "etcd-status";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StepDownConfig {
    /// Both events must happen this soon after the fault (default: 4 election
    /// timeouts of the cluster).
    #[serde(default, with = "opt_dur")]
    pub within: Option<Duration>,
    /// Judge only the faults that put the leader on the minority side (a schedule that
    /// mixes leader and follower isolations); UNKNOWN when none did. By default every
    /// fault is judged, so isolating a follower fails.
    #[serde(default)]
    pub only_leader_isolations: bool,
}

pub struct StepDown {
    limit: Duration,
    only_leader_isolations: bool,
    /// Where the limit comes from, for the evidence.
    why: String,
}

impl StepDown {
    /// `election`: the cluster's election timeout, the scale of both events.
    pub fn new(config: StepDownConfig, election: Duration) -> Self {
        let only_leader_isolations = config.only_leader_isolations;
        match config.within {
            Some(within) => Self {
                limit: within,
                why: "the scenario's `within`".into(),
                only_leader_isolations,
            },
            None => Self {
                limit: election * 4,
                why: format!("4 × the election timeout of {} ms", election.as_millis()),
                only_leader_isolations,
            },
        }
    }
}

/// A member's answer as polled.
struct Seen {
    member_id: u64,
    leader_id: u64,
    term: u64,
}

fn seen(v: &Value) -> Option<Seen> {
    Some(Seen {
        member_id: v["member_id"].as_u64()?,
        leader_id: v["leader_id"].as_u64()?,
        term: v["applied_term"].as_u64()?,
    })
}

/// Nodes polled in the history, in name order.
fn nodes(h: &History) -> Vec<String> {
    let mut n: Vec<String> = h
        .observations()
        .filter(|o| o.observation == STATUS)
        .map(|o| o.node.clone())
        .collect();
    n.sort();
    n.dedup();
    n
}

/// The leader a majority of members named in their last answers before `at`:
/// (name, member id, highest applied term among them).
fn leader_before(h: &History, nodes: &[String], at: Nanos) -> Option<(String, u64, u64)> {
    let mut last: BTreeMap<&str, Seen> = BTreeMap::new();
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for o in h.observations() {
        if o.observation != STATUS || o.error.is_some() || o.time > at {
            continue;
        }
        if let Some(s) = seen(&o.value) {
            names.insert(s.member_id, o.node.clone());
            last.insert(o.node.as_str(), s);
        }
    }
    let quorum = nodes.len() / 2 + 1;
    let mut votes: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
    for s in last.values().filter(|s| s.leader_id != 0) {
        let e = votes.entry(s.leader_id).or_default();
        e.0 += 1;
        e.1 = e.1.max(s.term);
    }
    let (id, (_, term)) = votes.into_iter().find(|(_, (n, _))| *n >= quorum)?;
    Some((names.get(&id)?.clone(), id, term))
}

/// When a majority of members first followed one leader other than `old` at an applied
/// term above `term`: the interval ends with the poll that completed the majority and
/// starts at that member's previous poll.
fn new_leader(
    h: &History,
    nodes: &[String],
    w: &FaultWindow,
    until: Nanos,
    old: u64,
    term: u64,
) -> Option<(String, u64, Interval)> {
    let quorum = nodes.len() / 2 + 1;
    let mut last: BTreeMap<&str, (Seen, Nanos)> = BTreeMap::new();
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for o in h.observations() {
        if o.observation != STATUS || o.error.is_some() || o.time > until {
            continue;
        }
        let Some(s) = seen(&o.value) else { continue };
        names.insert(s.member_id, o.node.clone());
        let previous_start = last.get(o.node.as_str()).map_or(w.start, |(_, st)| *st);
        last.insert(o.node.as_str(), (s, o.started));
        if o.started < w.start {
            continue;
        }
        let s = &last[o.node.as_str()].0;
        if s.leader_id == 0 || s.leader_id == old || s.term <= term {
            continue;
        }
        let agree = last
            .values()
            .filter(|(x, _)| x.leader_id == s.leader_id && x.term > term)
            .count();
        if agree >= quorum {
            let name = names
                .get(&s.leader_id)
                .cloned()
                .unwrap_or_else(|| format!("member {:x}", s.leader_id));
            let lo = previous_start.max(w.start);
            return Some((name, s.term, Interval { lo, hi: o.time }));
        }
    }
    None
}

impl HistoryCheck for StepDown {
    fn name(&self) -> String {
        "leader-step-down".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new("leader-step-down");
        let limit = self.limit.as_nanos() as Nanos;
        v.evidence(format!(
            "limit {} ms ({}); each instant lies between a poll's start and the next poll's end",
            self.limit.as_millis(),
            self.why
        ));
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault was applied: there was nothing to step down from");
            return v;
        }
        let nodes = nodes(h);
        let last = last_time(h);
        let mut summary = Vec::new();
        let mut judged = 0;
        for w in &windows {
            if self.only_leader_isolations
                && leader_before(h, &nodes, w.start)
                    .is_some_and(|(l, _, _)| !w.minority.contains(&l))
            {
                v.evidence(format!(
                    "fault {} ({}): the leader is not on its minority side {:?}: not judged",
                    w.id, w.label, w.minority
                ));
                continue;
            }
            judged += 1;
            if let Some(s) = self.judge(&mut v, h, &nodes, w, last, limit) {
                summary.push(s);
            }
        }
        if judged == 0 {
            v.unknown(format!(
                "none of the {} fault(s) isolated the leader: there was nothing to step down from",
                windows.len()
            ));
        }
        if v.status == Status::Pass {
            v.pass(format!(
                "{} (limit {} ms)",
                summary.join("; "),
                self.limit.as_millis()
            ));
        }
        v
    }
}

impl StepDown {
    /// Judges one fault window; returns its summary when it passed.
    fn judge(
        &self,
        v: &mut Verdict,
        h: &History,
        nodes: &[String],
        w: &FaultWindow,
        last: Nanos,
        limit: Nanos,
    ) -> Option<String> {
        let until = w.end_or(last);
        let Some((leader, leader_id, term)) = leader_before(h, nodes, w.start) else {
            v.unknown(format!(
                "fault {} ({}): the members' last polls before it agree on no leader",
                w.id, w.label
            ));
            return None;
        };
        v.evidence(format!(
            "fault {} ({}): leader {leader} at applied term {term}; {leader} is {} the minority side {:?}",
            w.id,
            w.label,
            if w.minority.contains(&leader) { "on" } else { "NOT on" },
            w.minority
        ));
        let answered = polls(h, &leader, STATUS)
            .filter(|o| o.started >= w.start && o.time <= until)
            .count();
        let late = |i: &Interval| i.lo.saturating_sub(w.start) > limit;
        let stepped = first_seen(h, &leader, STATUS, w.start, until, |s| {
            seen(s).is_some_and(|s| s.leader_id != s.member_id)
        });
        match stepped {
            Some(i) => {
                v.measured("stepped-down", format!("{leader} stepped down"), i, w.start);
                v.evidence(format!("{leader} stopped acting as leader {} after the fault", i.after(w.start)));
                if late(&i) {
                    v.fail(format!(
                        "{leader} stepped down {} after the fault, later than the limit of {} ms",
                        i.after(w.start),
                        ms(limit)
                    ));
                }
            }
            None if answered == 0 => v.unknown(format!(
                "no poll of {leader} succeeded during fault {}: whether it stepped down is not known",
                w.id
            )),
            None => v.fail(format!(
                "{leader} never stepped down during fault {} ({answered} polls over {} ms all show it leading)",
                w.id,
                ms(until - w.start)
            )),
        }
        let elected = new_leader(h, nodes, w, until, leader_id, term);
        match &elected {
            Some((l, t, i)) => {
                v.measured("elected", format!("{l} elected"), *i, w.start);
                v.evidence(format!(
                    "a majority follows {l} at applied term {t} (> {term}) {} after the fault",
                    i.after(w.start)
                ));
                if late(i) {
                    v.fail(format!(
                        "new leader {l} {} after the fault, later than the limit of {} ms",
                        i.after(w.start),
                        ms(limit)
                    ));
                }
            }
            None => {
                let others = nodes
                    .iter()
                    .filter(|n| **n != leader)
                    .map(|n| {
                        polls(h, n, STATUS)
                            .filter(|o| w.contains(o.started))
                            .count()
                    })
                    .sum::<usize>();
                if others == 0 {
                    v.unknown(format!(
                        "no poll of the other members succeeded during fault {}",
                        w.id
                    ));
                } else {
                    v.fail(format!(
                        "no majority followed a new leader above applied term {term} during fault {}",
                        w.id
                    ));
                }
            }
        }
        match (stepped, elected) {
            (Some(s), Some((l, _, e))) if !late(&s) && !late(&e) => Some(format!(
                "{leader} stepped down {}; {l} elected {} after the fault",
                s.after(w.start),
                e.after(w.start)
            )),
            _ => None,
        }
    }
}

/// Optional humantime durations in checker settings.
pub mod opt_dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            humantime::parse_duration(&s)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests;
