//! Leader step-down: partitions led by an isolated broker get a new leader on the
//! majority side, and when the isolated broker was the active KRaft controller, a
//! majority node takes over the metadata quorum with a higher epoch.
//!
//! Leadership moves only after the controller fences the broker
//! (`broker.session.timeout.ms`), so the default limit is a few session timeouts.
//! The checker creates a topic with one partition led by each broker, so whichever
//! broker the fault isolates leads one of them.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{
    Watcher, active_controller, create_topic, fault_targets, humantime_de, rotation, sleep_or_stop,
    verdict_after_fault,
};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, PartitionView, TopicSpec};
use crate::kafka::wire::{QuorumView, describe_quorum};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDownConfig {
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The isolated broker(s); default: the fault's target or minority.
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default = "default_within", deserialize_with = "humantime_de")]
    pub within: Duration,
}

fn default_topic() -> String {
    "rift-leaders".into()
}
fn default_within() -> Duration {
    Duration::from_secs(15)
}

impl Default for StepDownConfig {
    fn default() -> Self {
        Self {
            topic: default_topic(),
            nodes: Vec::new(),
            within: default_within(),
        }
    }
}

#[derive(Debug, Default)]
struct Moves {
    /// partition -> (new leader id, at ms)
    partitions: Vec<(i32, Option<(i32, u64)>)>,
    /// new controller, its epoch, at ms
    controller: Option<(String, i32, u64)>,
}

pub struct LeaderStepDownChecker {
    info: ClusterInfo,
    cfg: StepDownConfig,
    topic: String,
    partitions: Vec<PartitionView>,
    controller: Option<(String, QuorumView)>,
    targets: Vec<String>,
    expect_controller_move: bool,
    watch: Option<Watcher<Moves>>,
    applied_ms: u64,
    verdict: Verdict,
}

impl LeaderStepDownChecker {
    pub fn new(info: ClusterInfo, cfg: StepDownConfig) -> Self {
        let topic = format!("{}-{:06x}", cfg.topic, rand::random::<u32>() & 0xff_ffff);
        Self {
            info,
            cfg,
            topic,
            partitions: Vec::new(),
            controller: None,
            targets: Vec::new(),
            expect_controller_move: false,
            watch: None,
            applied_ms: 0,
            verdict: Verdict::new("kafka-leader-step-down"),
        }
    }

    async fn baseline(&mut self) {
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, ids.len() as i32, 3);
        spec.assignment = Some(rotation(&ids, ids.len().min(3)));
        match create_topic(&self.info, &spec).await {
            Ok(parts) => self.partitions = parts,
            Err(e) => {
                return self.verdict.fail(e);
            }
        }
        self.controller = active_controller(&self.info).await;
        self.verdict.evidence(format!(
            "baseline: leaders {:?}, active controller {:?}",
            self.partitions
                .iter()
                .map(|p| (p.partition, self.info.name_of(p.leader)))
                .collect::<Vec<_>>(),
            self.controller.as_ref().map(|(n, v)| (n, v.leader_epoch))
        ));
    }

    fn fault_applied(&mut self, ctx: &ScenarioContext) {
        if self.partitions.is_empty() {
            return;
        }
        self.applied_ms = ctx.now_ms();
        self.verdict.timing("fault applied", self.applied_ms);
        self.targets = fault_targets(ctx, &self.cfg.nodes);
        let target_ids: Vec<i32> = self
            .targets
            .iter()
            .filter_map(|n| self.info.by_name(n).map(|b| b.id))
            .collect();
        let majority: Vec<String> = self
            .info
            .names()
            .into_iter()
            .filter(|n| !self.targets.contains(n))
            .collect();
        let watched: Vec<i32> = self
            .partitions
            .iter()
            .filter(|p| target_ids.contains(&p.leader))
            .map(|p| p.partition)
            .collect();
        let baseline_epoch = match &self.controller {
            Some((name, view)) if self.targets.contains(name) => Some(view.leader_epoch),
            _ => None,
        };
        self.expect_controller_move = baseline_epoch.is_some();
        if watched.is_empty() && baseline_epoch.is_none() {
            return self.verdict.fail(format!(
                "the fault targets {:?}, which lead no partition of {} and are not the active controller",
                self.targets, self.topic
            ));
        }
        let info = self.info.clone();
        let topic = self.topic.clone();
        let started = ctx.started;
        self.watch = Some(Watcher::spawn(move |mut stop| async move {
            watch_moves(
                info,
                topic,
                majority,
                target_ids,
                watched,
                baseline_epoch,
                started,
                &mut stop,
            )
            .await
        }));
    }

    fn judge(&mut self, moves: Moves) {
        let limit = self.cfg.within.as_millis() as u64;
        for (partition, moved) in moves.partitions {
            match moved {
                Some((leader, at)) if at - self.applied_ms.min(at) <= limit => {
                    self.verdict.evidence(format!(
                        "{}-{partition}: leader moved to {} {} ms after the fault",
                        self.topic,
                        self.info.name_of(leader),
                        at.saturating_sub(self.applied_ms)
                    ));
                    self.verdict
                        .timing(format!("{}-{partition} new leader", self.topic), at);
                }
                Some((_, at)) => self.verdict.fail(format!(
                    "{}-{partition}: leader moved only {} ms after the fault, limit {:?}",
                    self.topic,
                    at.saturating_sub(self.applied_ms),
                    self.cfg.within
                )),
                None => self.verdict.fail(format!(
                    "{}-{partition}: still led by an isolated broker ({:?}) at the end of the hold",
                    self.topic, self.targets
                )),
            }
        }
        if self.expect_controller_move {
            match moves.controller {
                Some((name, epoch, at)) => {
                    self.verdict.evidence(format!(
                        "KRaft controller moved to {name} (epoch {epoch}) {} ms after the fault",
                        at.saturating_sub(self.applied_ms)
                    ));
                    self.verdict.timing("new active controller", at);
                }
                None => self.verdict.fail(format!(
                    "no majority node became the active controller (isolated {:?} was)",
                    self.targets
                )),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn watch_moves(
    info: ClusterInfo,
    topic: String,
    majority: Vec<String>,
    target_ids: Vec<i32>,
    watched: Vec<i32>,
    baseline_epoch: Option<i32>,
    started: Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Moves {
    let mut moves = Moves {
        partitions: watched.iter().map(|p| (*p, None)).collect(),
        controller: None,
    };
    let now = || started.elapsed().as_millis() as u64;
    loop {
        for name in &majority {
            let Some(b) = info.by_name(name) else {
                continue;
            };
            if moves.partitions.iter().any(|(_, m)| m.is_none())
                && let Ok(view) =
                    client::metadata_from(b.direct_client, Some(&topic), Duration::from_secs(2))
                        .await
            {
                for (partition, moved) in moves.partitions.iter_mut() {
                    if moved.is_some() {
                        continue;
                    }
                    if let Some(p) = view.partitions.iter().find(|p| p.partition == *partition)
                        && p.leader >= 0
                        && !target_ids.contains(&p.leader)
                    {
                        *moved = Some((p.leader, now()));
                    }
                }
            }
            if let Some(epoch) = baseline_epoch
                && moves.controller.is_none()
                && let Ok(q) = describe_quorum(b.direct_controller, Duration::from_secs(1)).await
                && q.is_leader()
                && q.leader_epoch > epoch
            {
                moves.controller = Some((name.clone(), q.leader_epoch, now()));
            }
        }
        let done = moves.partitions.iter().all(|(_, m)| m.is_some())
            && (baseline_epoch.is_none() || moves.controller.is_some());
        if done || sleep_or_stop(stop, Duration::from_millis(200)).await {
            return moves;
        }
    }
}

impl Checker for LeaderStepDownChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline().await,
                Phase::FaultApplied => self.fault_applied(ctx),
                Phase::HoldEnd => {
                    if let Some(w) = self.watch.take() {
                        match w.finish().await {
                            Ok(moves) => self.judge(moves),
                            Err(e) => self.verdict.fail(e),
                        }
                    }
                }
                Phase::Healed | Phase::Final => {}
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        let controller = if self.expect_controller_move {
            ", and so did the KRaft controller"
        } else {
            ""
        };
        let summary = format!(
            "leadership left the isolated broker(s) {:?} within {:?}{controller}",
            self.targets, self.cfg.within
        );
        verdict_after_fault(&self.verdict, self.applied_ms, || summary)
    }
}
