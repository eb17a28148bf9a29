//! From evidence to a CAP (and PACELC partition-half) label, with the reasons beside it.
//!
//! - **A** (the minority stayed available): a client on the minority side had a write
//!   acknowledged while the partition held.
//! - **C** (the system stayed consistent): no read counted for the configuration was
//!   proven stale, and no acknowledged write was missing after the heal.
//! - CP: not A and C. AP: A (with the stale reads and lost writes that show the price,
//!   or a note that this run did not catch one). Neither: not A, yet not C either.
//!
//! Missing evidence makes the label UNKNOWN and says what was missing: no fault in the
//! history, no write attempted on the minority, no final reads to judge losses by.

use rift_history::Consistency;
use serde::Serialize;

use super::evidence::Evidence;

/// Which reads a configuration's consistency is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountedReads {
    /// Only reads that asked for linearizability (etcd's default read, ZooKeeper's
    /// sync + read, Cassandra at QUORUM): a system's local reads are stale by design
    /// and are reported beside the label, not in it.
    Strongest,
    /// Every read: the configuration's reads are its weak ones (Cassandra at ONE).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cap {
    CP,
    AP,
    /// Refused on the minority and still lost or served stale data.
    Neither,
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::CP => "CP",
            Cap::AP => "AP",
            Cap::Neither => "neither",
            Cap::Unknown => "UNKNOWN",
        }
    }

    /// PACELC's partition half: PC when consistency was kept, PA when availability.
    pub fn pacelc_partition(self) -> &'static str {
        match self {
            Cap::CP => "PC",
            Cap::AP => "PA",
            Cap::Neither | Cap::Unknown => "?",
        }
    }
}

/// The label and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Classification {
    pub cap: Cap,
    /// Minority accepted writes: `None` when none was attempted there.
    pub minority_available: Option<bool>,
    pub majority_available: Option<bool>,
    /// `None` when the run lacks the evidence (no final reads).
    pub consistent: Option<bool>,
    /// Stale reads counted for the configuration.
    pub stale_counted: usize,
    /// Stale local reads left out of the label (`CountedReads::Strongest`).
    pub stale_local: usize,
    pub lost: usize,
    pub reasons: Vec<String>,
}

pub fn classify(ev: &Evidence, counted: CountedReads) -> Classification {
    let counts = |c: Option<Consistency>| {
        counted == CountedReads::All || c != Some(Consistency::Serializable)
    };
    let stale_counted = ev
        .stale_reads
        .iter()
        .filter(|r| counts(r.consistency))
        .count();
    let stale_local = ev.stale_reads.len() - stale_counted;
    let lost = ev.lost_writes.len();
    let mut out = Classification {
        cap: Cap::Unknown,
        minority_available: availability(ev.minority_writes.attempted, ev.minority_writes.ok),
        majority_available: availability(ev.majority_writes.attempted, ev.majority_writes.ok),
        consistent: None,
        stale_counted,
        stale_local,
        lost,
        reasons: vec![],
    };
    let Some(window) = &ev.window else {
        out.reasons
            .push("no fault started and stopped in the history".into());
        return out;
    };
    if window.minority.is_empty() {
        out.reasons
            .push("the fault left no node on a minority side".into());
        return out;
    }
    out.consistent = if stale_counted > 0 || lost > 0 || ev.foreign_values > 0 {
        Some(false)
    } else if ev.final_reads == 0 {
        None
    } else {
        Some(true)
    };
    let w = &ev.minority_writes;
    match out.minority_available {
        Some(true) => out.reasons.push(format!(
            "minority ({}) acknowledged {} of {} writes during the partition{}",
            window.minority.join(","),
            w.ok,
            w.attempted,
            w.slowest_ok_ms
                .map(|ms| format!(", slowest after {ms:.0} ms"))
                .unwrap_or_default()
        )),
        Some(false) => out.reasons.push(format!(
            "minority ({}) acknowledged none of {} writes during the partition ({} refused, {} indeterminate)",
            window.minority.join(","),
            w.attempted,
            w.fail,
            w.info
        )),
        None => out.reasons.push(format!(
            "no write was attempted on the minority ({}) during the partition",
            window.minority.join(",")
        )),
    }
    if out.majority_available == Some(false) {
        out.reasons.push(format!(
            "the majority ({}) acknowledged none of {} writes during the partition either",
            window.majority.join(","),
            ev.majority_writes.attempted
        ));
    }
    if stale_counted > 0 {
        out.reasons.push(format!(
            "{stale_counted} reads during the partition proven stale"
        ));
    }
    if stale_local > 0 {
        out.reasons.push(format!(
            "{stale_local} local (serializable) reads stale, by design, not counted"
        ));
    }
    if lost > 0 {
        out.reasons
            .push(format!("{lost} acknowledged writes missing after the heal"));
    }
    if ev.foreign_values > 0 {
        out.reasons.push(format!(
            "{} reads returned a value no write wrote",
            ev.foreign_values
        ));
    }
    if ev.final_reads == 0 {
        out.reasons
            .push("no final read after the heal: losses cannot be judged".into());
    }
    out.cap = match (out.minority_available, out.consistent) {
        (None, _) => Cap::Unknown,
        (Some(true), Some(true)) => {
            out.reasons.push(
                "no stale read or lost write was caught in this run, but the minority gave up nothing"
                    .into(),
            );
            Cap::AP
        }
        (Some(true), _) => Cap::AP,
        (Some(false), Some(true)) => Cap::CP,
        (Some(false), Some(false)) => Cap::Neither,
        (Some(false), None) => Cap::Unknown,
    };
    out
}

fn availability(attempted: usize, ok: usize) -> Option<bool> {
    (attempted > 0).then_some(ok > 0)
}
