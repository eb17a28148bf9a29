//! Linearizability of register histories: did the cluster behave as one register per
//! key, each operation taking effect at one instant between its call and its return?
//!
//! The search is Wing & Gong's with Lowe's memoization (see `search.rs`), run on each
//! key alone (P-compositionality: a history is linearizable iff each key's is), keys in
//! parallel on std threads. Operations that completed `fail` are left out; those that
//! completed `info` or never completed may take effect at any time after their call, or
//! never; serializable reads are left out unless asked for, since they may be stale by
//! design. The answer is PASS, FAIL with the deepest partial linearization and the
//! operations that could not extend it, or UNKNOWN when the time budget runs out.

mod input;
mod model;
pub mod report;
mod search;

#[cfg(test)]
mod tests;

pub use input::{Completion, Counts, InputError, OpRef, Origin, prepare};
pub use model::{Model, Register, RegisterOp, RegisterValue, show_value};
pub use search::{Outcome, SearchOp, Searched, Stop, search};

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::History;
use input::KeyOps;

/// How a history is checked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Past this, keys still being searched are UNKNOWN (default 60 s).
    pub budget: Duration,
    /// Count serializable reads as if they were linearizable (default: leave them out).
    pub include_serializable: bool,
    /// Threads searching keys in parallel; 0 means one per available core.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            budget: Duration::from_secs(60),
            include_serializable: false,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// One step of a partial linearization: the operation and the register after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub op: OpRef,
    pub state: RegisterValue,
}

/// An operation that could have come next, and why it could not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub op: OpRef,
    pub reason: String,
}

/// The evidence for a key with no linearization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The longest partial linearization the search found, in order.
    pub linearized: Vec<Step>,
    /// The register after it.
    pub state: RegisterValue,
    /// The operation that returned before it could take effect after that prefix.
    pub stuck: OpRef,
    /// Every operation that could have been next (called before `stuck` returned),
    /// each with why it does not extend the prefix.
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyReport {
    pub key: String,
    pub ops: usize,
    pub verdict: Verdict,
    /// Why the verdict is UNKNOWN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time of this key's search (monotonic clock, ns resolution).
    pub elapsed_ns: u64,
    pub search_steps: u64,
    pub memo_entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The verdict on a whole history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub model: &'static str,
    pub budget_ns: u64,
    pub include_serializable: bool,
    /// Wall time of the whole check (monotonic clock, ns resolution).
    pub elapsed_ns: u64,
    pub counts: Counts,
    pub keys: Vec<KeyReport>,
}

impl Report {
    /// Keys whose verdict is FAIL.
    pub fn failures(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict == Verdict::Fail)
    }
}

/// Checks `history` against one register per key.
pub fn check(history: &History, options: &Options) -> Result<Report, InputError> {
    let started = Instant::now();
    let prepared = prepare(history, options.include_serializable)?;
    let deadline = started + options.budget;
    let keys = check_keys(history, prepared.keys, deadline, options.threads);
    let verdict = if keys.iter().any(|k| k.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if keys.iter().any(|k| k.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    Ok(Report {
        verdict,
        model: "register",
        budget_ns: nanos(options.budget),
        include_serializable: options.include_serializable,
        elapsed_ns: nanos(started.elapsed()),
        counts: prepared.counts,
        keys,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Searches every key, the largest first, on up to `threads` threads. No key's result
/// depends on another's, so every key gets its verdict (until the deadline).
fn check_keys(
    history: &History,
    mut keys: Vec<KeyOps>,
    deadline: Instant,
    threads: usize,
) -> Vec<KeyReport> {
    let order: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.ops.len()));
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
    .min(keys.len())
    .max(1);
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<KeyReport>> = Mutex::new(Vec::with_capacity(keys.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = keys.get(i) else { break };
                    let report = check_key(history, key, deadline, &cancel);
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|r| order.iter().position(|k| *k == r.key));
    results
}

fn check_key(history: &History, key: &KeyOps, deadline: Instant, cancel: &AtomicBool) -> KeyReport {
    let started = Instant::now();
    let searched = search(&Register, &key.ops, deadline, cancel);
    let elapsed_ns = nanos(started.elapsed());
    let (verdict, reason, failure) = match searched.outcome {
        Outcome::Linearizable => (Verdict::Pass, None, None),
        Outcome::NotLinearizable(longest) => (
            Verdict::Fail,
            None,
            Some(report::failure(history, key, &longest)),
        ),
        Outcome::Stopped(stop) => (Verdict::Unknown, Some(report::stop_reason(stop)), None),
    };
    KeyReport {
        key: key.key.clone(),
        ops: key.ops.len(),
        verdict,
        reason,
        elapsed_ns,
        search_steps: searched.steps,
        memo_entries: searched.memo_entries,
        failure,
    }
}
