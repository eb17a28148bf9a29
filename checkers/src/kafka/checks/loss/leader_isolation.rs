//! The leader-isolation-acks checker: acks=1 records acknowledged by an isolated
//! partition leader are truncated after the heal, acks=all records never are.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::super::{
    Watcher, active_controller, create_topic, fault_targets, humantime_de, led_by,
    verdict_after_fault,
};
use super::{Load, Sent, default_recover, judge_history, produce, read_back};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{Acks, TopicSpec};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

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
                recorder: ctx.recorder.clone(),
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
                        recorder: ctx.recorder.clone(),
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
