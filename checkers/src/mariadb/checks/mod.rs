//! MariaDB checks, each a pure function of the recorded history:
//! - `semi-sync-wait`: a write on the isolated primary waits for a replica's
//!   acknowledgement until `rpl_semi_sync_master_timeout`, then commits anyway;
//! - `async-commit`: with asynchronous replication it commits at once;
//! - `no-lost-writes`: every acknowledged write is on the primary at the end (after a
//!   `promote` during the fault it is not: the check names each one missing).
//!
//! The isolated primary is the fault's `target` binding (else its one-node minority);
//! its writes are those the workload sent it between the fault's start and heal.
//! Latencies are measured on the client, from the `invoke` stamp to the completion
//! stamp (the whole transaction: four statements on loopback), with nanosecond stamps;
//! they are reported to the millisecond, resolution ± 1 ms.

mod lost;

use std::time::Duration;

use rift_history::{History, Nanos, Op, OpType};
use serde::Deserialize;

use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{self, FaultWindow, fault_windows};
use crate::scenario::{Timing, Verdict};

pub use lost::NoLostWrites;

/// The poller's observation kind for MariaDB members.
pub const STATUS: &str = "mariadb-status";

/// The node a fault isolated: its `target` binding, else its minority of one.
pub fn isolated(w: &FaultWindow) -> Option<String> {
    w.bindings
        .get("target")
        .cloned()
        .or_else(|| (w.minority.len() == 1).then(|| w.minority[0].clone()))
}

/// A write sent to `node` during `w`, and how it ended.
pub struct Sent<'a> {
    pub invoke: &'a Op,
    pub done: Option<&'a Op>,
}

impl Sent<'_> {
    pub fn latency(&self) -> Option<Nanos> {
        self.done.map(|d| d.time.saturating_sub(self.invoke.time))
    }
    pub fn acknowledged(&self) -> bool {
        self.done.is_some_and(|d| d.r#type == OpType::Ok)
    }
}

/// Writes sent to `node` while `w` was surely in place, and those in flight when it
/// began that completed under it (a commit already waiting for its acknowledgement
/// when the cut came), in invoke order.
pub fn writes_during<'a>(history: &'a History, w: &FaultWindow, node: &str) -> Vec<Sent<'a>> {
    history
        .pairs()
        .into_iter()
        .filter(|(i, d)| {
            let in_flight = i.time < w.start && d.is_some_and(|d| w.contains(d.time));
            i.f == "write" && i.node.as_deref() == Some(node) && (w.contains(i.time) || in_flight)
        })
        .map(|(invoke, done)| Sent { invoke, done })
        .collect()
}

/// The first fault window with an isolated node, with that node.
fn isolation(history: &History, v: &mut Verdict) -> Option<(FaultWindow, String)> {
    let found = fault_windows(history)
        .into_iter()
        .find_map(|w| isolated(&w).map(|n| (w, n)));
    if found.is_none() {
        v.unknown("the history has no fault that isolated a node");
    }
    found
}

/// The semi-sync settings the last successful poll of `node` before `at` saw.
fn semi_sync_before(history: &History, node: &str, at: Nanos) -> Option<(bool, u64)> {
    window::polls(history, node, STATUS)
        .filter(|o| o.time <= at)
        .last()
        .map(|o| {
            let s = &o.value["semi_sync"];
            (
                s["master_enabled"].as_bool().unwrap_or(false),
                s["master_timeout_ms"].as_u64().unwrap_or(0),
            )
        })
}

fn ms(ns: Nanos) -> u64 {
    window::ms(ns)
}

fn describe(s: &Sent<'_>, w: &FaultWindow) -> String {
    format!(
        "write of {} invoked {} ms after the fault began, {} after {} ms",
        s.invoke.value,
        ms(s.invoke.time.saturating_sub(w.start)),
        s.done.map_or("never completed", |d| d.r#type.name()),
        s.latency().map_or(0, ms)
    )
}

fn latency_timing(v: &mut Verdict, name: &str, label: String, s: &Sent<'_>, w: &FaultWindow) {
    let at = s.done.map_or(s.invoke.time, |d| d.time);
    v.timings.push(Timing {
        label,
        at_ms: ms(at),
        resolution_ms: Some(1),
        name: Some(name.to_string()),
        after_fault_ms: Some(ms(at.saturating_sub(w.start))),
    });
}

/// Checkers without settings still reject unknown keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// `[[checker]] kind = "semi-sync-wait"`.
pub struct SemiSyncWait;

impl HistoryCheck for SemiSyncWait {
    fn name(&self) -> String {
        "semi-sync-wait".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let Some((w, node)) = isolation(history, &mut v) else {
            return v;
        };
        let Some((enabled, timeout_ms)) = semi_sync_before(history, &node, w.start) else {
            v.unknown(format!(
                "no poll of {node} before the fault: its semi-sync timeout is unknown"
            ));
            return v;
        };
        v.evidence(format!(
            "{node} before the fault: rpl_semi_sync_master_enabled={}, rpl_semi_sync_master_timeout={timeout_ms} ms",
            if enabled { "ON" } else { "OFF" }
        ));
        let sent = writes_during(history, &w, &node);
        let acked: Vec<&Sent> = sent.iter().filter(|s| s.acknowledged()).collect();
        for s in sent.iter().filter(|s| !s.acknowledged()).take(5) {
            v.evidence(format!("not acknowledged: {}", describe(s, &w)));
        }
        // When one commit's wait times out, the primary switches semi-sync off and
        // releases every commit waiting with it: the write that waited longest is the
        // one whose wait ran the whole timeout (writes sent later waited less).
        let Some(first) = acked.iter().max_by_key(|s| s.latency()) else {
            v.unknown(format!(
                "no write sent to the isolated {node} during the fault was acknowledged ({} sent)",
                sent.len()
            ));
            return v;
        };
        let waited = first.latency().unwrap_or(0);
        latency_timing(
            &mut v,
            "semi-sync-released",
            format!("longest-waiting write acknowledged by isolated {node}"),
            first,
            &w,
        );
        v.evidence(format!("waited longest: {}", describe(first, &w)));
        if let Some(d) = acked.iter().filter_map(|s| s.done).map(|d| d.time).min() {
            v.evidence(format!(
                "first acknowledgement by {node} under the fault: {} ms (± 1 ms) after it began",
                ms(d.saturating_sub(w.start))
            ));
        }
        if let Some(off) = window::first_seen(
            history,
            &node,
            STATUS,
            w.start,
            window::last_time(history),
            |s| s["semi_sync"]["master_status"] == false,
        ) {
            v.evidence(format!(
                "{node} reported Rpl_semi_sync_master_status OFF {} after the fault began",
                off.after(w.start)
            ));
            v.measured(
                "semi-sync-off",
                format!("{node} switched semi-sync off"),
                off,
                w.start,
            );
        }
        let release = first.done.map_or(0, |d| d.time);
        let later: Vec<u64> = acked
            .iter()
            .filter(|s| s.invoke.time > release)
            .filter_map(|s| s.latency().map(ms))
            .collect();
        if let Some(max) = later.iter().max() {
            v.evidence(format!(
                "{} writes sent to {node} after that one committed were acknowledged during the fault, slowest in {max} ms (semi-sync off: asynchronous)",
                later.len()
            ));
        }
        if waited >= Duration::from_millis(timeout_ms).as_nanos() as Nanos && timeout_ms > 0 {
            v.pass(format!(
                "the isolated primary {node} held a write {} ms (± 1 ms) for a replica's acknowledgement, ≥ rpl_semi_sync_master_timeout {timeout_ms} ms, then committed it",
                ms(waited)
            ));
        } else {
            v.fail(format!(
                "the isolated primary {node} acknowledged every write within {} ms (± 1 ms), less than rpl_semi_sync_master_timeout {timeout_ms} ms: it did not wait for a replica (semi-sync {})",
                ms(waited),
                if enabled { "enabled" } else { "disabled" }
            ));
        }
        v
    }
}

/// `[[checker]] kind = "async-commit"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncCommitConfig {
    /// A write slower than this did wait for something.
    #[serde(default = "default_max_latency", with = "crate::scenario::spec::dur")]
    pub max_latency: Duration,
}

fn default_max_latency() -> Duration {
    Duration::from_millis(500)
}

impl Default for AsyncCommitConfig {
    fn default() -> Self {
        Self {
            max_latency: default_max_latency(),
        }
    }
}

pub struct AsyncCommit(pub AsyncCommitConfig);

impl HistoryCheck for AsyncCommit {
    fn name(&self) -> String {
        "async-commit".into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let Some((w, node)) = isolation(history, &mut v) else {
            return v;
        };
        let limit = self.0.max_latency.as_nanos() as Nanos;
        let sent = writes_during(history, &w, &node);
        let acked: Vec<&Sent> = sent.iter().filter(|s| s.acknowledged()).collect();
        let Some(slowest) = acked.iter().max_by_key(|s| s.latency()) else {
            v.unknown(format!(
                "no write sent to the isolated {node} during the fault was acknowledged ({} sent)",
                sent.len()
            ));
            return v;
        };
        latency_timing(
            &mut v,
            "slowest-commit-acknowledged",
            format!("slowest write acknowledged by isolated {node}"),
            slowest,
            &w,
        );
        v.evidence(format!("slowest: {}", describe(slowest, &w)));
        let over: Vec<&&Sent> = acked
            .iter()
            .filter(|s| s.latency().unwrap_or(0) > limit)
            .collect();
        if over.is_empty() {
            v.pass(format!(
                "all {} writes the isolated primary {node} acknowledged during the fault committed at once: slowest {} ms (± 1 ms) ≤ {} ms",
                acked.len(),
                slowest.latency().map_or(0, ms),
                self.0.max_latency.as_millis()
            ));
        } else {
            for s in over.iter().take(5) {
                v.evidence(format!("waited: {}", describe(s, &w)));
            }
            v.fail(format!(
                "{} of {} writes acknowledged by the isolated primary {node} waited longer than {} ms (slowest {} ms ± 1 ms): commits were not asynchronous",
                over.len(),
                acked.len(),
                self.0.max_latency.as_millis(),
                slowest.latency().map_or(0, ms)
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests;
