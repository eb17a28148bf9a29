//! The no-lost-records checker: an acks=all producer through rift for the whole
//! scenario; every acknowledged record is read back after the heal, in order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::super::{Watcher, create_topic, fault_targets, humantime_de};
use super::{Load, Sent, default_recover, judge_history, produce, read_back};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{Acks, TopicSpec};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Status, Verdict};

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
    /// Create the topic with `unclean.leader.election.enable=true`: a replica outside
    /// the ISR may then be elected, which loses what only the old leader had.
    #[serde(default)]
    pub unclean_leader_election: bool,
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
            unclean_leader_election: false,
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
        let spec = TopicSpec::new(&self.topic, self.cfg.partitions, 3)
            .config(
                "min.insync.replicas",
                &self.cfg.min_insync_replicas.to_string(),
            )
            .config(
                "unclean.leader.election.enable",
                &self.cfg.unclean_leader_election.to_string(),
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
            recorder: ctx.recorder.clone(),
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
