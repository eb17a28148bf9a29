//! Leader step-down: partitions led by an isolated broker get a new leader on the
//! majority side, and when the isolated broker was the active KRaft controller, a
//! majority node takes over the metadata quorum with a higher epoch.
//!
//! The driver creates a topic with one partition led by each broker, so whichever
//! broker a fault isolates leads one of them. The check reads leaders from the
//! poller's metadata observations of the brokers outside the fault's targets, and the
//! controller from their DescribeQuorum observations. Leadership moves only after the
//! controller fences the broker (`broker.session.timeout.ms`): the default limit is 3
//! session timeouts.
//!
//! FAIL: a move seen later than the limit (even at the earliest instant the polls
//! allow), or never although the majority answered polls through a fault at least as
//! long as the limit. UNKNOWN: no fault, the topic never observed before it, no poll
//! answered, or no fault isolated a broker that led anything (such a fault is not
//! judged: in a schedule, a later fault may isolate a broker that leads nothing).

use std::time::Duration;

use rift_history::History;
use serde::Deserialize;

use super::seen::{
    METADATA, QUORUM, answered, controller_at, first_seen_any, partition, partitions_at,
};
use super::{KafkaTimings, Limit, opt_humantime_de, rotation, window_targets};
use crate::kafka::ClusterInfo;
use crate::kafka::client::TopicSpec;
use crate::kafka::ops::create_topic_recorded;
use crate::scenario::check::{Driver, HistoryCheck};
use crate::scenario::window::{FaultWindow, Interval, fault_windows, last_time, ms};
use crate::scenario::{BoxFuture, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDownConfig {
    #[serde(default)]
    pub topic: Option<String>,
    /// The isolated broker(s); default: the fault's target or minority.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Default: 3 × `broker.session.timeout.ms`.
    #[serde(default, deserialize_with = "opt_humantime_de")]
    pub within: Option<Duration>,
}

pub fn build(
    info: &ClusterInfo,
    cfg: StepDownConfig,
    t: KafkaTimings,
) -> (LeadersDriver, LeaderStepDown) {
    let topic = super::topic_name(cfg.topic.as_deref().unwrap_or("rift-leaders"));
    (
        LeadersDriver {
            info: info.clone(),
            topic: topic.clone(),
        },
        LeaderStepDown {
            info: info.clone(),
            topic,
            nodes: cfg.nodes,
            within: Limit::new(
                cfg.within,
                t.session * 3,
                format!(
                    "3 × broker.session.timeout.ms of {} ms",
                    t.session.as_millis()
                ),
            ),
        },
    )
}

pub struct LeadersDriver {
    info: ClusterInfo,
    topic: String,
}

impl Driver for LeadersDriver {
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if phase == Phase::Baseline {
                let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
                let mut spec = TopicSpec::new(&self.topic, ids.len() as i32, 3);
                spec.assignment = Some(rotation(&ids, ids.len().min(3)));
                let _ = create_topic_recorded(&self.info, &spec, &ctx.recorder).await;
            }
        })
    }
}

pub struct LeaderStepDown {
    info: ClusterInfo,
    topic: String,
    nodes: Vec<String>,
    within: Limit,
}

impl LeaderStepDown {
    /// Judges one move: `seen` is when a majority broker first showed it.
    #[allow(clippy::too_many_arguments)]
    fn judge_move(
        &self,
        v: &mut Verdict,
        h: &History,
        w: &FaultWindow,
        majority: &[String],
        kind: &str,
        what: &str,
        seen: Option<(String, Interval)>,
    ) {
        let end = w.end_or(last_time(h));
        match seen {
            Some((node, i)) if i.lo.saturating_sub(w.start) > self.within.ns() => v.fail(format!(
                "{what} only {} after the fault (seen by {node}), limit {}",
                i.after(w.start),
                self.within.describe()
            )),
            Some((node, i)) => {
                v.evidence(format!(
                    "{what} {} after the fault (seen by {node})",
                    i.after(w.start)
                ));
                let name = if kind == QUORUM {
                    "new-controller"
                } else {
                    "new-partition-leader"
                };
                v.measured(name, what.to_string(), i, w.start);
            }
            None if majority
                .iter()
                .all(|n| answered(h, n, kind, w.start, end) == 0) =>
            {
                v.unknown(format!(
                    "{what}: no broker outside the fault ({majority:?}) answered a poll during it"
                ))
            }
            None if end.saturating_sub(w.start) < self.within.ns() => v.unknown(format!(
                "{what}: not seen when the fault ended after {} ms, shorter than the limit {}",
                ms(end - w.start),
                self.within.describe()
            )),
            None => v.fail(format!(
                "{what}: never seen during the fault (limit {})",
                self.within.describe()
            )),
        }
    }
}

impl LeaderStepDown {
    /// The topic judged (its driver's).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl HistoryCheck for LeaderStepDown {
    fn name(&self) -> String {
        "kafka-leader-step-down".into()
    }

    fn check(&self, h: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let windows = fault_windows(h);
        if windows.is_empty() {
            v.unknown("no fault took effect: the history has no nemesis start the proxy confirmed");
            return v;
        }
        v.evidence(format!("limit: {}", self.within.describe()));
        let names = self.info.names();
        let end = last_time(h);
        let mut judged = 0;
        for w in &windows {
            let tag = format!("fault {} ({})", w.id, w.label);
            let targets = window_targets(w, &names, &self.nodes);
            let target_ids: Vec<i32> = targets
                .iter()
                .filter_map(|n| self.info.by_name(n).map(|b| b.id))
                .collect();
            let majority: Vec<String> = names
                .iter()
                .filter(|n| !targets.contains(n))
                .cloned()
                .collect();
            let Some(parts) = partitions_at(h, &self.topic, w.start) else {
                v.unknown(format!(
                    "{tag}: topic {} was never observed with leaders before it",
                    self.topic
                ));
                continue;
            };
            let led: Vec<i32> = parts
                .iter()
                .filter(|p| target_ids.contains(&p.leader))
                .map(|p| p.partition)
                .collect();
            let controller = controller_at(h, w.start);
            let controller_isolated = controller.as_ref().filter(|(n, _)| targets.contains(n));
            v.evidence(format!(
                "{tag}: targets {targets:?}; leaders before it {:?}; active controller {controller:?}",
                parts
                    .iter()
                    .map(|p| (p.partition, self.info.name_of(p.leader)))
                    .collect::<Vec<_>>()
            ));
            if led.is_empty() && controller_isolated.is_none() {
                // Judged per fault where it means something: in a schedule, a later
                // fault may isolate a broker that no longer leads anything.
                v.evidence(format!(
                    "{tag}: its targets {targets:?} lead no partition of {} and are not the active controller: not judged",
                    self.topic
                ));
                continue;
            }
            judged += 1;
            let fault_end = w.end_or(end);
            for p in led {
                let seen = first_seen_any(h, &majority, METADATA, w.start, fault_end, |o| {
                    partition(o, &self.topic, p)
                        .is_some_and(|x| x.leader >= 0 && !target_ids.contains(&x.leader))
                });
                let what = format!(
                    "{tag}: {}-{p} led by a broker outside the fault",
                    self.topic
                );
                self.judge_move(&mut v, h, w, &majority, METADATA, &what, seen);
            }
            if let Some((old, epoch)) = controller_isolated {
                let seen = first_seen_any(h, &majority, QUORUM, w.start, fault_end, |o| {
                    o["leads"].as_bool() == Some(true)
                        && o["leader_epoch"].as_i64().is_some_and(|e| e > *epoch)
                });
                let what = format!("{tag}: KRaft controller moved off {old} (epoch > {epoch})");
                self.judge_move(&mut v, h, w, &majority, QUORUM, &what, seen);
            }
        }
        if judged == 0 {
            v.unknown(format!(
                "no fault isolated a broker that led a partition of {} or the KRaft controller",
                self.topic
            ));
        }
        v.pass(format!(
            "leadership left the isolated broker(s) within {} of each fault",
            self.within.describe()
        ));
        v
    }
}
