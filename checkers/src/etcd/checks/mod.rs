//! etcd checkers. Each judges one property of the real cluster and returns a
//! [`Verdict`](crate::scenario::Verdict) with evidence and timings. [`step_down`] and
//! [`lost_writes`] are pure functions of the recorded history
//! ([`HistoryCheck`](crate::scenario::check::HistoryCheck)); the others still drive the
//! cluster at each phase.
//!
//! - [`step_down`]: the isolated leader steps down; the majority elects a new leader at
//!   a higher term.
//! - [`quorum`]: during a majority/minority split, Puts through the majority succeed,
//!   Puts and linearizable reads through the minority fail, and serializable reads there
//!   return the stale value.
//! - [`no_quorum`]: with no majority anywhere (two-vs-two), no member acknowledges a
//!   write; after heal every member does again.
//! - [`stability`]: leader changes and applied-term increases during the fault and
//!   after heal, against stated bounds (partial partitions, pre-vote).
//! - [`majority_leader`]: a majority side keeps (or elects) a leader during the fault,
//!   and all members follow one leader after heal.
//! - [`lost_writes`]: every Put the workload saw acknowledged is read back with its
//!   value after heal; indeterminate Puts are resolved.
//!
//! The `linearizable` checker that etcd's scenarios name is shared by every system with
//! a register workload: [`crate::register::linearizable`].

pub mod lost_writes;
pub mod majority_leader;
pub mod no_quorum;
pub mod quorum;
pub mod stability;
pub mod step_down;

use std::time::Duration;

/// Deadline for Status calls while polling: well under the election timeout scale so a
/// poll loop keeps a ~100 ms resolution even when some members do not answer.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(300);
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A spawned during-hold task, collected at `HoldEnd`.
pub(crate) async fn collect<T>(
    handle: &mut Option<tokio::task::JoinHandle<T>>,
    grace: Duration,
) -> Option<T> {
    let mut h = handle.take()?;
    match tokio::time::timeout(grace, &mut h).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(_)) => None,
        Err(_) => {
            h.abort();
            None
        }
    }
}
