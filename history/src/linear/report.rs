//! Turning a search result into evidence a person can read: the partial linearization,
//! the register after it, and for each operation that could have come next, why not.

use std::fmt::Write as _;

use super::input::{KeyOps, OpRef};
use super::model::{Model, Register, RegisterOp, show_value};
use super::search::{Longest, Stop};
use super::{Candidate, Failure, Report, Step, Verdict};
use crate::History;

pub(super) fn stop_reason(stop: Stop) -> String {
    match stop {
        Stop::Budget => "the time budget ran out before the search finished".to_string(),
        Stop::Cancelled => "the check was cancelled".to_string(),
        Stop::Memory => "the search's memo table reached its 512 MiB limit".to_string(),
    }
}

pub(super) fn failure(history: &History, key: &KeyOps, longest: &Longest<Option<i64>>) -> Failure {
    let linearized = longest
        .linearized
        .iter()
        .map(|&(i, state)| Step {
            op: key.op_ref(history, i),
            state,
        })
        .collect();
    let state = longest.state;
    let candidates = longest
        .candidates
        .iter()
        .map(|&i| Candidate {
            op: key.op_ref(history, i),
            reason: why_not(&key.ops[i].op, key.ops[i].indeterminate, state),
        })
        .collect();
    Failure {
        linearized,
        state,
        stuck: key.op_ref(history, longest.blocker),
        candidates,
    }
}

fn why_not(op: &RegisterOp, indeterminate: bool, state: Option<i64>) -> String {
    let holds = show_value(state);
    match (Register.step(state, op, indeterminate), op) {
        (None, RegisterOp::Read(v)) => {
            format!("it read {}, but the register holds {holds}", show_value(*v))
        }
        (None, RegisterOp::Cas(expected, _)) => format!(
            "it succeeded expecting {}, but the register holds {holds}",
            show_value(*expected)
        ),
        (None, RegisterOp::Write(_)) => "a write always applies".to_string(),
        (Some(next), _) => format!(
            "it can take effect here (register → {}), but then no order of the remaining \
             operations works",
            show_value(next)
        ),
    }
}

/// Prefix steps shown in text before eliding the older ones.
const SHOWN_STEPS: usize = 10;

/// The report as text. `locate` names where an operation is (line, time...).
pub fn render_text(report: &Report, locate: &dyn Fn(&OpRef) -> String) -> String {
    let mut out = String::new();
    let c = &report.counts;
    let _ = writeln!(
        out,
        "{}: {} (model {}, {} key{}, {} operations checked in {})",
        report.verdict.name(),
        match report.verdict {
            Verdict::Pass => "linearizable",
            Verdict::Fail => "not linearizable",
            Verdict::Unknown => "undecided",
        },
        report.model,
        report.keys.len(),
        if report.keys.len() == 1 { "" } else { "s" },
        c.checked,
        show_duration(report.elapsed_ns),
    );
    let _ = writeln!(
        out,
        "  left out: {} failed, {} serializable reads{}, {} reads without a value, {} \
         indeterminate writes/cas nothing observed; {} indeterminate kept",
        c.failed,
        c.serializable_reads,
        if report.include_serializable {
            " (none: included)"
        } else {
            ""
        },
        c.reads_without_value,
        c.indeterminate_unobserved,
        c.indeterminate,
    );
    for key in &report.keys {
        let _ = write!(
            out,
            "  key {:?}: {} ({} ops, {}, {} search steps)",
            key.key,
            key.verdict.name(),
            key.ops,
            show_duration(key.elapsed_ns),
            key.search_steps
        );
        if let Some(reason) = &key.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
        if let Some(f) = &key.failure {
            render_failure(&mut out, f, locate);
        }
    }
    out
}

fn render_failure(out: &mut String, f: &Failure, locate: &dyn Fn(&OpRef) -> String) {
    let n = f.linearized.len();
    let _ = writeln!(
        out,
        "    longest partial linearization: {n} operation{}{}",
        if n == 1 { "" } else { "s" },
        if n > SHOWN_STEPS {
            format!(" (first {} not shown)", n - SHOWN_STEPS)
        } else {
            String::new()
        }
    );
    for (k, step) in f
        .linearized
        .iter()
        .enumerate()
        .skip(n.saturating_sub(SHOWN_STEPS))
    {
        let _ = writeln!(
            out,
            "      {:>4}. {}  ⇒ register {}",
            k + 1,
            show_op(&step.op, locate),
            show_value(step.state)
        );
    }
    let _ = writeln!(
        out,
        "    after it the register holds {}, and no operation can come next:",
        show_value(f.state)
    );
    for c in &f.candidates {
        let _ = writeln!(out, "      {}: {}", show_op(&c.op, locate), c.reason);
    }
    let _ = writeln!(
        out,
        "    {} returned without having taken effect",
        show_op(&f.stuck, locate)
    );
}

/// `process 3 read → 5 (line 12)`.
pub fn show_op(op: &OpRef, locate: &dyn Fn(&OpRef) -> String) -> String {
    let tag = match op.completion {
        super::Completion::Ok => "",
        super::Completion::Info => " [info]",
        super::Completion::Pending => " [never completed]",
    };
    format!(
        "process {} {}{tag} ({})",
        op.process,
        op.describe,
        locate(op)
    )
}

/// A duration from nanoseconds, in the largest unit that keeps it readable.
pub fn show_duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}
