//! Checkers as pure functions of the recorded history.
//!
//! A [`HistoryCheck`] sees nothing but the finished [`History`]: the workload's
//! operations, the nemesis operations, the poller's observations and the phase marks.
//! It cannot poll, so it cannot disagree with what the history says, and it can be
//! run again on a `history.jsonl` later. Judging may be heavy (thousands of
//! observations, every operation), so the runner calls it off the async runtime.

use std::sync::Arc;

use rift_history::History;

use super::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

/// A property judged from the history alone.
pub trait HistoryCheck: Send + 'static {
    fn name(&self) -> String;
    /// PASS, FAIL, or UNKNOWN when the evidence the property needs is not in the
    /// history (the fault never applied, a poll never succeeded, nothing was
    /// acknowledged while the fault was in place).
    fn check(&self, history: &History) -> Verdict;
}

/// The client side of a history check: what it needs done to the cluster at each
/// phase (its own topic, producers, final reads), every operation recorded in the
/// history. A driver judges nothing and never polls the cluster's state: its check
/// reads what happened from the history afterwards.
pub trait Driver: Send {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()>;
}

/// What a system builds from a scenario's `[[checker]]` table.
pub enum CheckerImpl {
    /// Drives the cluster at each phase (probes, its own clients).
    Live(Box<dyn Checker>),
    /// Judges the recorded history after the run.
    History(Box<dyn HistoryCheck>),
    /// Judges the recorded history, which its driver fills with client operations.
    Driven {
        driver: Box<dyn Driver>,
        check: Box<dyn HistoryCheck>,
    },
}

/// Runs every history check on `history`, each on a blocking thread, and returns their
/// verdicts in order. A check that panics yields a FAIL saying so, not a lost verdict.
pub async fn run_history_checks(
    checks: Vec<Box<dyn HistoryCheck>>,
    history: Arc<History>,
) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(checks.len());
    for check in checks {
        let name = check.name();
        let history = history.clone();
        let verdict = tokio::task::spawn_blocking(move || check.check(&history)).await;
        verdicts.push(verdict.unwrap_or_else(|e| {
            let mut v = Verdict::new(&name);
            v.fail(format!("the checker crashed: {e}"));
            v
        }));
    }
    verdicts
}
