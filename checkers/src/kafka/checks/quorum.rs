//! Quorum availability: in a majority/minority split the majority side keeps a KRaft
//! metadata leader and can create a topic, while no minority node leads the quorum and
//! no topic is created next to it; with no majority anywhere (two-vs-two) no node
//! leads and no topic is created on either side.
//!
//! Sides come from the fault as the history recorded it (which nodes still reach a
//! quorum on the `controller` endpoint), or `no_quorum = true` states that no side may
//! have one. The driver sends CreateTopics straight to each broker's real port, which
//! forwards it to the controller it knows through rift: the answer is that side's. An
//! isolated Raft leader resigns after check-quorum (1.5 × fetch timeout), so minority
//! nodes are judged after `grace`. Each request is a `create-topic` operation.
//!
//! A minority request that times out is indeterminate, not a refusal: the check
//! resolves it from the poller's metadata. A topic listed by any broker during the
//! fault was created during it (FAIL); one first listed after the heal took effect
//! late; one never listed after the heal was never created.

use std::time::Duration;

use rift_history::{History, OpType};
use serde::Deserialize;

use super::seen::{QUORUM, answered, topic_listed};
use super::{KafkaTimings, Watcher, humantime_de, sleep_or_stop};
use crate::kafka::ClusterInfo;
use crate::kafka::ops::create_topic_at_recorded;
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::{Interval, fault_windows, last_time, ms};
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuorumConfig {
    /// Expect no side to keep a quorum, whatever the fault's sides are.
    #[serde(default)]
    pub no_quorum: bool,
    /// Time for an isolated leader to resign before minority nodes are judged;
    /// default 3 × `controller.quorum.fetch.timeout.ms` (check-quorum is 1.5×).
    #[serde(default, deserialize_with = "super::opt_humantime_de")]
    pub grace: Option<Duration>,
    /// How long the broker waits for the controller on a CreateTopics request (the
    /// broker may first spend `request.timeout.ms` on a held connection to the old
    /// controller before it forwards to the new one).
    #[serde(default = "default_create_timeout", deserialize_with = "humantime_de")]
    pub create_timeout: Duration,
}

fn default_create_timeout() -> Duration {
    Duration::from_secs(3)
}

pub fn build(
    info: &ClusterInfo,
    cfg: QuorumConfig,
    t: KafkaTimings,
) -> (QuorumDriver, QuorumAvailability) {
    let grace = cfg.grace.unwrap_or(t.quorum_fetch * 3);
    (
        QuorumDriver {
            info: info.clone(),
            no_quorum: cfg.no_quorum,
            grace,
            create_timeout: cfg.create_timeout,
            probes: None,
        },
        QuorumAvailability {
            info: info.clone(),
            no_quorum: cfg.no_quorum,
            grace,
        },
    )
}

pub struct QuorumDriver {
    info: ClusterInfo,
    no_quorum: bool,
    grace: Duration,
    create_timeout: Duration,
    probes: Option<Watcher<()>>,
}

impl Driver for QuorumDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::FaultApplied => {
                    let majority = match (&ctx.fault, self.no_quorum) {
                        (Some(f), false) => f.majority.clone(),
                        _ => Vec::new(),
                    };
                    let info = self.info.clone();
                    let (grace, timeout) = (self.grace, self.create_timeout);
                    let recorder = ctx.recorder.clone();
                    self.probes = Some(Watcher::spawn(move |stop| async move {
                        probe_sides(info, majority, grace, timeout, recorder, stop).await
                    }));
                }
                Phase::HoldEnd => {
                    if let Some(w) = self.probes.take() {
                        let _ = w.finish().await;
                    }
                }
                _ => {}
            }
        })
    }
}

/// Majority brokers are asked from the start and again every 300 ms until one topic
/// is created; minority brokers once, after `grace`. A request still pending when
/// the hold ends is recorded `info`.
async fn probe_sides(
    info: ClusterInfo,
    majority: Vec<String>,
    grace: Duration,
    timeout: Duration,
    recorder: rift_history::Recorder,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for b in info.brokers.clone() {
        let on_majority = majority.contains(&b.name);
        let mut stop = stop.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move {
            if !on_majority && sleep_or_stop(&mut stop, grace).await {
                return;
            }
            for round in 0.. {
                let topic = format!(
                    "rift-quorum-{}-{round}-{:04x}",
                    b.name,
                    rand::random::<u16>()
                );
                let mut cancel = stop.clone();
                let cancelled = async move {
                    let _ = cancel.wait_for(|s| *s).await;
                };
                let outcome =
                    create_topic_at_recorded(&b, &topic, timeout, &recorder, cancelled).await;
                if !on_majority || outcome == OpType::Ok {
                    return;
                }
                if sleep_or_stop(&mut stop, Duration::from_millis(300)).await {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

pub struct QuorumAvailability {
    info: ClusterInfo,
    no_quorum: bool,
    grace: Duration,
}

impl HistoryCheck for QuorumAvailability {
    fn name(&self) -> String {
        "kafka-quorum-availability".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault took effect: the history has no nemesis start the proxy confirmed");
            return v;
        }
        let end = last_time(h);
        let grace_ns = u64::try_from(self.grace.as_nanos()).unwrap_or(u64::MAX);
        let creates: Vec<_> = h
            .pairs()
            .into_iter()
            .filter(|(i, _)| i.f == "create-topic" && i.node.is_some())
            .collect();
        for w in &windows {
            let tag = format!("fault {} ({})", w.id, w.label);
            let fault_end = w.end_or(end);
            let (majority, minority) = if self.no_quorum {
                (Vec::new(), self.info.names())
            } else {
                (w.majority.clone(), w.minority.clone())
            };
            v.evidence(format!(
                "{tag}: expected: {majority:?} keeps a quorum, {minority:?} does not (judged {} ms after the fault)",
                self.grace.as_millis()
            ));
            let in_window: Vec<_> = creates
                .iter()
                .filter(|(i, _)| i.time >= w.start && i.time < fault_end)
                .collect();
            if !majority.is_empty() {
                let led = h
                    .observations()
                    .filter(|o| {
                        o.observation == QUORUM && o.error.is_none() && majority.contains(&o.node)
                    })
                    .filter(|o| o.started >= w.start && o.time < fault_end)
                    .find(|o| o.value["leads"].as_bool() == Some(true));
                match led {
                    Some(o) => {
                        v.evidence(format!(
                            "{tag}: majority side: {} leads the metadata quorum (epoch {}) {} ms after the fault",
                            o.node,
                            o.value["leader_epoch"],
                            ms(o.time - w.start)
                        ));
                    }
                    None if majority
                        .iter()
                        .all(|n| answered(h, n, QUORUM, w.start, fault_end) == 0) =>
                    {
                        v.unknown(format!(
                            "{tag}: no majority node answered a quorum poll during the fault"
                        ))
                    }
                    None => v.fail(format!(
                        "{tag}: no node of the majority side {majority:?} led the metadata quorum"
                    )),
                }
                let ours: Vec<_> = in_window
                    .iter()
                    .filter(|(i, _)| i.node.as_ref().is_some_and(|n| majority.contains(n)))
                    .collect();
                let created = ours
                    .iter()
                    .find(|(_, d)| d.is_some_and(|d| d.r#type == OpType::Ok && d.time < fault_end));
                match created {
                    Some((i, d)) => {
                        let d = d.expect("found completed");
                        let when = Interval {
                            lo: i.time,
                            hi: d.time,
                        };
                        v.evidence(format!(
                            "{tag}: majority side: topic {} created through {} {} after the fault",
                            i.key.as_deref().unwrap_or("?"),
                            i.node.as_deref().unwrap_or("?"),
                            when.after(w.start)
                        ));
                        v.measured(
                            "majority-created-topic",
                            "majority created a topic",
                            when,
                            w.start,
                        );
                    }
                    None if ours.is_empty() => v.unknown(format!(
                        "{tag}: no topic creation was asked of the majority side"
                    )),
                    None => v.fail(format!(
                        "{tag}: the majority side {majority:?} could not create a topic: {:?}",
                        ours.iter()
                            .map(|(i, d)| (
                                i.node.clone(),
                                d.map(|d| (d.r#type.name(), d.error.clone()))
                            ))
                            .collect::<Vec<_>>()
                    )),
                }
            }
            for n in &minority {
                let polled = answered(h, n, QUORUM, w.start + grace_ns, fault_end);
                let led = h
                    .observations()
                    .filter(|o| o.observation == QUORUM && o.error.is_none() && &o.node == n)
                    .filter(|o| o.started >= w.start + grace_ns && o.time < fault_end)
                    .filter(|o| o.value["leads"].as_bool() == Some(true))
                    .last();
                if let Some(o) = led {
                    v.fail(format!(
                        "{tag}: {n} (no majority) still led the metadata quorum {} ms after the fault",
                        ms(o.time - w.start)
                    ));
                } else if polled == 0 {
                    v.unknown(format!(
                        "{tag}: {n} answered no quorum poll after the grace"
                    ));
                }
                let asked: Vec<_> = in_window
                    .iter()
                    .filter(|(i, _)| i.node.as_deref() == Some(n))
                    .collect();
                if asked.is_empty() {
                    v.unknown(format!("{tag}: no topic creation was asked of {n}"));
                }
                for (i, d) in asked {
                    let topic = i.key.as_deref().unwrap_or_default();
                    let during = topic_listed(h, topic, w.start, fault_end);
                    let after = w
                        .healed
                        .and_then(|healed| topic_listed(h, topic, healed, end + 1));
                    let outcome = d.map_or(OpType::Info, |d| d.r#type);
                    let error = d.and_then(|d| d.error.clone()).unwrap_or_default();
                    match (outcome, during) {
                        (OpType::Ok, _) => v.fail(format!(
                            "{tag}: topic {topic} was created through {n} (no majority) during the fault"
                        )),
                        (_, Some((by, at))) => v.fail(format!(
                            "{tag}: topic {topic} asked of {n} (no majority, answered {} {error}) was listed by {by} {} ms after the fault, before the heal",
                            outcome.name(),
                            ms(at - w.start)
                        )),
                        (OpType::Fail, None) => v.evidence(format!("{tag}: {n}: topic creation refused ({error})")),
                        (_, None) => match (after, w.healed) {
                            (Some((by, at)), Some(healed)) => v.evidence(format!(
                                "{tag}: {n}: topic creation indeterminate ({error}); resolved: not created during the fault, first listed by {by} {} ms after the heal",
                                ms(at.saturating_sub(healed))
                            )),
                            (None, Some(healed)) if h.observations().any(|o| o.observation == super::seen::METADATA && o.error.is_none() && o.started >= healed) => v.evidence(format!(
                                "{tag}: {n}: topic creation indeterminate ({error}); resolved: never created (no broker lists {topic} after the heal)"
                            )),
                            _ => v.unknown(format!(
                                "{tag}: {n}: topic creation indeterminate ({error}) and no metadata poll after the heal resolves it"
                            )),
                        },
                    }
                }
            }
        }
        v.pass(
            if self.no_quorum || windows.iter().all(|w| w.majority.is_empty()) {
                "no side kept a metadata quorum: no node led or created a topic during the fault"
                    .to_string()
            } else {
                "the majority kept a metadata leader and created a topic; the minority did neither"
                    .to_string()
            },
        );
        v
    }
}
