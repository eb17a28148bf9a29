//! Lost records. Two checkers share one judgement ([`judge_history`]): every
//! acknowledged record must be read back after the heal at the offset it was
//! acknowledged with, and, per partition, in the order it was sent.
//!
//! - [`LeaderIsolation`] (`leader_isolation.rs`): the partition leader is cut from
//!   everything with the producer on its side. acks=all records are not acknowledged
//!   (the ISR cannot shrink: the leader cannot reach the controller), acks=1 records
//!   are, by a leader the rest of the cluster has replaced; after the heal it
//!   truncates. The expectation per acks level is explicit and checked: acks=1 records
//!   acknowledged during the isolation are lost (`acks1 = "lost"`, the default), and no
//!   acks=all record is ever lost.
//! - [`NoLostRecords`] (`no_lost.rs`): an acks=all producer through rift for the whole
//!   scenario; every acknowledged record is read back after the heal, in order.
//!
//! Both drivers record their sends and, after the heal, wait (on the poller's
//! observations) for a full ISR before reading the partitions back as `read`
//! operations. No acknowledgement inside a fault window: UNKNOWN.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub mod leader_isolation;
pub mod no_lost;

pub use leader_isolation::{
    Acks1Expectation, LeaderIsolation, LeaderIsolationConfig, LeaderIsolationDriver,
};
pub use no_lost::{NoLostConfig, NoLostDriver, NoLostRecords};

use super::seen::SendOp;
use super::{sleep_or_stop, wait_in_sync};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks};
use crate::kafka::ops::{payload, read_recorded, send_recorded};

/// What [`judge_history`] found.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryFindings {
    /// Acknowledged records missing at their offset: (partition, offset, payload, acks).
    pub lost: Vec<(i32, i64, String, Option<Acks>)>,
    /// Acknowledged records of one partition whose offsets do not follow send order:
    /// (partition, payload, offset).
    pub reordered: Vec<(i32, String, i64)>,
    pub acknowledged: usize,
}

/// Compares acknowledged sends with the partitions' logs read after the heal. Send
/// order within a partition is invocation order.
pub fn judge_history(sent: &[SendOp], logs: &HashMap<i32, Vec<(i64, String)>>) -> HistoryFindings {
    let mut f = HistoryFindings::default();
    let mut by_partition: BTreeMap<i32, Vec<&SendOp>> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.is_ok()) {
        by_partition.entry(s.partition).or_default().push(s);
    }
    for (partition, mut acked) in by_partition {
        acked.sort_by_key(|s| s.invoked);
        let log: HashMap<i64, &str> = logs
            .get(&partition)
            .map(|l| l.iter().map(|(o, p)| (*o, p.as_str())).collect())
            .unwrap_or_default();
        let mut last = -1i64;
        for s in acked {
            f.acknowledged += 1;
            let Some(offset) = s.offset else {
                f.lost.push((partition, -1, s.payload.clone(), s.acks));
                continue;
            };
            if log.get(&offset) != Some(&s.payload.as_str()) {
                f.lost.push((partition, offset, s.payload.clone(), s.acks));
                continue;
            }
            if offset <= last {
                f.reordered.push((partition, s.payload.clone(), offset));
            }
            last = offset;
        }
    }
    f
}

/// A produce load: every `interval` one record per partition, cycling through the acks
/// levels, through `bootstrap`, every send recorded.
pub struct Load {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub levels: Vec<Acks>,
    pub label: &'static str,
    pub interval: Duration,
    pub recorder: rift_history::Recorder,
}

/// Runs `load` until stopped (one round when `stop` is already true); waits for the
/// answer to every send before returning.
pub async fn produce(load: Load, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Load {
        bootstrap,
        topic,
        partitions,
        levels,
        label,
        interval,
        recorder,
    } = load;
    let mut producers = Vec::new();
    for acks in &levels {
        match client::producer(&bootstrap, *acks, Duration::from_secs(2)) {
            Ok(p) => producers.push((*acks, p)),
            Err(e) => {
                tracing::warn!(%e, "producer");
                return;
            }
        }
    }
    let mut seq = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    loop {
        for partition in 0..partitions {
            let (acks, producer) = producers[(seq as usize) % producers.len()].clone();
            let topic = topic.clone();
            let value = payload(label, acks, partition, seq);
            let recorder = recorder.clone();
            inflight.spawn(async move {
                let _ = send_recorded(&producer, &topic, partition, &value, acks, &recorder).await;
            });
        }
        seq += 1;
        while inflight.try_join_next().is_some() {}
        if sleep_or_stop(&mut stop, interval).await {
            break;
        }
    }
    while inflight.join_next().await.is_some() {}
}

/// Waits (on the poller's observations after `since`) until every replica of every
/// partition is back in the ISR, so truncation is over, then reads every partition
/// from the brokers' real ports, each read recorded.
pub async fn read_back(
    info: &ClusterInfo,
    recorder: &rift_history::Recorder,
    topic: &str,
    partitions: i32,
    since: rift_history::Nanos,
    within: Duration,
) {
    if let Err(e) = wait_in_sync(recorder, topic, partitions as usize, since, within).await {
        // The reads still happen: the check then judges what they returned, and the
        // history says the ISR was not full.
        tracing::warn!("{e}");
    }
    for p in 0..partitions {
        let _ = read_recorded(info, topic, p, recorder).await;
    }
}

/// The logs of `reads`, or the partitions that could not be read.
pub fn logs_or_missing(
    reads: BTreeMap<i32, Result<Vec<(i64, String)>, String>>,
    partitions: i32,
) -> Result<HashMap<i32, Vec<(i64, String)>>, String> {
    let mut logs = HashMap::new();
    let mut missing = Vec::new();
    for p in 0..partitions {
        match reads.get(&p) {
            Some(Ok(log)) => {
                logs.insert(p, log.clone());
            }
            Some(Err(e)) => missing.push(format!("partition {p}: {e}")),
            None => missing.push(format!("partition {p}: never read")),
        }
    }
    if missing.is_empty() {
        Ok(logs)
    } else {
        Err(missing.join("; "))
    }
}

/// How long after the heal every replica may take to rejoin the ISR.
fn default_recover() -> Duration {
    Duration::from_secs(40)
}

#[cfg(test)]
mod tests;
