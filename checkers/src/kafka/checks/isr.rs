//! ISR shrink and re-expansion: a follower cut off from its leader leaves the ISR of
//! every partition it follows within about 1–1.5 × `replica.lag.time.max.ms`, and
//! rejoins after the heal.
//!
//! The driver creates a topic with one partition led by each broker and keeps
//! producing acks=1 (through rift) from baseline to the end: a follower whose log end
//! equals the leader's is never "lagging". The check reads the ISR from the poller's
//! metadata observations of each partition's leader.
//!
//! Per fault window it watches (partition, leader, follower) for every partition the
//! window's target follows whose leader is not itself a target.
//! FAIL: the follower left the ISR later than the limit (even at the earliest instant
//! the polls allow), or never although the leader answered polls and records were
//! acknowledged during the fault; it rejoined too late or never after the heal.
//! UNKNOWN: no fault, the topic never observed before it, no follower to watch, the
//! leader never answered, nothing acknowledged during the fault, or the fault shorter
//! than the limit.

use std::time::Duration;

use rift_history::History;
use serde::Deserialize;

use super::seen::{METADATA, answered, partition, partitions_at, sends};
use super::{
    KafkaTimings, Limit, Watcher, opt_humantime_de, rotation, sleep_or_stop, window_targets,
};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks, TopicSpec};
use crate::kafka::ops::{create_topic_recorded, payload, send_recorded};
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::{fault_windows, first_seen, last_time};
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsrConfig {
    /// Topic name prefix (a random suffix keeps re-runs apart).
    #[serde(default)]
    pub topic: Option<String>,
    /// The follower(s) expected to leave the ISR; default: the fault's target.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Default: 2 × `replica.lag.time.max.ms`.
    #[serde(default, deserialize_with = "opt_humantime_de")]
    pub shrink_within: Option<Duration>,
    /// Default: 4 × `replica.lag.time.max.ms`.
    #[serde(default, deserialize_with = "opt_humantime_de")]
    pub rejoin_within: Option<Duration>,
}

/// Builds the driver and the check of one `isr-shrink` table.
pub fn build(info: &ClusterInfo, cfg: IsrConfig, t: KafkaTimings) -> (IsrDriver, IsrShrink) {
    let topic = super::topic_name(cfg.topic.as_deref().unwrap_or("rift-isr"));
    let driver = IsrDriver {
        info: info.clone(),
        topic: topic.clone(),
        load: None,
    };
    let check = IsrShrink {
        info: info.clone(),
        topic,
        nodes: cfg.nodes,
        shrink: Limit::new(
            cfg.shrink_within,
            t.lag * 2,
            format!("2 × replica.lag.time.max.ms of {} ms", t.lag.as_millis()),
        ),
        rejoin: Limit::new(
            cfg.rejoin_within,
            t.lag * 4,
            format!("4 × replica.lag.time.max.ms of {} ms", t.lag.as_millis()),
        ),
    };
    (driver, check)
}

pub struct IsrDriver {
    info: ClusterInfo,
    topic: String,
    load: Option<Watcher<()>>,
}

impl Driver for IsrDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => {
                    let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
                    let mut spec = TopicSpec::new(&self.topic, ids.len() as i32, 3);
                    spec.assignment = Some(rotation(&ids, ids.len().min(3)));
                    if create_topic_recorded(&self.info, &spec, &ctx.recorder)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let bootstrap = self.info.bootstrap();
                    let topic = self.topic.clone();
                    let count = ids.len() as i32;
                    let recorder = ctx.recorder.clone();
                    self.load = Some(Watcher::spawn(move |mut stop| async move {
                        produce_loop(&bootstrap, &topic, count, &recorder, &mut stop).await
                    }));
                }
                Phase::Final => {
                    if let Some(load) = self.load.take() {
                        let _ = load.finish().await;
                    }
                }
                _ => {}
            }
        })
    }
}

/// Produces acks=1 records round-robin over the partitions every 100 ms until
/// stopped, each recorded as a `send`; waits for every answer before returning.
async fn produce_loop(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    recorder: &rift_history::Recorder,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let Ok(producer) = client::producer(bootstrap, Acks::One, Duration::from_secs(2)) else {
        return;
    };
    let mut seq = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    loop {
        for p in 0..partitions {
            let producer = producer.clone();
            let topic = topic.to_string();
            let recorder = recorder.clone();
            let value = payload("isr", Acks::One, p, seq);
            inflight.spawn(async move {
                let _ = send_recorded(&producer, &topic, p, &value, Acks::One, &recorder).await;
            });
        }
        seq += 1;
        while inflight.try_join_next().is_some() {}
        if sleep_or_stop(stop, Duration::from_millis(100)).await {
            break;
        }
    }
    while inflight.join_next().await.is_some() {}
}

pub struct IsrShrink {
    info: ClusterInfo,
    topic: String,
    nodes: Vec<String>,
    shrink: Limit,
    rejoin: Limit,
}

impl IsrShrink {
    /// The topic judged (its driver's).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl HistoryCheck for IsrShrink {
    fn name(&self) -> String {
        "kafka-isr-shrink".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault took effect: the history has no nemesis start the proxy confirmed");
            return v;
        }
        v.evidence(format!(
            "limits: leave the ISR within {}, rejoin within {} of the heal",
            self.shrink.describe(),
            self.rejoin.describe()
        ));
        let end = last_time(h);
        let names = self.info.names();
        let mut watched_total = 0;
        for w in &windows {
            let Some(parts) = partitions_at(h, &self.topic, w.start) else {
                v.unknown(format!(
                    "fault {} ({}): topic {} was never observed with leaders before it",
                    w.id, w.label, self.topic
                ));
                continue;
            };
            let targets = window_targets(w, &names, &self.nodes);
            let target_ids: Vec<i32> = targets
                .iter()
                .filter_map(|n| self.info.by_name(n).map(|b| b.id))
                .collect();
            let watched: Vec<(i32, i32, i32)> = parts
                .iter()
                .flat_map(|p| target_ids.iter().map(move |t| (p, *t)))
                .filter(|(p, t)| {
                    p.leader != *t && !target_ids.contains(&p.leader) && p.replicas.contains(t)
                })
                .map(|(p, t)| (p.partition, p.leader, t))
                .collect();
            if watched.is_empty() {
                v.unknown(format!(
                    "fault {} ({}): its targets {targets:?} follow no partition of {} whose leader is reachable",
                    w.id, w.label, self.topic
                ));
                continue;
            }
            watched_total += watched.len();
            let fault_end = w.end_or(end);
            let acked = sends(h, &self.topic)
                .iter()
                .filter(|s| s.is_ok() && s.within(w))
                .count();
            v.evidence(format!(
                "fault {} ({}) from {} ms: watching (partition, leader, follower) {watched:?}; {acked} record(s) acknowledged during it",
                w.id,
                w.label,
                crate::scenario::window::ms(w.start)
            ));
            for (p, leader, follower) in watched {
                let leader_name = self.info.name_of(leader);
                let who = format!(
                    "{} in {}-{p} (leader {leader_name})",
                    self.info.name_of(follower),
                    self.topic
                );
                let left = first_seen(h, &leader_name, METADATA, w.start, fault_end, |o| {
                    partition(o, &self.topic, p).is_some_and(|x| !x.isr.contains(&follower))
                });
                match left {
                    Some(i) if i.lo.saturating_sub(w.start) > self.shrink.ns() => v.fail(format!(
                        "{who} left the ISR only {} after the fault, limit {}",
                        i.after(w.start),
                        self.shrink.describe()
                    )),
                    Some(i) => {
                        v.evidence(format!("{who}: left the ISR {} after the fault", i.after(w.start)));
                        v.measured(
                            "left-isr",
                            format!("{} left the ISR", self.info.name_of(follower)),
                            i,
                            w.start,
                        );
                    }
                    None if answered(h, &leader_name, METADATA, w.start, fault_end) == 0 => v.unknown(
                        format!("{who}: the leader answered no metadata poll during the fault"),
                    ),
                    None if acked == 0 => v.unknown(format!(
                        "{who}: still in the ISR, but no record was acknowledged during the fault (a follower that is not behind is never removed)"
                    )),
                    None if fault_end.saturating_sub(w.start) < self.shrink.ns() => v.unknown(format!(
                        "{who}: still in the ISR when the fault ended after {} ms, shorter than the limit {}",
                        crate::scenario::window::ms(fault_end - w.start),
                        self.shrink.describe()
                    )),
                    None => v.fail(format!(
                        "{who}: never left the ISR during the fault (limit {})",
                        self.shrink.describe()
                    )),
                }
                let Some(healed) = w.healed else {
                    v.unknown(format!("{who}: the fault was never healed"));
                    continue;
                };
                let back = first_seen(h, &leader_name, METADATA, healed, end, |o| {
                    partition(o, &self.topic, p).is_some_and(|x| x.isr.contains(&follower))
                });
                match back {
                    Some(i) if i.lo.saturating_sub(healed) > self.rejoin.ns() => v.fail(format!(
                        "{who} rejoined the ISR only {} after the heal, limit {}",
                        i.after(healed),
                        self.rejoin.describe()
                    )),
                    Some(i) => {
                        v.evidence(format!("{who}: rejoined the ISR {} after the heal", i.after(healed)));
                        v.measured(
                            "rejoined-isr",
                            format!("{} rejoined the ISR", self.info.name_of(follower)),
                            i,
                            healed,
                        );
                    }
                    None if answered(h, &leader_name, METADATA, healed, end) == 0 => v.unknown(
                        format!("{who}: the leader answered no metadata poll after the heal"),
                    ),
                    None if end.saturating_sub(healed) < self.rejoin.ns() => v.unknown(format!(
                        "{who}: not back in the ISR when the run ended {} ms after the heal, before the limit {}",
                        crate::scenario::window::ms(end - healed),
                        self.rejoin.describe()
                    )),
                    None => v.fail(format!(
                        "{who}: never rejoined the ISR after the heal (limit {})",
                        self.rejoin.describe()
                    )),
                }
            }
        }
        if watched_total == 0 {
            v.unknown("no follower was watched in any fault");
        }
        v.pass(format!(
            "{watched_total} follower(s) left the ISR within {} and rejoined within {} of the heal",
            self.shrink.describe(),
            self.rejoin.describe()
        ));
        v
    }
}
