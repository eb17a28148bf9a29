//! The no-lost-records checker: an acks=all producer through rift for the whole
//! scenario; every acknowledged record is read back after the heal, in order.
//! FAIL: an acknowledged record missing at its offset, or out of send order.
//! UNKNOWN (without a FAIL): a partition never read back, or no record acknowledged
//! inside a fault window (then the fault put nothing at risk).

use std::collections::BTreeMap;
use std::time::Duration;

use rift_history::History;
use serde::Deserialize;

use super::super::seen::{final_reads, sends};
use super::super::{Watcher, humantime_de};
use super::{Load, default_recover, judge_history, logs_or_missing, produce, read_back};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{Acks, TopicSpec};
use crate::kafka::ops::create_topic_recorded;
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::fault_windows;
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoLostConfig {
    #[serde(default)]
    pub topic: Option<String>,
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
            topic: None,
            partitions: default_partitions(),
            min_insync_replicas: default_min_isr(),
            interval: default_interval(),
            recover_within: default_recover(),
            unclean_leader_election: false,
        }
    }
}

pub fn build(info: &ClusterInfo, cfg: NoLostConfig) -> (NoLostDriver, NoLostRecords) {
    let topic = super::super::topic_name(cfg.topic.as_deref().unwrap_or("rift-no-lost"));
    let check = NoLostRecords {
        topic: topic.clone(),
        partitions: cfg.partitions,
    };
    let driver = NoLostDriver {
        info: info.clone(),
        cfg,
        topic,
        load: None,
        healed: 0,
    };
    (driver, check)
}

pub struct NoLostDriver {
    info: ClusterInfo,
    cfg: NoLostConfig,
    topic: String,
    load: Option<Watcher<()>>,
    /// When the last heal was confirmed: the ISR is judged full only from polls after it.
    healed: rift_history::Nanos,
}

impl NoLostDriver {
    /// The topic the driver writes (tests use it to tamper with the log).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Creates the topic and starts producing.
    pub async fn start(&mut self, recorder: &rift_history::Recorder) {
        let spec = TopicSpec::new(&self.topic, self.cfg.partitions, 3)
            .config(
                "min.insync.replicas",
                &self.cfg.min_insync_replicas.to_string(),
            )
            .config(
                "unclean.leader.election.enable",
                &self.cfg.unclean_leader_election.to_string(),
            );
        if create_topic_recorded(&self.info, &spec, recorder)
            .await
            .is_err()
        {
            return;
        }
        let load = Load {
            bootstrap: self.info.bootstrap(),
            topic: self.topic.clone(),
            partitions: self.cfg.partitions,
            levels: vec![Acks::All],
            label: "record",
            interval: self.cfg.interval,
            recorder: recorder.clone(),
        };
        self.load = Some(Watcher::spawn(move |stop| produce(load, stop)));
    }

    /// Stops producing, waits for a full ISR and reads every partition back.
    pub async fn finish(&mut self, recorder: &rift_history::Recorder) {
        let Some(w) = self.load.take() else { return };
        let _ = w.finish().await;
        read_back(
            &self.info,
            recorder,
            &self.topic,
            self.cfg.partitions,
            self.healed,
            self.cfg.recover_within,
        )
        .await;
    }
}

impl Driver for NoLostDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.start(&ctx.recorder).await,
                Phase::Healed => self.healed = ctx.recorder.now(),
                Phase::Final => self.finish(&ctx.recorder).await,
                Phase::FaultApplied | Phase::HoldEnd => {}
            }
        })
    }
}

pub struct NoLostRecords {
    topic: String,
    partitions: i32,
}

impl NoLostRecords {
    /// The check of a driver's topic (tests drive by hand).
    pub fn of(driver: &NoLostDriver) -> Self {
        Self {
            topic: driver.topic.clone(),
            partitions: driver.cfg.partitions,
        }
    }
}

impl HistoryCheck for NoLostRecords {
    fn name(&self) -> String {
        "kafka-no-lost-records".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let sent = sends(h, &self.topic);
        let logs = match logs_or_missing(final_reads(h, &self.topic), self.partitions) {
            Ok(l) => l,
            Err(e) => {
                v.unknown(format!(
                    "{} was not read back after the heal: {e}",
                    self.topic
                ));
                return v;
            }
        };
        let found = judge_history(&sent, &logs);
        v.evidence(format!(
            "{} acks=all records acknowledged, {} not acknowledged; log sizes {:?}",
            found.acknowledged,
            sent.len() - found.acknowledged,
            logs.iter()
                .map(|(p, l)| (*p, l.len()))
                .collect::<BTreeMap<_, _>>()
        ));
        if !found.lost.is_empty() {
            v.fail(format!(
                "{} acknowledged record(s) lost, first (partition, offset, value): {:?}",
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
            v.fail(format!(
                "acknowledged records out of send order (partition, value, offset): {:?}",
                found.reordered
            ));
        }
        let windows = fault_windows(h);
        let at_risk = sent
            .iter()
            .filter(|s| s.is_ok() && windows.iter().any(|w| s.within(w)))
            .count();
        if found.acknowledged == 0 {
            v.unknown("no record was acknowledged: nothing to verify");
        } else if at_risk == 0 {
            v.unknown(format!(
                "no record was acknowledged inside a fault window ({} fault(s)): the faults put nothing at risk",
                windows.len()
            ));
        } else {
            v.evidence(format!("{at_risk} of them acknowledged during a fault"));
        }
        v.pass(format!(
            "all {} acknowledged acks=all records read back after the heal, in order ({at_risk} acknowledged during a fault)",
            found.acknowledged
        ));
        v
    }
}
