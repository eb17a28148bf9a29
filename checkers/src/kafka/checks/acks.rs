//! acks=all rejection: with replication factor 3 and `min.insync.replicas` = 2, cutting
//! a partition leader from both followers on the `replication` endpoint only (its
//! controller traffic still flows, so it can shrink the ISR) makes acks=all produces
//! fail with NOT_ENOUGH_REPLICAS (or ..._AFTER_APPEND) while acks=1 produces succeed;
//! after the heal acks=all succeeds again.
//!
//! The checker creates a one-partition topic led by the node the fault targets (the
//! `leader` role is the active controller, known at baseline) and probes both acks
//! levels every 250 ms, never retrying, so each answer is the broker's own. With
//! `min.insync.replicas` = 1 the same fault never rejects acks=all: the FAIL case.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{
    Watcher, active_controller, create_topic, fault_targets, humantime_de, led_by, sleep_or_stop,
    verdict_after_fault,
};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks, TopicSpec, is_not_enough_replicas};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcksConfig {
    #[serde(default = "default_topic")]
    pub topic: String,
    #[serde(default = "default_min_isr")]
    pub min_insync_replicas: u32,
    /// Node that leads the topic; default: the active controller (the `leader` role).
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default = "default_reject", deserialize_with = "humantime_de")]
    pub reject_within: Duration,
    #[serde(default = "default_recover", deserialize_with = "humantime_de")]
    pub recover_within: Duration,
}

fn default_topic() -> String {
    "rift-acks".into()
}
fn default_min_isr() -> u32 {
    2
}
fn default_reject() -> Duration {
    Duration::from_secs(15)
}
fn default_recover() -> Duration {
    Duration::from_secs(30)
}

impl Default for AcksConfig {
    fn default() -> Self {
        Self {
            topic: default_topic(),
            min_insync_replicas: default_min_isr(),
            leader: None,
            reject_within: default_reject(),
            recover_within: default_recover(),
        }
    }
}

/// One probe: acks level, sent and answered on the scenario clock, outcome.
#[derive(Debug, Clone)]
pub struct Probe {
    pub acks: Acks,
    pub sent_ms: u64,
    pub done_ms: u64,
    pub result: Result<i64, String>,
}

pub struct AcksRejectionChecker {
    info: ClusterInfo,
    cfg: AcksConfig,
    topic: String,
    leader: Option<String>,
    during: Option<Watcher<Vec<Probe>>>,
    after: Option<Watcher<Vec<Probe>>>,
    applied_ms: u64,
    healed_ms: u64,
    verdict: Verdict,
}

impl AcksRejectionChecker {
    pub fn new(info: ClusterInfo, cfg: AcksConfig) -> Self {
        let topic = format!("{}-{:06x}", cfg.topic, rand::random::<u32>() & 0xff_ffff);
        Self {
            info,
            cfg,
            topic,
            leader: None,
            during: None,
            after: None,
            applied_ms: 0,
            healed_ms: 0,
            verdict: Verdict::new("kafka-acks-all-rejection"),
        }
    }

    async fn baseline(&mut self) {
        let leader = match &self.cfg.leader {
            Some(l) => Some(l.clone()),
            None => active_controller(&self.info).await.map(|(n, _)| n),
        };
        let Some(leader) = leader else {
            self.verdict.fail("no active controller to lead the topic");
            return;
        };
        let Some(leader_id) = self.info.by_name(&leader).map(|b| b.id) else {
            self.verdict
                .fail(format!("leader {leader:?} is not a broker of the cluster"));
            return;
        };
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, 1, 3).config(
            "min.insync.replicas",
            &self.cfg.min_insync_replicas.to_string(),
        );
        spec.assignment = Some(led_by(&ids, leader_id, 3));
        if let Err(e) = create_topic(&self.info, &spec).await {
            self.verdict.fail(e);
            return;
        }
        let producer = client::producer(&self.info.bootstrap(), Acks::All, Duration::from_secs(5));
        match producer {
            Ok(p) => match client::send(&p, &self.topic, 0, "baseline").await {
                Ok(offset) => self.verdict.evidence(format!(
                    "baseline: acks=all acknowledged at offset {offset} (leader {leader}, min.insync.replicas={})",
                    self.cfg.min_insync_replicas
                )),
                Err(e) => self.verdict.fail(format!("baseline acks=all produce failed: {e}")),
            },
            Err(e) => self.verdict.fail(format!("producer: {e}")),
        }
        self.leader = Some(leader);
    }

    fn spawn_probes(&self, ctx: &ScenarioContext, until_all_ok: bool) -> Watcher<Vec<Probe>> {
        let bootstrap = self.info.bootstrap();
        let topic = self.topic.clone();
        let started = ctx.started;
        let recorder = ctx.recorder.clone();
        Watcher::spawn(move |mut stop| async move {
            probe_loop(
                &bootstrap,
                &topic,
                started,
                &recorder,
                until_all_ok,
                &mut stop,
            )
            .await
        })
    }

    fn judge_fault(&mut self, probes: &[Probe]) {
        let rejected = probes
            .iter()
            .filter(|p| p.acks == Acks::All)
            .find(|p| p.result.as_ref().is_err_and(|e| is_not_enough_replicas(e)));
        let summary = summarize(probes);
        self.verdict
            .evidence(format!("during the fault: {summary}"));
        let Some(first) = rejected else {
            let acked_all = probes
                .iter()
                .filter(|p| p.acks == Acks::All && p.result.is_ok())
                .count();
            self.verdict.fail(format!(
                "acks=all was never rejected with NOT_ENOUGH_REPLICAS during the fault ({acked_all} acknowledged)"
            ));
            return;
        };
        let after_ms = first.done_ms.saturating_sub(self.applied_ms);
        self.verdict.timing("acks=all rejected", first.done_ms);
        self.verdict.evidence(format!(
            "first acks=all rejection {:?} {after_ms} ms after the fault",
            first.result
        ));
        if after_ms > self.cfg.reject_within.as_millis() as u64 {
            self.verdict.fail(format!(
                "first rejection after {after_ms} ms, limit {:?}",
                self.cfg.reject_within
            ));
        }
        let ones_after = probes
            .iter()
            .filter(|p| p.acks == Acks::One && p.sent_ms >= first.sent_ms && p.result.is_ok())
            .count();
        if ones_after == 0 {
            self.verdict
                .fail("no acks=1 produce succeeded after acks=all was rejected");
        } else {
            self.verdict.evidence(format!(
                "{ones_after} acks=1 produces acknowledged after the rejection"
            ));
        }
    }

    fn judge_heal(&mut self, probes: &[Probe]) {
        self.verdict
            .evidence(format!("after the heal: {}", summarize(probes)));
        match probes
            .iter()
            .find(|p| p.acks == Acks::All && p.result.is_ok())
        {
            Some(p)
                if p.done_ms.saturating_sub(self.healed_ms)
                    <= self.cfg.recover_within.as_millis() as u64 =>
            {
                self.verdict
                    .timing("acks=all acknowledged again", p.done_ms);
            }
            Some(p) => self.verdict.fail(format!(
                "acks=all succeeded again only {} ms after the heal",
                p.done_ms.saturating_sub(self.healed_ms)
            )),
            None => self.verdict.fail(format!(
                "acks=all never succeeded within {:?} of the heal",
                self.cfg.recover_within
            )),
        }
    }
}

fn summarize(probes: &[Probe]) -> String {
    let mut counts: std::collections::BTreeMap<String, u32> = Default::default();
    for p in probes {
        let outcome = match &p.result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        *counts
            .entry(format!("acks={} {outcome}", p.acks.as_str()))
            .or_default() += 1;
    }
    format!("{counts:?}")
}

async fn probe_loop(
    bootstrap: &str,
    topic: &str,
    started: Instant,
    recorder: &rift_history::Recorder,
    until_all_ok: bool,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Vec<Probe> {
    let producers = (
        client::producer(bootstrap, Acks::All, Duration::from_secs(2)),
        client::producer(bootstrap, Acks::One, Duration::from_secs(2)),
    );
    let (Ok(all), Ok(one)) = producers else {
        return Vec::new();
    };
    let now = move || started.elapsed().as_millis() as u64;
    let mut inflight = tokio::task::JoinSet::new();
    let mut probes = Vec::new();
    let mut seq = 0u64;
    loop {
        for (acks, producer) in [(Acks::All, all.clone()), (Acks::One, one.clone())] {
            let topic = topic.to_string();
            let payload = format!("acks{}-{seq}", acks.as_str());
            let recorder = recorder.clone();
            inflight.spawn(async move {
                let sent_ms = now();
                let result = crate::kafka::ops::send_recorded(
                    &producer, &topic, 0, &payload, acks, &recorder,
                )
                .await;
                Probe {
                    acks,
                    sent_ms,
                    done_ms: now(),
                    result,
                }
            });
        }
        seq += 1;
        while let Some(Ok(p)) = inflight.try_join_next() {
            probes.push(p);
        }
        let recovered = probes
            .iter()
            .any(|p| p.acks == Acks::All && p.result.is_ok());
        if (until_all_ok && recovered) || sleep_or_stop(stop, Duration::from_millis(250)).await {
            break;
        }
    }
    while let Some(Ok(p)) = inflight.join_next().await {
        probes.push(p);
    }
    probes.sort_by_key(|p| p.sent_ms);
    probes
}

impl Checker for AcksRejectionChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline().await,
                Phase::FaultApplied => {
                    let Some(leader) = self.leader.clone() else {
                        return;
                    };
                    self.applied_ms = ctx.now_ms();
                    self.verdict.timing("fault applied", self.applied_ms);
                    let targets = fault_targets(ctx, &[]);
                    if !targets.is_empty() && !targets.contains(&leader) {
                        self.verdict.evidence(format!(
                            "note: the fault targets {targets:?}, the topic is led by {leader}"
                        ));
                    }
                    self.during = Some(self.spawn_probes(ctx, false));
                }
                Phase::HoldEnd => {
                    if let Some(w) = self.during.take() {
                        match w.finish().await {
                            Ok(probes) => self.judge_fault(&probes),
                            Err(e) => self.verdict.fail(e),
                        }
                    }
                }
                Phase::Healed => {
                    if self.leader.is_none() {
                        return;
                    }
                    self.healed_ms = ctx.now_ms();
                    self.verdict.timing("healed", self.healed_ms);
                    self.after = Some(self.spawn_probes(ctx, true));
                }
                Phase::Final => {
                    if let Some(w) = self.after.take() {
                        let limit = Duration::from_millis(self.healed_ms) + self.cfg.recover_within;
                        w.wait_until(ctx.started + limit).await;
                        match w.finish().await {
                            Ok(probes) => self.judge_heal(&probes),
                            Err(e) => self.verdict.fail(e),
                        }
                    }
                }
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        let min_isr = self.cfg.min_insync_replicas;
        verdict_after_fault(&self.verdict, self.applied_ms, || {
            format!(
                "acks=all rejected with NOT_ENOUGH_REPLICAS (min.insync.replicas={min_isr}) while acks=1 succeeded; acks=all recovered after the heal"
            )
        })
    }
}
