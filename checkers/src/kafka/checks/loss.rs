//! Lost records. Two checkers share one judgement ([`judge_history`]): every
//! acknowledged record must be read back after the heal at the offset it was
//! acknowledged with, and, per partition, in the order it was sent.
//!
//! - [`LeaderIsolationChecker`]: the partition leader is cut from everything with the
//!   producer on its side. acks=all records are not acknowledged (the ISR cannot
//!   shrink: the leader cannot reach the controller), acks=1 records are — by a leader
//!   the rest of the cluster has replaced. After the heal it truncates: the checker
//!   lists exactly which acknowledged acks=1 offsets were lost, and FAILS if any acks=all
//!   record was lost or acknowledged during the isolation, or if no acks=1 record was
//!   acknowledged (the producer was not on the leader's side).
//! - [`NoLostRecordsChecker`]: an acks=all producer through rift for the whole scenario;
//!   every acknowledged record is consumed after the heal, in order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{
    Watcher, active_controller, create_topic, fault_targets, humantime_de, led_by, sleep_or_stop,
    verdict_after_fault,
};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks, TopicSpec};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Status, Verdict};

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
            inflight.spawn(async move {
                let sent_ms = now();
                let result = client::send(&producer, &topic, partition, &payload).await;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderIsolationConfig {
    #[serde(default = "default_isolation_topic")]
    pub topic: String,
    /// Node that leads the topic; default: the active controller (the `leader` role).
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default = "default_recover", deserialize_with = "humantime_de")]
    pub recover_within: Duration,
}

fn default_isolation_topic() -> String {
    "rift-leader-isolation".into()
}
fn default_recover() -> Duration {
    Duration::from_secs(40)
}

impl Default for LeaderIsolationConfig {
    fn default() -> Self {
        Self {
            topic: default_isolation_topic(),
            leader: None,
            recover_within: default_recover(),
        }
    }
}

pub struct LeaderIsolationChecker {
    info: ClusterInfo,
    cfg: LeaderIsolationConfig,
    topic: String,
    leader: Option<String>,
    baseline: Vec<Sent>,
    during: Option<Watcher<Vec<Sent>>>,
    applied_ms: u64,
    healed_ms: u64,
    verdict: Verdict,
}

impl LeaderIsolationChecker {
    pub fn new(info: ClusterInfo, cfg: LeaderIsolationConfig) -> Self {
        let topic = format!("{}-{:06x}", cfg.topic, rand::random::<u32>() & 0xff_ffff);
        Self {
            info,
            cfg,
            topic,
            leader: None,
            baseline: Vec::new(),
            during: None,
            applied_ms: 0,
            healed_ms: 0,
            verdict: Verdict::new("kafka-leader-isolation-acks"),
        }
    }

    async fn baseline(&mut self, ctx: &ScenarioContext) {
        let leader = match &self.cfg.leader {
            Some(l) => Some(l.clone()),
            None => active_controller(&self.info).await.map(|(n, _)| n),
        };
        let Some((leader, id)) =
            leader.and_then(|l| self.info.by_name(&l).map(|b| (l.clone(), b.id)))
        else {
            return self
                .verdict
                .fail("no leader for the topic (no active controller?)");
        };
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, 1, 3).config("min.insync.replicas", "2");
        spec.assignment = Some(led_by(&ids, id, 3));
        if let Err(e) = create_topic(&self.info, &spec).await {
            return self.verdict.fail(e);
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let _ = tx.send(true);
        // One round of acks=all before the fault: they must survive everything.
        self.baseline = produce(
            Load {
                bootstrap: self.info.bootstrap(),
                topic: self.topic.clone(),
                partitions: 1,
                levels: vec![Acks::All],
                label: "baseline",
                interval: Duration::ZERO,
                started: ctx.started,
            },
            rx,
        )
        .await;
        let ok = self.baseline.iter().filter(|s| s.result.is_ok()).count();
        if ok == 0 {
            return self.verdict.fail(format!(
                "baseline acks=all produce failed: {:?}",
                self.baseline
            ));
        }
        self.verdict.evidence(format!(
            "topic {} led by {leader}; {ok} baseline acks=all record(s) acknowledged",
            self.topic
        ));
        self.leader = Some(leader);
    }

    fn judge(&mut self, during: Vec<Sent>, logs: &HashMap<i32, Vec<(i64, String)>>) {
        let leader = self.leader.clone().unwrap_or_default();
        let in_fault = |s: &&Sent| s.result.is_ok() && s.done_ms < self.healed_ms;
        let ones: Vec<&Sent> = during
            .iter()
            .filter(|s| s.acks == Acks::One)
            .filter(in_fault)
            .collect();
        let alls: Vec<&Sent> = during
            .iter()
            .filter(|s| s.acks == Acks::All)
            .filter(in_fault)
            .collect();
        let errors: BTreeMap<String, usize> = during
            .iter()
            .filter_map(|s| s.result.as_ref().err())
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.clone()).or_default() += 1;
                m
            });
        self.verdict.evidence(format!(
            "during the isolation of {leader}: {} acks=1 and {} acks=all acknowledged; errors {errors:?}",
            ones.len(),
            alls.len()
        ));
        if ones.is_empty() {
            self.verdict.fail(format!("no acks=1 record was acknowledged by the isolated leader {leader} (was the producer on its side?)"));
        }
        for s in &alls {
            self.verdict.fail(format!(
                "acks=all record {} acknowledged at offset {:?} {} ms into the isolation",
                s.payload,
                s.result,
                s.done_ms.saturating_sub(self.applied_ms)
            ));
        }
        let mut all_sent = self.baseline.clone();
        all_sent.extend(during);
        let found = judge_history(&all_sent, logs);
        let lost_ones: Vec<i64> = found
            .lost
            .iter()
            .filter(|l| l.3 == Acks::One)
            .map(|l| l.1)
            .collect();
        let lost_alls: Vec<&(i32, i64, String, Acks)> =
            found.lost.iter().filter(|l| l.3 == Acks::All).collect();
        self.verdict.evidence(format!(
            "after the heal: {} of {} acknowledged acks=1 record(s) lost to truncation, offsets {lost_ones:?}",
            lost_ones.len(),
            all_sent.iter().filter(|s| s.acks == Acks::One && s.result.is_ok()).count()
        ));
        if !lost_alls.is_empty() {
            self.verdict
                .fail(format!("acknowledged acks=all records lost: {lost_alls:?}"));
        } else {
            self.verdict.evidence(format!(
                "no acks=all record lost ({} acknowledged in total)",
                all_sent
                    .iter()
                    .filter(|s| s.acks == Acks::All && s.result.is_ok())
                    .count()
            ));
        }
    }
}

impl Checker for LeaderIsolationChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline(ctx).await,
                Phase::FaultApplied => {
                    let Some(leader) = self.leader.clone() else {
                        return;
                    };
                    self.applied_ms = ctx.now_ms();
                    self.verdict.timing("fault applied", self.applied_ms);
                    let targets = fault_targets(ctx, &[]);
                    if !targets.contains(&leader) {
                        self.verdict.evidence(format!(
                            "note: the fault targets {targets:?}, the topic is led by {leader}"
                        ));
                    }
                    // A client on the leader's side: it only knows the leader.
                    let load = Load {
                        bootstrap: self.info.bootstrap_of(std::slice::from_ref(&leader)),
                        topic: self.topic.clone(),
                        partitions: 1,
                        levels: vec![Acks::One, Acks::All],
                        label: "isolated",
                        interval: Duration::from_millis(100),
                        started: ctx.started,
                    };
                    self.during = Some(Watcher::spawn(move |stop| produce(load, stop)));
                }
                Phase::HoldEnd => {
                    // Stop sending; answers still in flight are collected at Final.
                    if let Some(w) = &self.during {
                        w.signal_stop();
                    }
                }
                Phase::Healed => {
                    self.healed_ms = ctx.now_ms();
                    self.verdict.timing("healed", self.healed_ms);
                }
                Phase::Final => {
                    let Some(w) = self.during.take() else { return };
                    let during = match w.finish().await {
                        Ok(d) => d,
                        Err(e) => return self.verdict.fail(e),
                    };
                    match read_back(&self.info, &self.topic, 1, self.cfg.recover_within).await {
                        Ok(logs) => self.judge(during, &logs),
                        Err(e) => self.verdict.fail(e),
                    }
                }
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        verdict_after_fault(&self.verdict, self.applied_ms, || {
            "the isolated leader acknowledged acks=1 only; no acks=all record was acknowledged during the isolation or lost after the heal".to_string()
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoLostConfig {
    #[serde(default = "default_lost_topic")]
    pub topic: String,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_min_isr")]
    pub min_insync_replicas: u32,
    #[serde(default = "default_interval", deserialize_with = "humantime_de")]
    pub interval: Duration,
    #[serde(default = "default_recover", deserialize_with = "humantime_de")]
    pub recover_within: Duration,
}

fn default_lost_topic() -> String {
    "rift-no-lost".into()
}
fn default_partitions() -> i32 {
    3
}
fn default_min_isr() -> u32 {
    2
}
fn default_interval() -> Duration {
    Duration::from_millis(100)
}

impl Default for NoLostConfig {
    fn default() -> Self {
        Self {
            topic: default_lost_topic(),
            partitions: default_partitions(),
            min_insync_replicas: default_min_isr(),
            interval: default_interval(),
            recover_within: default_recover(),
        }
    }
}

pub struct NoLostRecordsChecker {
    info: ClusterInfo,
    cfg: NoLostConfig,
    topic: String,
    load: Option<Watcher<Vec<Sent>>>,
    sent: Vec<Sent>,
    verdict: Verdict,
}

impl NoLostRecordsChecker {
    pub fn new(info: ClusterInfo, cfg: NoLostConfig) -> Self {
        let topic = format!("{}-{:06x}", cfg.topic, rand::random::<u32>() & 0xff_ffff);
        Self {
            info,
            cfg,
            topic,
            load: None,
            sent: Vec::new(),
            verdict: Verdict::new("kafka-no-lost-records"),
        }
    }

    /// The topic the checker writes (tests use it to tamper with the log).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    async fn baseline(&mut self, ctx: &ScenarioContext) {
        let spec = TopicSpec::new(&self.topic, self.cfg.partitions, 3).config(
            "min.insync.replicas",
            &self.cfg.min_insync_replicas.to_string(),
        );
        if let Err(e) = create_topic(&self.info, &spec).await {
            return self.verdict.fail(e);
        }
        let load = Load {
            bootstrap: self.info.bootstrap(),
            topic: self.topic.clone(),
            partitions: self.cfg.partitions,
            levels: vec![Acks::All],
            label: "record",
            interval: self.cfg.interval,
            started: ctx.started,
        };
        self.load = Some(Watcher::spawn(move |stop| produce(load, stop)));
    }

    async fn finish(&mut self) {
        let Some(w) = self.load.take() else { return };
        self.sent = match w.finish().await {
            Ok(s) => s,
            Err(e) => return self.verdict.fail(e),
        };
        let logs = match read_back(
            &self.info,
            &self.topic,
            self.cfg.partitions,
            self.cfg.recover_within,
        )
        .await
        {
            Ok(l) => l,
            Err(e) => return self.verdict.fail(e),
        };
        let found = judge_history(&self.sent, &logs);
        let failed = self.sent.len() - found.acknowledged;
        self.verdict.evidence(format!(
            "{} acks=all records acknowledged, {failed} not acknowledged; log sizes {:?}",
            found.acknowledged,
            logs.iter()
                .map(|(p, l)| (*p, l.len()))
                .collect::<BTreeMap<_, _>>()
        ));
        if found.acknowledged == 0 {
            self.verdict
                .fail("no record was acknowledged: nothing to verify");
        }
        if !found.lost.is_empty() {
            self.verdict.fail(format!(
                "{} acknowledged record(s) lost, first (partition, offset, payload): {:?}",
                found.lost.len(),
                found
                    .lost
                    .iter()
                    .take(10)
                    .map(|l| (l.0, l.1, &l.2))
                    .collect::<Vec<_>>()
            ));
        }
        if !found.reordered.is_empty() {
            self.verdict.fail(format!(
                "acknowledged records out of send order: {:?}",
                found.reordered
            ));
        }
    }
}

impl Checker for NoLostRecordsChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline(ctx).await,
                Phase::Final => self.finish().await,
                Phase::FaultApplied | Phase::HoldEnd | Phase::Healed => {
                    if let Some(t) = ctx.fault.as_ref().map(|_| fault_targets(ctx, &[])) {
                        tracing::debug!(?phase, targets = ?t, "no-lost-records producing");
                    }
                }
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        let mut v = self.verdict.clone();
        if v.status == Status::Pass {
            v.pass(format!(
                "all {} acknowledged acks=all records read back after the heal, in order",
                self.sent.iter().filter(|s| s.result.is_ok()).count()
            ));
        }
        v
    }
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
