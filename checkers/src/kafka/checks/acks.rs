//! acks=all rejection: with replication factor 3 and `min.insync.replicas` = 2, cutting
//! a partition leader from both followers on the `replication` endpoint only (its
//! controller traffic still flows, so it can shrink the ISR) makes acks=all produces
//! fail with NOT_ENOUGH_REPLICAS while acks=1 produces succeed; after the heal acks=all
//! succeeds again.
//!
//! The driver creates a one-partition topic led by the node given (default: the
//! active controller, the `leader` role at baseline) and sends both acks levels every
//! 250 ms during each fault and after each heal until acks=all is acknowledged again,
//! never retrying, so each answer is the broker's own. Every send is in the history.
//!
//! The check, per fault window: EVERY acks=all send answered during the fault was
//! refused or is indeterminate (a timeout, NOT_ENOUGH_REPLICAS_AFTER_APPEND), at least
//! one was refused with NOT_ENOUGH_REPLICAS within the limit, acks=1 was acknowledged
//! after that, and acks=all was acknowledged again within the limit after the heal.
//! With `min.insync.replicas` = 1 the leader acknowledges acks=all alone: the FAIL
//! case. UNKNOWN when no acks=all send was answered during the fault or after it.

use std::collections::BTreeMap;
use std::time::Duration;

use rift_history::History;
use serde::Deserialize;

use super::seen::{SendOp, sends};
use super::{KafkaTimings, Limit, Watcher, led_by, opt_humantime_de, sleep_or_stop};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks, TopicSpec};
use crate::kafka::ops::{create_topic_recorded, payload, send_recorded};
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::{Interval, fault_windows, last_time, ms};
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcksConfig {
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default = "default_min_isr")]
    pub min_insync_replicas: u32,
    /// Node that leads the topic; default: the active controller (the `leader` role).
    #[serde(default)]
    pub leader: Option<String>,
    /// Default: 2 × `replica.lag.time.max.ms` (the ISR shrinks first).
    #[serde(default, deserialize_with = "opt_humantime_de")]
    pub reject_within: Option<Duration>,
    /// Default: 4 × `replica.lag.time.max.ms`.
    #[serde(default, deserialize_with = "opt_humantime_de")]
    pub recover_within: Option<Duration>,
}

fn default_min_isr() -> u32 {
    2
}

impl Default for AcksConfig {
    fn default() -> Self {
        Self {
            topic: None,
            min_insync_replicas: default_min_isr(),
            leader: None,
            reject_within: None,
            recover_within: None,
        }
    }
}

pub fn build(info: &ClusterInfo, cfg: AcksConfig, t: KafkaTimings) -> (AcksDriver, AcksRejection) {
    let topic = super::topic_name(cfg.topic.as_deref().unwrap_or("rift-acks"));
    let lag = format!("replica.lag.time.max.ms of {} ms", t.lag.as_millis());
    let check = AcksRejection {
        topic: topic.clone(),
        min_isr: cfg.min_insync_replicas,
        reject: Limit::new(cfg.reject_within, t.lag * 2, format!("2 × {lag}")),
        recover: Limit::new(cfg.recover_within, t.lag * 4, format!("4 × {lag}")),
    };
    let driver = AcksDriver {
        info: info.clone(),
        topic,
        cfg,
        ready: false,
        probes: None,
        recovery: None,
        recover_for: check.recover.limit,
    };
    (driver, check)
}

pub struct AcksDriver {
    info: ClusterInfo,
    topic: String,
    cfg: AcksConfig,
    ready: bool,
    probes: Option<Watcher<()>>,
    recovery: Option<(tokio::time::Instant, Watcher<()>)>,
    recover_for: Duration,
}

impl AcksDriver {
    async fn baseline(&mut self, ctx: &ScenarioContext) {
        let leader = self
            .cfg
            .leader
            .clone()
            .or_else(|| ctx.baseline_leader.clone());
        let Some(leader_id) = leader
            .as_deref()
            .and_then(|l| self.info.by_name(l))
            .map(|b| b.id)
        else {
            tracing::warn!(?leader, "acks-all-rejection: no broker to lead the topic");
            return;
        };
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, 1, 3).config(
            "min.insync.replicas",
            &self.cfg.min_insync_replicas.to_string(),
        );
        spec.assignment = Some(led_by(&ids, leader_id, 3));
        if create_topic_recorded(&self.info, &spec, &ctx.recorder)
            .await
            .is_err()
        {
            return;
        }
        if let Ok(p) = client::producer(&self.info.bootstrap(), Acks::All, Duration::from_secs(5)) {
            let value = payload("baseline", Acks::All, 0, 0);
            let _ = send_recorded(&p, &self.topic, 0, &value, Acks::All, &ctx.recorder).await;
        }
        self.ready = true;
    }

    fn spawn_probes(
        &self,
        ctx: &ScenarioContext,
        label: &'static str,
        until_all_ok: bool,
    ) -> Watcher<()> {
        let bootstrap = self.info.bootstrap();
        let topic = self.topic.clone();
        let recorder = ctx.recorder.clone();
        Watcher::spawn(move |mut stop| async move {
            probe_loop(
                &bootstrap,
                &topic,
                label,
                &recorder,
                until_all_ok,
                &mut stop,
            )
            .await
        })
    }
}

/// Sends one acks=all and one acks=1 record every 250 ms until stopped (or, with
/// `until_all_ok`, until acks=all is acknowledged); waits for every answer.
async fn probe_loop(
    bootstrap: &str,
    topic: &str,
    label: &str,
    recorder: &rift_history::Recorder,
    until_all_ok: bool,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let producers = (
        client::producer(bootstrap, Acks::All, Duration::from_secs(2)),
        client::producer(bootstrap, Acks::One, Duration::from_secs(2)),
    );
    let (Ok(all), Ok(one)) = producers else {
        return;
    };
    let mut inflight = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    let mut recovered = false;
    loop {
        for (acks, producer) in [(Acks::All, all.clone()), (Acks::One, one.clone())] {
            let topic = topic.to_string();
            let value = payload(label, acks, 0, seq);
            let recorder = recorder.clone();
            inflight.spawn(async move {
                let r = send_recorded(&producer, &topic, 0, &value, acks, &recorder).await;
                acks == Acks::All && r.is_ok()
            });
        }
        seq += 1;
        while let Some(done) = inflight.try_join_next() {
            recovered |= matches!(done, Ok(true));
        }
        if (until_all_ok && recovered) || sleep_or_stop(stop, Duration::from_millis(250)).await {
            break;
        }
    }
    while inflight.join_next().await.is_some() {}
}

impl Driver for AcksDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline(ctx).await,
                Phase::FaultApplied if self.ready => {
                    self.probes = Some(self.spawn_probes(ctx, "fault", false));
                }
                Phase::HoldEnd => {
                    if let Some(w) = self.probes.take() {
                        let _ = w.finish().await;
                    }
                }
                Phase::Healed if self.ready => {
                    let w = self.spawn_probes(ctx, "healed", true);
                    self.recovery = Some((tokio::time::Instant::now() + self.recover_for, w));
                }
                Phase::Final => {
                    // Probes stop once acks=all is acknowledged, or at the recovery
                    // limit: after it, the verdict is known.
                    if let Some((deadline, w)) = self.recovery.take() {
                        while !w.is_finished() && tokio::time::Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        let _ = w.finish().await;
                    }
                }
                _ => {}
            }
        })
    }
}

pub struct AcksRejection {
    topic: String,
    min_isr: u32,
    reject: Limit,
    recover: Limit,
}

fn summarize(sends: &[&SendOp]) -> String {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for s in sends {
        let outcome = if s.is_ok() {
            "ok".to_string()
        } else {
            format!("{} {}", s.outcome.name(), s.error_name())
        };
        let acks = s.acks.map_or("?", |a| a.as_str());
        *counts.entry(format!("acks={acks} {outcome}")).or_default() += 1;
    }
    format!("{counts:?}")
}

impl AcksRejection {
    /// The topic judged (its driver's).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl HistoryCheck for AcksRejection {
    fn name(&self) -> String {
        "kafka-acks-all-rejection".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault took effect: the history has no nemesis start the proxy confirmed");
            return v;
        }
        let all = sends(h, &self.topic);
        if all.is_empty() {
            v.unknown(format!(
                "no send to {} is in the history (was the topic created?)",
                self.topic
            ));
            return v;
        }
        v.evidence(format!(
            "min.insync.replicas={}; limits: first rejection within {}, acks=all again within {} of the heal",
            self.min_isr,
            self.reject.describe(),
            self.recover.describe()
        ));
        let end = last_time(h);
        for w in &windows {
            let tag = format!("fault {} ({})", w.id, w.label);
            let during: Vec<&SendOp> = all.iter().filter(|s| s.within(w)).collect();
            v.evidence(format!("{tag}: during the fault {}", summarize(&during)));
            let alls: Vec<&&SendOp> = during
                .iter()
                .filter(|s| s.acks == Some(Acks::All))
                .collect();
            if alls.is_empty() {
                v.unknown(format!(
                    "{tag}: no acks=all send was answered during the fault"
                ));
                continue;
            }
            let acked: Vec<&&&SendOp> = alls.iter().filter(|s| s.is_ok()).collect();
            if let Some(first) = acked.first() {
                v.fail(format!(
                    "{tag}: {} of {} acks=all send(s) acknowledged during the fault, first {} at offset {:?} {} ms in",
                    acked.len(),
                    alls.len(),
                    first.payload,
                    first.offset,
                    ms(first.done.unwrap_or(first.invoked).saturating_sub(w.start))
                ));
            }
            match alls.iter().find(|s| s.not_enough_replicas()) {
                None => v.fail(format!(
                    "{tag}: acks=all was never rejected with NOT_ENOUGH_REPLICAS during the fault ({} answered)",
                    alls.len()
                )),
                Some(first) => {
                    let when = Interval {
                        lo: first.invoked,
                        hi: first.done.unwrap_or(first.invoked),
                    };
                    if when.lo.saturating_sub(w.start) > self.reject.ns() {
                        v.fail(format!(
                            "{tag}: first NOT_ENOUGH_REPLICAS only {} after the fault, limit {}",
                            when.after(w.start),
                            self.reject.describe()
                        ));
                    } else {
                        v.evidence(format!(
                            "{tag}: first NOT_ENOUGH_REPLICAS {} after the fault",
                            when.after(w.start)
                        ));
                        v.measured("acks-all-rejected", "acks=all rejected", when, w.start);
                    }
                    let ones = during
                        .iter()
                        .filter(|s| s.acks == Some(Acks::One) && s.is_ok() && s.invoked >= first.invoked)
                        .count();
                    if ones == 0 {
                        v.fail(format!("{tag}: no acks=1 send was acknowledged after acks=all was rejected"));
                    } else {
                        v.evidence(format!("{tag}: {ones} acks=1 send(s) acknowledged after the rejection"));
                    }
                }
            }
            let (Some(heal_asked), Some(healed)) = (w.end, w.healed) else {
                v.unknown(format!("{tag}: the fault was never healed"));
                continue;
            };
            let after: Vec<&SendOp> = all
                .iter()
                .filter(|s| s.acks == Some(Acks::All) && s.invoked >= heal_asked)
                .collect();
            match after.iter().find(|s| s.is_ok()) {
                Some(s) => {
                    let when = Interval {
                        lo: s.invoked.max(healed),
                        hi: s.done.unwrap_or(s.invoked).max(healed),
                    };
                    if when.lo.saturating_sub(healed) > self.recover.ns() {
                        v.fail(format!(
                            "{tag}: acks=all acknowledged again only {} after the heal, limit {}",
                            when.after(healed),
                            self.recover.describe()
                        ));
                    } else {
                        v.evidence(format!("{tag}: acks=all acknowledged again {} after the heal", when.after(healed)));
                        v.measured("acks-all-recovered", "acks=all acknowledged again", when, healed);
                    }
                }
                None if after.is_empty() => v.unknown(format!("{tag}: no acks=all send after the heal")),
                None if end.saturating_sub(healed) < self.recover.ns() => v.unknown(format!(
                    "{tag}: acks=all not acknowledged when the run ended {} ms after the heal, before the limit {}",
                    ms(end - healed),
                    self.recover.describe()
                )),
                None => v.fail(format!(
                    "{tag}: acks=all never acknowledged again after the heal ({})",
                    summarize(&after)
                )),
            }
        }
        v.pass(format!(
            "every acks=all send during the fault was refused or indeterminate, NOT_ENOUGH_REPLICAS within {} (min.insync.replicas={}), acks=1 went on; acks=all recovered after the heal",
            self.reject.describe(),
            self.min_isr
        ));
        v
    }
}
