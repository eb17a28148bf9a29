//! `kind = "linearizable"`: did the cluster behave as one register per key? A pure
//! function of the recorded history: the register workload's reads, writes and cas are
//! checked with rift-history's search (Wing & Gong with Lowe's memoization, each key
//! alone, keys in parallel; see `docs/consistency.md`).
//!
//! - PASS: every key has a linearization, and at least one checked operation was
//!   acknowledged while a fault was in place (otherwise the run says nothing about
//!   behaviour under the fault: UNKNOWN).
//! - FAIL: some key has none; the evidence names the key, the longest partial
//!   linearization (its last steps), the operations that could not come next and why,
//!   and the operation that returned without having taken effect (usually a stale read).
//! - UNKNOWN: the time budget (`budget`, default 60 s) ran out, nothing was checked, or
//!   the history cannot be read as register operations (the reason is given).
//!
//! Serializable reads are left out unless `include_serializable = true`: etcd answers
//! them from the member's local state, stale by design on a cut-off member. Counting
//! them is how the negative test makes this checker fail on real etcd.

use std::time::Duration;

use rift_history::linear::{self, Completion, OpRef, Verdict as LinVerdict};
use rift_history::{Consistency, History, OpType};
use serde::Deserialize;

use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{fault_windows, last_time};
use crate::scenario::{ScenarioError, Verdict};

/// `[[checker]] kind = "linearizable"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearizableConfig {
    /// Past this much search (wall time), the verdict is UNKNOWN.
    #[serde(default = "default_budget", with = "crate::scenario::spec::dur")]
    pub budget: Duration,
    /// Count serializable reads as if they were linearizable.
    #[serde(default)]
    pub include_serializable: bool,
    /// Check only the keys that start with this prefix (a system whose workload mixes
    /// linearizable and weaker configurations: Cassandra's `lwt/` keys).
    #[serde(default)]
    pub key_prefix: Option<String>,
}

fn default_budget() -> Duration {
    Duration::from_secs(60)
}

const MAX_BUDGET: Duration = Duration::from_secs(3600);

impl LinearizableConfig {
    /// Bounds the budget; the error names the checker's table and the value.
    pub fn validate(self, origin: &str) -> Result<Self, ScenarioError> {
        if self.budget.is_zero() || self.budget > MAX_BUDGET {
            return Err(ScenarioError::Field {
                origin: origin.to_string(),
                field: "budget".into(),
                value: format!("{:?}", self.budget),
                reason: "between 1 ms and 1 h".into(),
            });
        }
        Ok(self)
    }
}

pub struct Linearizable {
    config: LinearizableConfig,
}

impl Linearizable {
    pub fn new(config: LinearizableConfig) -> Self {
        Linearizable { config }
    }
}

/// Seconds since the run started, at the nanosecond resolution the history records.
fn seconds(ns: u64) -> String {
    format!("{}.{:09} s", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Where an operation is: its history entries, call and return times and member.
fn locate(op: &OpRef) -> String {
    let ret = match op.completion {
        Completion::Ok => op.ret.map_or_else(|| "?".to_string(), seconds),
        Completion::Info => "indeterminate".to_string(),
        Completion::Pending => "never completed".to_string(),
    };
    let entries = match op.completion_entry {
        Some(done) => format!("entries {}–{}", op.entry, done),
        None => format!("entry {}", op.entry),
    };
    let node = op
        .node
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    format!("{entries}, {} → {ret}{node}", seconds(op.call))
}

/// Checked operations acknowledged (`ok`) while a fault was in place: their call to
/// return interval overlaps a fault window.
fn acknowledged_during_faults(history: &History, include_serializable: bool) -> usize {
    let windows = fault_windows(history);
    let last = last_time(history);
    history
        .pairs()
        .into_iter()
        .filter_map(|(inv, done)| done.map(|d| (inv, d)))
        .filter(|(inv, done)| {
            done.r#type == OpType::Ok
                && matches!(inv.f.as_str(), "read" | "write" | "cas")
                && (include_serializable
                    || inv.consistency.or(done.consistency) != Some(Consistency::Serializable))
        })
        .filter(|(inv, done)| {
            windows
                .iter()
                .any(|w| inv.time < w.end_or(last) && done.time > w.start)
        })
        .count()
}

impl HistoryCheck for Linearizable {
    fn name(&self) -> String {
        let keys = self
            .config
            .key_prefix
            .as_deref()
            .map(|p| format!(" ({p} keys)"))
            .unwrap_or_default();
        if self.config.include_serializable {
            format!("linearizable{keys} (serializable reads included)")
        } else {
            format!("linearizable{keys}")
        }
    }

    fn check(&self, history: &History) -> Verdict {
        match &self.config.key_prefix {
            Some(prefix) => self.check_all(&only_keys(history, prefix)),
            None => self.check_all(history),
        }
    }
}

/// The history without the client operations on keys outside `prefix` (entries keep
/// their index, so evidence still points at lines of the file).
fn only_keys(history: &History, prefix: &str) -> History {
    History::new(
        history
            .entries
            .iter()
            .filter(|e| match e {
                rift_history::Entry::Op(op) => {
                    op.key.as_deref().is_some_and(|k| k.starts_with(prefix))
                }
                _ => true,
            })
            .cloned()
            .collect(),
    )
}

impl Linearizable {
    fn check_all(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let options = linear::Options {
            budget: self.config.budget,
            include_serializable: self.config.include_serializable,
            threads: 0,
        };
        let report = match linear::check(history, &options) {
            Ok(r) => r,
            Err(e) => {
                v.unknown(format!(
                    "the history cannot be read as register operations: {e}"
                ));
                return v;
            }
        };
        let c = &report.counts;
        v.evidence(format!(
            "{} operations checked on {} key(s), {} of them indeterminate; left out: {} \
             failed, {} serializable reads{}, {} reads without a value, {} unobserved \
             indeterminate writes/cas",
            c.checked,
            report.keys.len(),
            c.indeterminate,
            c.failed,
            c.serializable_reads,
            if self.config.include_serializable {
                " (included as linearizable)"
            } else {
                ""
            },
            c.reads_without_value,
            c.indeterminate_unobserved,
        ));
        v.evidence(format!(
            "search took {} (wall time, monotonic clock, ns resolution; budget {:?})",
            linear::report::show_duration(report.elapsed_ns),
            self.config.budget
        ));
        match report.verdict {
            LinVerdict::Fail => {
                let failing: Vec<_> = report.failures().collect();
                let first = failing[0];
                let stuck = first
                    .failure
                    .as_ref()
                    .map(|f| {
                        format!(
                            "; {} returned without having taken effect (the register held {})",
                            linear::report::show_op(&f.stuck, &locate),
                            linear::show_value(f.state)
                        )
                    })
                    .unwrap_or_default();
                v.fail(format!(
                    "not linearizable: key {:?}{stuck}{}",
                    first.key,
                    if failing.len() > 1 {
                        format!(" ({} keys fail)", failing.len())
                    } else {
                        String::new()
                    }
                ));
                let text = linear::report::render_text(&report, &locate);
                for line in text.lines().skip(2) {
                    v.evidence(line.trim_end().to_string());
                }
            }
            LinVerdict::Unknown => {
                let reasons: Vec<String> = report
                    .keys
                    .iter()
                    .filter_map(|k| k.reason.as_ref().map(|r| format!("key {:?}: {r}", k.key)))
                    .collect();
                v.unknown(format!("undecided: {}", reasons.join("; ")));
            }
            LinVerdict::Pass if c.checked == 0 => {
                v.unknown("no register operation to check (is the workload kind = \"register\"?)");
            }
            LinVerdict::Pass => {
                let during = acknowledged_during_faults(history, self.config.include_serializable);
                if fault_windows(history).is_empty() {
                    v.evidence("no fault in this history");
                } else if during == 0 {
                    v.unknown(
                        "linearizable, but no checked operation was acknowledged while a \
                         fault was in place: the run says nothing about the fault",
                    );
                } else {
                    v.evidence(format!(
                        "{during} checked operations were acknowledged while a fault was in place"
                    ));
                }
                v.pass(format!(
                    "linearizable: {} operations on {} key(s)",
                    c.checked,
                    report.keys.len()
                ));
            }
        }
        v.linearizability = Some(Box::new(report));
        v
    }
}

#[cfg(test)]
mod tests;
