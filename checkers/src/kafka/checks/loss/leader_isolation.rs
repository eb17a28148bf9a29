//! The leader-isolation-acks checker: with a producer that only knows the partition
//! leader, an isolated leader acknowledges acks=1 records and no acks=all record; after
//! the heal it truncates to the new leader's log. The expectation per acks level is
//! explicit: `acks1 = "lost"` (default: every acks=1 record acknowledged during the
//! isolation is gone after the heal), `"kept"` (none may be lost) or `"any"`; acks=all
//! records are never lost.
//!
//! FAIL: an acks=all record acknowledged during the isolation or lost at any time;
//! acks=1 records that contradict the expectation (listed). UNKNOWN: no fault, no
//! acks=1 acknowledgement during it (the producer was not on the leader's side), or
//! the partition never read back.

use std::time::Duration;

use rift_history::History;
use serde::Deserialize;

use super::super::seen::{SendOp, final_reads, partitions_at, sends};
use super::super::{Watcher, humantime_de, led_by};
use super::{Load, default_recover, judge_history, logs_or_missing, produce, read_back};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{Acks, TopicSpec};
use crate::kafka::ops::create_topic_recorded;
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::{fault_windows, ms};
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

/// What must become of acks=1 records the isolated leader acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Acks1Expectation {
    /// Every one is lost to truncation (the leader was replaced).
    #[default]
    Lost,
    /// None is lost.
    Kept,
    /// Not judged (only listed).
    Any,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderIsolationConfig {
    #[serde(default)]
    pub topic: Option<String>,
    /// Node that leads the topic; default: the active controller (the `leader` role).
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default = "default_recover", deserialize_with = "humantime_de")]
    pub recover_within: Duration,
    #[serde(default)]
    pub acks1: Acks1Expectation,
}

impl Default for LeaderIsolationConfig {
    fn default() -> Self {
        Self {
            topic: None,
            leader: None,
            recover_within: default_recover(),
            acks1: Acks1Expectation::default(),
        }
    }
}

pub fn build(
    info: &ClusterInfo,
    cfg: LeaderIsolationConfig,
) -> (LeaderIsolationDriver, LeaderIsolation) {
    let topic = super::super::topic_name(cfg.topic.as_deref().unwrap_or("rift-leader-isolation"));
    let check = LeaderIsolation {
        info: info.clone(),
        topic: topic.clone(),
        acks1: cfg.acks1,
    };
    let driver = LeaderIsolationDriver {
        info: info.clone(),
        cfg,
        topic,
        leader: None,
        during: None,
        healed: 0,
    };
    (driver, check)
}

pub struct LeaderIsolationDriver {
    info: ClusterInfo,
    cfg: LeaderIsolationConfig,
    topic: String,
    leader: Option<String>,
    during: Option<Watcher<()>>,
    healed: rift_history::Nanos,
}

impl LeaderIsolationDriver {
    fn load(
        &self,
        ctx: &ScenarioContext,
        bootstrap: String,
        levels: Vec<Acks>,
        label: &'static str,
        interval: Duration,
    ) -> Load {
        Load {
            bootstrap,
            topic: self.topic.clone(),
            partitions: 1,
            levels,
            label,
            interval,
            recorder: ctx.recorder.clone(),
        }
    }

    async fn baseline(&mut self, ctx: &ScenarioContext) {
        let leader = self
            .cfg
            .leader
            .clone()
            .or_else(|| ctx.baseline_leader.clone());
        let Some((leader, id)) =
            leader.and_then(|l| self.info.by_name(&l).map(|b| (l.clone(), b.id)))
        else {
            tracing::warn!("leader-isolation-acks: no broker to lead the topic");
            return;
        };
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, 1, 3).config("min.insync.replicas", "2");
        spec.assignment = Some(led_by(&ids, id, 3));
        if create_topic_recorded(&self.info, &spec, &ctx.recorder)
            .await
            .is_err()
        {
            return;
        }
        // One round of acks=all before the fault: they must survive everything.
        let (tx, rx) = tokio::sync::watch::channel(true);
        produce(
            self.load(
                ctx,
                self.info.bootstrap(),
                vec![Acks::All],
                "baseline",
                Duration::ZERO,
            ),
            rx,
        )
        .await;
        drop(tx);
        self.leader = Some(leader);
    }
}

impl Driver for LeaderIsolationDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline(ctx).await,
                Phase::FaultApplied => {
                    let Some(leader) = self.leader.clone() else {
                        return;
                    };
                    // A client on the leader's side: it only knows the leader.
                    let load = self.load(
                        ctx,
                        self.info.bootstrap_of(std::slice::from_ref(&leader)),
                        vec![Acks::One, Acks::All],
                        "isolated",
                        Duration::from_millis(100),
                    );
                    self.during = Some(Watcher::spawn(move |stop| produce(load, stop)));
                }
                Phase::HoldEnd => {
                    // Stop sending; answers still in flight are collected at Final.
                    if let Some(w) = &self.during {
                        w.signal_stop();
                    }
                }
                Phase::Healed => self.healed = ctx.recorder.now(),
                Phase::Final => {
                    let Some(w) = self.during.take() else { return };
                    let _ = w.finish().await;
                    read_back(
                        &self.info,
                        &ctx.recorder,
                        &self.topic,
                        1,
                        self.healed,
                        self.cfg.recover_within,
                    )
                    .await;
                }
            }
        })
    }
}

pub struct LeaderIsolation {
    info: ClusterInfo,
    topic: String,
    acks1: Acks1Expectation,
}

impl LeaderIsolation {
    /// The topic judged (its driver's).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Judges `topic` instead (tests and histories recorded elsewhere).
    pub fn with_topic(mut self, topic: &str) -> Self {
        self.topic = topic.to_string();
        self
    }
}

impl HistoryCheck for LeaderIsolation {
    fn name(&self) -> String {
        "kafka-leader-isolation-acks".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault took effect: the history has no nemesis start the proxy confirmed");
            return v;
        }
        let sent = sends(h, &self.topic);
        let logs = logs_or_missing(final_reads(h, &self.topic), 1);
        let lost: Vec<(i32, i64, String, Option<Acks>)> = match &logs {
            Ok(l) => judge_history(&sent, l).lost,
            Err(_) => Vec::new(),
        };
        let is_lost = |s: &SendOp| lost.iter().any(|l| l.2 == s.payload);
        for w in &windows {
            let tag = format!("fault {} ({})", w.id, w.label);
            let leader = partitions_at(h, &self.topic, w.start)
                .and_then(|p| p.first().map(|p| self.info.name_of(p.leader)))
                .unwrap_or_else(|| "?".into());
            let during: Vec<&SendOp> = sent.iter().filter(|s| s.within(w)).collect();
            let ones: Vec<&&SendOp> = during
                .iter()
                .filter(|s| s.acks == Some(Acks::One) && s.is_ok())
                .collect();
            let alls: Vec<&&SendOp> = during
                .iter()
                .filter(|s| s.acks == Some(Acks::All) && s.is_ok())
                .collect();
            let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
            for s in during.iter().filter(|s| !s.is_ok()) {
                *errors
                    .entry(format!("{} {}", s.outcome.name(), s.error_name()))
                    .or_default() += 1;
            }
            v.evidence(format!(
                "{tag}: while {leader} led {}: {} acks=1 and {} acks=all acknowledged; not acknowledged {errors:?}",
                self.topic,
                ones.len(),
                alls.len()
            ));
            for s in &alls {
                v.fail(format!(
                    "{tag}: acks=all record {} acknowledged at offset {:?} {} ms into the isolation",
                    s.payload,
                    s.offset,
                    ms(s.done.unwrap_or(s.invoked).saturating_sub(w.start))
                ));
            }
            if ones.is_empty() {
                v.unknown(format!(
                    "{tag}: no acks=1 record was acknowledged by the isolated leader {leader} (was the producer on its side?)"
                ));
                continue;
            }
            if logs.is_err() {
                continue;
            }
            let (gone, kept): (Vec<&&&SendOp>, Vec<&&&SendOp>) =
                ones.iter().partition(|s| is_lost(s));
            v.evidence(format!(
                "{tag}: after the heal {} of {} acknowledged acks=1 record(s) lost, offsets {:?}; kept {:?}",
                gone.len(),
                ones.len(),
                gone.iter().filter_map(|s| s.offset).collect::<Vec<_>>(),
                kept.iter().filter_map(|s| s.offset).collect::<Vec<_>>()
            ));
            match self.acks1 {
                Acks1Expectation::Lost if !kept.is_empty() => v.fail(format!(
                    "{tag}: {} acks=1 record(s) acknowledged by the isolated leader survived the heal (expected lost: was the leader replaced?), first {} at offset {:?}",
                    kept.len(),
                    kept[0].payload,
                    kept[0].offset
                )),
                Acks1Expectation::Kept if !gone.is_empty() => v.fail(format!(
                    "{tag}: {} acknowledged acks=1 record(s) lost, first {} at offset {:?}",
                    gone.len(),
                    gone[0].payload,
                    gone[0].offset
                )),
                _ => {}
            }
        }
        match logs {
            Err(e) => v.unknown(format!(
                "{} was not read back after the heal: {e}",
                self.topic
            )),
            Ok(_) => {
                let lost_alls: Vec<_> = lost.iter().filter(|l| l.3 == Some(Acks::All)).collect();
                let acked_alls = sent
                    .iter()
                    .filter(|s| s.acks == Some(Acks::All) && s.is_ok())
                    .count();
                if lost_alls.is_empty() {
                    v.evidence(format!(
                        "no acks=all record lost ({acked_alls} acknowledged in total)"
                    ));
                } else {
                    v.fail(format!("acknowledged acks=all records lost: {lost_alls:?}"));
                }
            }
        }
        v.pass(match self.acks1 {
            Acks1Expectation::Lost => "the isolated leader acknowledged acks=1 only, and every one of those records was lost after the heal; no acks=all record was acknowledged during the isolation or lost",
            Acks1Expectation::Kept => "the isolated leader acknowledged acks=1 only and none was lost; no acks=all record was acknowledged during the isolation or lost",
            Acks1Expectation::Any => "the isolated leader acknowledged acks=1 only; no acks=all record was acknowledged during the isolation or lost",
        });
        v
    }
}
