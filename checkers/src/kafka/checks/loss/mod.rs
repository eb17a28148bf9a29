//! Lost records. Two checkers share one judgement ([`judge_history`]): every
//! acknowledged record must be read back after the heal at the offset it was
//! acknowledged with, and, per partition, in the order it was sent.
//!
//! - [`LeaderIsolationChecker`] (`leader_isolation.rs`): the partition leader is cut
//!   from everything with the producer on its side. acks=all records are not acknowledged (the ISR cannot
//!   shrink: the leader cannot reach the controller), acks=1 records are — by a leader
//!   the rest of the cluster has replaced. After the heal it truncates: the checker
//!   lists exactly which acknowledged acks=1 offsets were lost, and FAILS if any acks=all
//!   record was lost or acknowledged during the isolation, or if no acks=1 record was
//!   acknowledged (the producer was not on the leader's side).
//! - [`NoLostRecordsChecker`] (`no_lost.rs`): an acks=all producer through rift for the
//!   whole scenario; every acknowledged record is consumed after the heal, in order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

mod leader_isolation;
mod no_lost;

pub use leader_isolation::{LeaderIsolationChecker, LeaderIsolationConfig};
pub use no_lost::{NoLostConfig, NoLostRecordsChecker};

use super::sleep_or_stop;
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks};

/// One produce attempt on the scenario clock.
#[derive(Debug, Clone)]
pub struct Sent {
    pub acks: Acks,
    pub partition: i32,
    /// Send order within the partition.
    pub seq: u64,
    pub payload: String,
    pub sent_ms: u64,
    pub done_ms: u64,
    pub result: Result<i64, String>,
}

/// What [`judge_history`] found.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryFindings {
    /// Acknowledged records missing at their offset: (partition, offset, payload, acks).
    pub lost: Vec<(i32, i64, String, Acks)>,
    /// Acknowledged records of one partition whose offsets do not follow send order.
    pub reordered: Vec<(i32, u64, i64)>,
    pub acknowledged: usize,
}

/// Compares acknowledged sends with the partitions' logs read after the heal.
pub fn judge_history(sent: &[Sent], logs: &HashMap<i32, Vec<(i64, String)>>) -> HistoryFindings {
    let mut f = HistoryFindings::default();
    let mut by_partition: BTreeMap<i32, Vec<&Sent>> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.result.is_ok()) {
        by_partition.entry(s.partition).or_default().push(s);
    }
    for (partition, mut acked) in by_partition {
        acked.sort_by_key(|s| s.seq);
        let log: HashMap<i64, &str> = logs
            .get(&partition)
            .map(|l| l.iter().map(|(o, p)| (*o, p.as_str())).collect())
            .unwrap_or_default();
        let mut last = -1i64;
        for s in acked {
            f.acknowledged += 1;
            let offset = *s.result.as_ref().expect("filtered to acknowledged");
            if log.get(&offset) != Some(&s.payload.as_str()) {
                f.lost.push((partition, offset, s.payload.clone(), s.acks));
                continue;
            }
            if offset <= last {
                f.reordered.push((partition, s.seq, offset));
            }
            last = offset;
        }
    }
    f
}

/// A produce load: every `interval` one record per partition, cycling through the acks
/// levels, through `bootstrap`.
struct Load {
    bootstrap: String,
    topic: String,
    partitions: i32,
    levels: Vec<Acks>,
    label: &'static str,
    interval: Duration,
    started: Instant,
    /// The run's history: every send is recorded there too.
    recorder: rift_history::Recorder,
}

/// Runs `load` until stopped; waits for answers to every send before returning.
async fn produce(load: Load, mut stop: tokio::sync::watch::Receiver<bool>) -> Vec<Sent> {
    let Load {
        bootstrap,
        topic,
        partitions,
        levels,
        label,
        interval,
        started,
        recorder,
    } = load;
    let mut producers = Vec::new();
    for acks in &levels {
        match client::producer(&bootstrap, *acks, Duration::from_secs(2)) {
            Ok(p) => producers.push((*acks, p)),
            Err(_) => return Vec::new(),
        }
    }
    let now = move || started.elapsed().as_millis() as u64;
    let mut seq = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    loop {
        for partition in 0..partitions {
            let (acks, producer) = producers[(seq as usize) % producers.len()].clone();
            let topic = topic.clone();
            let payload = format!("{label}-{}-p{partition}-{seq}", acks.as_str());
            let recorder = recorder.clone();
            inflight.spawn(async move {
                let sent_ms = now();
                let result = crate::kafka::ops::send_recorded(
                    &producer, &topic, partition, &payload, acks, &recorder,
                )
                .await;
                Sent {
                    acks,
                    partition,
                    seq,
                    payload,
                    sent_ms,
                    done_ms: now(),
                    result,
                }
            });
        }
        seq += 1;
        if sleep_or_stop(&mut stop, interval).await {
            break;
        }
    }
    let mut sent = Vec::new();
    while let Some(r) = inflight.join_next().await {
        if let Ok(s) = r {
            sent.push(s);
        }
    }
    sent
}

/// Waits until every replica of every partition is back in the ISR (so truncation
/// is over), then reads every partition from the brokers' real ports.
async fn read_back(
    info: &ClusterInfo,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> Result<HashMap<i32, Vec<(i64, String)>>, String> {
    let deadline = Instant::now() + within;
    let observer = info.brokers[0].direct_client;
    loop {
        match client::metadata_from(observer, Some(topic), Duration::from_secs(2)).await {
            Ok(v)
                if v.partitions.len() == partitions as usize
                    && v.partitions
                        .iter()
                        .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len()) =>
            {
                break;
            }
            other if Instant::now() >= deadline => {
                return Err(format!(
                    "{topic} has no full ISR {within:?} after the heal: {other:?}"
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let mut logs = HashMap::new();
    for p in 0..partitions {
        let log =
            client::read_partition(&info.direct_bootstrap(), topic, p, Duration::from_secs(20))
                .await
                .map_err(|e| e.to_string())?;
        logs.insert(p, log);
    }
    Ok(logs)
}

/// How long after the heal every replica may take to rejoin the ISR.
fn default_recover() -> Duration {
    Duration::from_secs(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(partition: i32, seq: u64, offset: Result<i64, String>, acks: Acks) -> Sent {
        Sent {
            acks,
            partition,
            seq,
            payload: format!("p{partition}-{seq}"),
            sent_ms: 0,
            done_ms: 0,
            result: offset,
        }
    }

    #[test]
    fn complete_history_passes() {
        let s = vec![
            sent(0, 0, Ok(0), Acks::All),
            sent(0, 1, Ok(1), Acks::All),
            sent(0, 2, Err("x".into()), Acks::All),
        ];
        let logs = HashMap::from([(0, vec![(0, "p0-0".to_string()), (1, "p0-1".to_string())])]);
        let f = judge_history(&s, &logs);
        assert_eq!(f.acknowledged, 2);
        assert!(f.lost.is_empty() && f.reordered.is_empty());
    }

    #[test]
    fn truncated_and_overwritten_offsets_are_lost() {
        let s = vec![
            sent(0, 0, Ok(0), Acks::All),
            sent(0, 1, Ok(1), Acks::One),
            sent(0, 2, Ok(2), Acks::One),
        ];
        // Offset 1 was overwritten by the new leader, offset 2 truncated away.
        let logs = HashMap::from([(0, vec![(0, "p0-0".to_string()), (1, "other".to_string())])]);
        let f = judge_history(&s, &logs);
        assert_eq!(f.lost.iter().map(|l| l.1).collect::<Vec<_>>(), vec![1, 2]);
        assert!(f.lost.iter().all(|l| l.3 == Acks::One));
    }

    #[test]
    fn out_of_order_acknowledgements_are_reported() {
        let s = vec![sent(1, 0, Ok(5), Acks::All), sent(1, 1, Ok(4), Acks::All)];
        let logs = HashMap::from([(1, vec![(4, "p1-1".to_string()), (5, "p1-0".to_string())])]);
        let f = judge_history(&s, &logs);
        assert_eq!(f.reordered, vec![(1, 1, 4)]);
    }
}
