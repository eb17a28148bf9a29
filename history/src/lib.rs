//! One recorded history per run, Jepsen's model: everything that happened, stamped on
//! one monotonic clock (nanoseconds since the run started), one JSON object a line.
//!
//! Four kinds of entry share the file (see `docs/history.md`):
//! - [`Op`]: a client operation, `invoke` then exactly one completion (`ok`, `fail`:
//!   definitely not applied, `info`: indeterminate) by the same process;
//! - [`NemesisOp`]: a fault started or stopped, with the directed rules as the proxy
//!   resolved and applied them;
//! - [`Observation`]: one poll of one member (leader, term, ISR...), with the poll's
//!   start and end so that every timing derived from it has a stated resolution;
//! - [`PhaseMark`]: the runner entering a phase of the timeline.
//!
//! This module only holds and (de)serializes entries; checkers are pure functions of a
//! [`History`] and live elsewhere.

mod entry;
pub mod html;
pub mod jepsen;
pub mod linear;
mod read;

pub use entry::{
    Consistency, Entry, NemesisOp, NemesisProcess, Observation, Op, OpType, PhaseMark,
};
pub use read::{HistoryError, read_jsonl, write_jsonl};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Nanoseconds since the run started.
pub type Nanos = u64;

/// An append-only history with its clock. Cheap to clone: clones share one log, so
/// the workload, the nemesis and the poller record into the same history.
#[derive(Debug, Clone)]
pub struct Recorder {
    started: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
    processes: Arc<AtomicU64>,
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Recorder {
            started,
            entries: Arc::new(Mutex::new(Vec::new())),
            processes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A process id no one in this history used before. A client takes a fresh one
    /// for each concurrent operation it keeps in flight, and after an operation that
    /// ended `info` (that process may still be "running" it, so it never issues again).
    pub fn fresh_process(&self) -> u64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }

    /// When the run started: time zero of every entry.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Nanoseconds since the run started, now.
    pub fn now(&self) -> Nanos {
        self.at(Instant::now())
    }

    /// Nanoseconds since the run started at `instant` (0 when it is earlier).
    pub fn at(&self, instant: Instant) -> Nanos {
        let elapsed = instant.saturating_duration_since(self.started).as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// Appends an entry, giving it the next index; returns that index.
    pub fn record(&self, mut entry: Entry) -> usize {
        let mut entries = self.lock();
        let index = entries.len();
        entry.set_index(index);
        entries.push(entry);
        index
    }

    /// The newest entry for which `pick` says something, searched from the end under
    /// the lock (no copy of the history): what a client waiting on the cluster's state
    /// reads from the poller's observations instead of polling on its own.
    pub fn find_last<T>(&self, pick: impl Fn(&Entry) -> Option<T>) -> Option<T> {
        self.lock().iter().rev().find_map(pick)
    }

    /// A copy of what has been recorded so far.
    pub fn snapshot(&self) -> History {
        History {
            entries: self.lock().clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while pushing cannot leave the vector half-written, so a poisoned
        // lock still guards a consistent log: keep recording rather than lose history.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A finished history: the input of every checker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub entries: Vec<Entry>,
}

impl History {
    pub fn new(entries: Vec<Entry>) -> Self {
        History { entries }
    }

    /// Client operations, in history order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Op(op) => Some(op),
            _ => None,
        })
    }

    /// Nemesis operations, in history order.
    pub fn nemesis(&self) -> impl Iterator<Item = &NemesisOp> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Nemesis(op) => Some(op),
            _ => None,
        })
    }

    /// Observations, in history order.
    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Observation(o) => Some(o),
            _ => None,
        })
    }

    /// Phase marks, in history order.
    pub fn phases(&self) -> impl Iterator<Item = &PhaseMark> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Phase(p) => Some(p),
            _ => None,
        })
    }

    /// Pairs every invocation with its completion (same process, next op of that
    /// process). An invocation without a completion is paired with `None`: it is
    /// indeterminate, as if it had completed with `info` at the end of the history.
    pub fn pairs(&self) -> Vec<(&Op, Option<&Op>)> {
        use std::collections::HashMap;
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut pairs: Vec<(&Op, Option<&Op>)> = Vec::new();
        for op in self.ops() {
            match op.r#type {
                OpType::Invoke => {
                    open.insert(op.process, pairs.len());
                    pairs.push((op, None));
                }
                _ => {
                    if let Some(slot) = open.remove(&op.process) {
                        pairs[slot].1 = Some(op);
                    }
                }
            }
        }
        pairs
    }
}

#[cfg(test)]
mod tests;
