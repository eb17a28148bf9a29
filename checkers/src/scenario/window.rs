//! Reading a recorded history for checkers: the fault windows (nemesis start to stop,
//! as the proxy confirmed them), and instants derived from the poller's observations
//! with their resolution.
//!
//! An observation's answer was taken at some instant between its `started` and its
//! `time`. So a change first seen in a poll happened after the previous poll of that
//! node started and before this poll ended: an [`Interval`], never a point. Timings
//! are reported as the interval's middle plus or minus half its width.

use std::collections::BTreeMap;

use rift_history::{History, Nanos, Observation};
use serde_json::Value;

/// One fault as the history recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// The proxy's fault id.
    pub id: u64,
    pub label: String,
    /// When the apply request was sent.
    pub invoked: Nanos,
    /// When the proxy confirmed the fault: from here on it is in place.
    pub start: Nanos,
    /// When the heal request was sent: until here the fault was surely in place.
    /// `None` when the history has no stop for it.
    pub end: Option<Nanos>,
    /// When the proxy confirmed the heal.
    pub healed: Option<Nanos>,
    /// Roles resolved when the fault applied (`leader`, `target`, ...).
    pub bindings: BTreeMap<String, String>,
    pub majority: Vec<String>,
    pub minority: Vec<String>,
    /// The directed rules as the proxy applied them.
    pub rules: Value,
}

impl FaultWindow {
    /// The end of the window, or `last` for a fault never stopped.
    pub fn end_or(&self, last: Nanos) -> Nanos {
        self.end.unwrap_or(last)
    }

    /// True when `t` lies inside the window (the fault surely in place).
    pub fn contains(&self, t: Nanos) -> bool {
        t >= self.start && self.end.is_none_or(|e| t < e)
    }
}

/// Every fault that was applied (starts without error), in order, with its stop.
pub fn fault_windows(history: &History) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    for op in history.nemesis() {
        if op.error.is_some() && op.f == "start" {
            continue;
        }
        let id = op.value["id"].as_u64();
        match op.f.as_str() {
            "start" => windows.push(FaultWindow {
                id: id.unwrap_or(0),
                label: op.value["label"].as_str().unwrap_or("").to_string(),
                invoked: op.invoked,
                start: op.time,
                end: None,
                healed: None,
                bindings: serde_json::from_value(op.value["bindings"].clone()).unwrap_or_default(),
                majority: names(&op.value["majority"]),
                minority: names(&op.value["minority"]),
                rules: op.value["rules"].clone(),
            }),
            "stop" => {
                // A stop without an id (a heal of everything) closes every open window.
                for w in windows
                    .iter_mut()
                    .filter(|w| w.end.is_none() && id.is_none_or(|id| id == w.id))
                {
                    w.end = Some(op.invoked);
                    w.healed = Some(op.time);
                }
            }
            _ => {}
        }
    }
    windows
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The time of the last entry: the end of a window never stopped.
pub fn last_time(history: &History) -> Nanos {
    history.entries.iter().map(|e| e.time()).max().unwrap_or(0)
}

/// An instant known to lie in `(lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub lo: Nanos,
    pub hi: Nanos,
}

impl Interval {
    pub fn mid(&self) -> Nanos {
        self.lo + (self.hi - self.lo) / 2
    }

    pub fn half_width(&self) -> Nanos {
        (self.hi - self.lo).div_ceil(2)
    }

    /// Milliseconds after `origin`, as `650 ms ± 50 ms`.
    pub fn after(&self, origin: Nanos) -> String {
        format!(
            "{} ms ± {} ms",
            ms(self.mid().saturating_sub(origin)),
            ms_ceil(self.half_width())
        )
    }
}

/// Whole milliseconds (rounded to nearest).
pub fn ms(ns: Nanos) -> u64 {
    (ns + 500_000) / 1_000_000
}

/// Whole milliseconds, rounded up (a resolution is never understated).
pub fn ms_ceil(ns: Nanos) -> u64 {
    ns.div_ceil(1_000_000)
}

/// Successful observations of `kind` of `node`, in history order.
pub fn polls<'a>(
    history: &'a History,
    node: &'a str,
    kind: &'a str,
) -> impl Iterator<Item = &'a Observation> + 'a {
    history
        .observations()
        .filter(move |o| o.node == node && o.observation == kind && o.error.is_none())
}

/// The first change to a state satisfying `holds` seen in a poll of `node` that
/// started at or after `from` and ended by `until`: the change happened after the
/// previous poll started (and not before `from`) and before this poll ended.
pub fn first_seen(
    history: &History,
    node: &str,
    kind: &str,
    from: Nanos,
    until: Nanos,
    holds: impl Fn(&Value) -> bool,
) -> Option<Interval> {
    let mut previous_start = from;
    for o in polls(history, node, kind) {
        if o.time > until {
            return None;
        }
        if o.started >= from && holds(&o.value) {
            return Some(Interval {
                lo: previous_start.max(from),
                hi: o.time,
            });
        }
        previous_start = o.started;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rift_history::{Entry, NemesisOp};
    use serde_json::json;

    pub fn obs(node: &str, started: Nanos, time: Nanos, value: Value) -> Entry {
        Entry::Observation(Observation {
            index: 0,
            time,
            started,
            observation: "s".into(),
            node: node.into(),
            value,
            error: None,
        })
    }

    #[test]
    fn windows_pair_start_and_stop_by_id() {
        let start = NemesisOp::new(
            10,
            20,
            "start",
            json!({"id": 3, "label": "x", "minority": ["a"], "majority": ["b", "c"], "bindings": {"leader": "a"}, "rules": []}),
        );
        let stop = NemesisOp::new(100, 110, "stop", json!({"id": 3}));
        let mut failed = NemesisOp::new(120, 121, "start", json!({"label": "y"}));
        failed.error = Some("refused".into());
        let h = History::new(vec![
            Entry::Nemesis(start),
            Entry::Nemesis(stop),
            Entry::Nemesis(failed),
        ]);
        let w = fault_windows(&h);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].start, w[0].end, w[0].healed),
            (20, Some(100), Some(110))
        );
        assert_eq!(w[0].minority, ["a"]);
        assert_eq!(w[0].bindings["leader"], "a");
        assert!(w[0].contains(20) && w[0].contains(99) && !w[0].contains(100));
    }

    #[test]
    fn a_change_lies_between_the_previous_poll_start_and_this_poll_end() {
        let h = History::new(vec![
            obs("a", 0, 5, json!(1)),
            obs("a", 50, 58, json!(1)),
            obs("a", 100, 104, json!(2)),
        ]);
        let i = first_seen(&h, "a", "s", 40, 1000, |v| v == &json!(2)).unwrap();
        assert_eq!((i.lo, i.hi), (50, 104));
        // Never before `from`, even when the previous poll started earlier.
        let i = first_seen(&h, "a", "s", 60, 1000, |v| v == &json!(2)).unwrap();
        assert_eq!((i.lo, i.hi), (60, 104));
        assert!(first_seen(&h, "a", "s", 0, 100, |v| v == &json!(2)).is_none());
        let i = Interval {
            lo: 600_000_000,
            hi: 700_000_000,
        };
        assert_eq!(i.after(0), "650 ms ± 50 ms");
    }
}
