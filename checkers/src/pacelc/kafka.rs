//! The Kafka side of `kind = "pacelc"`: a driver that produces with acks=all, acks=1
//! and acks=0, one sequential producer loop each, to a one-partition topic of
//! replication factor 3 per `min.insync.replicas` value, for the whole run; every send
//! is in the history with its value naming the acks level and min.insync.replicas
//! (`pacelc-misr2-acksall-p0-17`) and `node` naming the partition's leader. The check
//! is the same pure [`super::Pacelc`] as etcd's.
//!
//! The driver starts at the baseline phase (after the scenario's baseline wait), so
//! the scenario's first step must leave it time: topic creation plus a few seconds of
//! sends before the first fault make the baseline.

use std::time::Duration;

use serde::Deserialize;

use super::{Pacelc, Settings};
use crate::kafka::ClusterInfo;
use crate::kafka::checks::{Watcher, led_by, sleep_or_stop, topic_name};
use crate::kafka::client::{self, Acks, TopicSpec};
use crate::kafka::ops::{create_topic_recorded, payload, send_recorded_to};
use crate::scenario::check::Driver;
use crate::scenario::{BoxFuture, Phase, ScenarioContext, ScenarioError};

/// `[[checker]] kind = "pacelc"` settings for Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaPacelcConfig {
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    #[serde(default = "default_warmup", with = "crate::scenario::spec::dur")]
    pub warmup: Duration,
    #[serde(default = "default_tolerance", with = "crate::scenario::spec::dur")]
    pub tolerance: Duration,
    /// One topic per value (each 1..=3).
    #[serde(default = "default_isr")]
    pub min_insync_replicas: Vec<u32>,
    /// Pause between one answer and the next send of a producer loop.
    #[serde(default = "default_pause", with = "crate::scenario::spec::dur")]
    pub pause: Duration,
}

fn default_min_samples() -> usize {
    Settings::default().min_samples
}
fn default_warmup() -> Duration {
    Settings::default().warmup
}
fn default_tolerance() -> Duration {
    Settings::default().tolerance
}
fn default_isr() -> Vec<u32> {
    vec![2]
}
fn default_pause() -> Duration {
    Duration::from_millis(20)
}

/// The driver and the check of one `[[checker]]` table; errors name the table.
pub fn build(
    info: &ClusterInfo,
    cfg: KafkaPacelcConfig,
    origin: &str,
) -> Result<(PacelcDriver, Pacelc), ScenarioError> {
    let bad = |field: &str, value: String, reason: &str| ScenarioError::Field {
        origin: origin.to_string(),
        field: field.to_string(),
        value,
        reason: reason.to_string(),
    };
    if cfg.min_insync_replicas.is_empty()
        || cfg.min_insync_replicas.iter().any(|n| !(1..=3).contains(n))
    {
        return Err(bad(
            "min_insync_replicas",
            format!("{:?}", cfg.min_insync_replicas),
            "one or more of 1, 2, 3 (the topics have 3 replicas)",
        ));
    }
    if cfg.pause > Duration::from_secs(10) {
        return Err(bad("pause", format!("{:?}", cfg.pause), "at most 10s"));
    }
    let settings = Settings {
        min_samples: cfg.min_samples,
        warmup: cfg.warmup,
        tolerance: cfg.tolerance,
    }
    .validate(origin)?;
    let driver = PacelcDriver {
        info: info.clone(),
        cfg,
        loops: Vec::new(),
    };
    Ok((driver, Pacelc::new(settings)))
}

pub struct PacelcDriver {
    info: ClusterInfo,
    cfg: KafkaPacelcConfig,
    loops: Vec<Watcher<()>>,
}

impl PacelcDriver {
    async fn start(&mut self, ctx: &ScenarioContext) {
        let Some(leader) = ctx
            .baseline_leader
            .as_deref()
            .and_then(|l| self.info.by_name(l))
            .cloned()
        else {
            tracing::warn!("pacelc: no leader at baseline to lead the topics");
            return;
        };
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        for isr in self.cfg.min_insync_replicas.clone() {
            let topic = topic_name(&format!("rift-pacelc-misr{isr}"));
            let mut spec =
                TopicSpec::new(&topic, 1, 3).config("min.insync.replicas", &isr.to_string());
            spec.assignment = Some(led_by(&ids, leader.id, 3));
            if create_topic_recorded(&self.info, &spec, &ctx.recorder)
                .await
                .is_err()
            {
                continue;
            }
            for acks in [Acks::All, Acks::One, Acks::Zero] {
                let Ok(producer) =
                    client::producer(&self.info.bootstrap(), acks, Duration::from_secs(5))
                else {
                    continue;
                };
                let (topic, recorder) = (topic.clone(), ctx.recorder.clone());
                let (node, pause) = (leader.name.clone(), self.cfg.pause);
                let label = format!("pacelc-misr{isr}");
                self.loops.push(Watcher::spawn(move |mut stop| async move {
                    let mut seq = 0u64;
                    loop {
                        let value = payload(&label, acks, 0, seq);
                        let target = (topic.as_str(), 0);
                        let _ = send_recorded_to(
                            &producer,
                            target,
                            &value,
                            acks,
                            Some(&node),
                            &recorder,
                        )
                        .await;
                        seq += 1;
                        if sleep_or_stop(&mut stop, pause).await {
                            break;
                        }
                    }
                }));
            }
        }
    }
}

impl Driver for PacelcDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.start(ctx).await,
                Phase::Final => {
                    for l in self.loops.drain(..) {
                        let _ = l.finish().await;
                    }
                }
                _ => {}
            }
        })
    }
}
