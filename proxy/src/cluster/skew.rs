//! Switch skew: for every change, the time between the first and the last agent
//! publishing the new matrix to its relays.
//!
//! Each agent stamps its switch with its own wall clock (nanoseconds); `skew_us` is the
//! spread of those stamps, exact when the agents share a clock (one host) and off by
//! the clock offset between hosts otherwise. `window_us` needs no shared clock: every
//! agent switched while its commit request was in flight, so the true skew is at most
//! the time from the first commit sent to the last answer received, on the
//! controller's monotonic clock.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Records kept for the summary and for status.
const KEPT: usize = 1000;
/// Records shown in status.
const SHOWN: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchRecord {
    pub epoch: u64,
    pub version: u64,
    pub at_unix_ms: u64,
    /// Agents that confirmed the switch.
    pub agents: usize,
    /// First to last agent switching, agents' clocks, microseconds (ns resolution).
    pub skew_us: f64,
    /// Upper bound without a shared clock: first commit sent to last reply, microseconds.
    pub window_us: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SkewSummary {
    /// Changes every agent confirmed, over the last 1000.
    pub changes: usize,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
}

#[derive(Default)]
pub(crate) struct SkewLog {
    records: VecDeque<SwitchRecord>,
}

impl SkewLog {
    pub fn push(&mut self, record: SwitchRecord) {
        self.records.push_back(record);
        if self.records.len() > KEPT {
            self.records.pop_front();
        }
    }

    pub fn recent(&self) -> Vec<SwitchRecord> {
        let skip = self.records.len().saturating_sub(SHOWN);
        self.records.iter().skip(skip).cloned().collect()
    }

    pub fn summary(&self) -> SkewSummary {
        let mut skews: Vec<f64> = self.records.iter().map(|r| r.skew_us).collect();
        skews.sort_by(f64::total_cmp);
        SkewSummary {
            changes: skews.len(),
            p50_us: quantile(&skews, 0.50),
            p99_us: quantile(&skews, 0.99),
            max_us: skews.last().copied(),
        }
    }
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Skew of one change from the agents' switch stamps (ns).
pub fn spread_us(stamps: &[u64]) -> f64 {
    match (stamps.iter().min(), stamps.iter().max()) {
        (Some(first), Some(last)) => (last - first) as f64 / 1000.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn spread_is_first_to_last() {
        assert_eq!(spread_us(&[5_000, 1_000, 3_000]), 4.0);
        assert_eq!(spread_us(&[1_000]), 0.0);
        assert_eq!(spread_us(&[]), 0.0);
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mut log = SkewLog::default();
        for v in 0..(KEPT as u64 + 10) {
            log.push(SwitchRecord {
                epoch: 1,
                version: v,
                at_unix_ms: 0,
                agents: 2,
                skew_us: v as f64,
                window_us: 0.0,
            });
        }
        assert_eq!(log.summary().changes, KEPT);
        assert_eq!(log.summary().max_us, Some((KEPT + 9) as f64));
        let recent = log.recent();
        assert_eq!(recent.len(), SHOWN);
        assert_eq!(recent.last().unwrap().version, KEPT as u64 + 9);
    }
}
