//! Quorum availability: in a majority/minority split the majority side keeps a KRaft
//! metadata leader and can create a topic, while no minority node leads the quorum and
//! a topic cannot be created next to it; with no majority anywhere (two-vs-two) no node
//! leads and no topic can be created on either side.
//!
//! Sides come from the runner (which nodes still reach a quorum on the `controller`
//! endpoint), or `no_quorum = true` states that no side may have one. A CreateTopics
//! request goes straight to one broker's real port ([`create_topic_at`]), which
//! forwards it to the controller it knows through rift: the answer is that side's.
//! An isolated Raft leader resigns after check-quorum (1.5 × fetch timeout), so
//! minority probes start after `grace`.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Watcher, humantime_de, sleep_or_stop, verdict_after_fault};
use crate::kafka::ClusterInfo;
use crate::kafka::wire::{create_topic_at, describe_quorum};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumConfig {
    /// Expect no side to keep a quorum, whatever the runner computed.
    #[serde(default)]
    pub no_quorum: bool,
    /// Time for an isolated leader to resign before minority nodes are judged.
    #[serde(default = "default_grace", deserialize_with = "humantime_de")]
    pub grace: Duration,
    /// How long the broker waits for the controller on a CreateTopics probe (the
    /// broker may first spend `request.timeout.ms` on a held connection to the old
    /// controller before it forwards to the new one).
    #[serde(default = "default_create_timeout", deserialize_with = "humantime_de")]
    pub create_timeout: Duration,
}

fn default_grace() -> Duration {
    Duration::from_secs(3)
}
fn default_create_timeout() -> Duration {
    Duration::from_secs(3)
}

impl Default for QuorumConfig {
    fn default() -> Self {
        Self {
            no_quorum: false,
            grace: default_grace(),
            create_timeout: default_create_timeout(),
        }
    }
}

/// What one node showed during the hold.
#[derive(Debug, Clone, Default)]
struct NodeSeen {
    /// Times (ms) at which the node answered DescribeQuorum as leader, after grace.
    led_at: Vec<u64>,
    /// (at ms, Kafka error code or probe error) of CreateTopics probes.
    creates: Vec<(u64, Result<i16, String>)>,
}

pub struct QuorumAvailabilityChecker {
    info: ClusterInfo,
    cfg: QuorumConfig,
    majority: Vec<String>,
    minority: Vec<String>,
    watch: Option<Watcher<Vec<(String, NodeSeen)>>>,
    applied_ms: u64,
    verdict: Verdict,
}

impl QuorumAvailabilityChecker {
    pub fn new(info: ClusterInfo, cfg: QuorumConfig) -> Self {
        Self {
            info,
            cfg,
            majority: Vec::new(),
            minority: Vec::new(),
            watch: None,
            applied_ms: 0,
            verdict: Verdict::new("kafka-quorum-availability"),
        }
    }

    fn fault_applied(&mut self, ctx: &ScenarioContext) {
        self.applied_ms = ctx.now_ms();
        self.verdict.timing("fault applied", self.applied_ms);
        let Some(fault) = &ctx.fault else {
            return self.verdict.fail("no fault in the scenario context");
        };
        if self.cfg.no_quorum {
            self.minority = self.info.names();
        } else {
            self.majority = fault.majority.clone();
            self.minority = fault.minority.clone();
        }
        self.verdict.evidence(format!(
            "expected: majority side {:?} keeps a quorum, {:?} does not",
            self.majority, self.minority
        ));
        let info = self.info.clone();
        let majority = self.majority.clone();
        let cfg = self.cfg.clone();
        let started = ctx.started;
        self.watch = Some(Watcher::spawn(move |mut stop| async move {
            probe_sides(info, majority, cfg, started, &mut stop).await
        }));
    }

    fn judge(&mut self, seen: Vec<(String, NodeSeen)>) {
        let topic_ok = |s: &NodeSeen| {
            s.creates
                .iter()
                .find(|(_, r)| matches!(r, Ok(0)))
                .map(|(at, _)| *at)
        };
        if !self.majority.is_empty() {
            let led: Vec<(&String, u64)> = seen
                .iter()
                .filter(|(n, _)| self.majority.contains(n))
                .filter_map(|(n, s)| s.led_at.first().map(|at| (n, *at)))
                .collect();
            match led.first() {
                Some((n, at)) => {
                    self.verdict
                        .evidence(format!("majority side: {n} leads the metadata quorum"));
                    self.verdict.timing(format!("{n} leads the quorum"), *at);
                }
                None => self.verdict.fail(format!(
                    "no node of the majority side {:?} led the metadata quorum",
                    self.majority
                )),
            }
            let created = seen
                .iter()
                .filter(|(n, _)| self.majority.contains(n))
                .find_map(|(n, s)| topic_ok(s).map(|at| (n.clone(), at)));
            match created {
                Some((n, at)) => {
                    self.verdict
                        .evidence(format!("majority side: topic created through {n}"));
                    self.verdict.timing("majority created a topic", at);
                }
                None => self.verdict.fail(format!(
                    "the majority side {:?} could not create a topic: {:?}",
                    self.majority,
                    seen.iter()
                        .filter(|(n, _)| self.majority.contains(n))
                        .map(|(n, s)| (n, &s.creates))
                        .collect::<Vec<_>>()
                )),
            }
        }
        for (n, s) in seen.iter().filter(|(n, _)| self.minority.contains(n)) {
            if let Some(at) = s.led_at.last() {
                self.verdict.fail(format!(
                    "{n} (no majority) still led the metadata quorum {} ms after the fault",
                    at.saturating_sub(self.applied_ms)
                ));
            }
            if let Some(at) = topic_ok(s) {
                self.verdict.fail(format!(
                    "a topic was created through {n} (no majority) {} ms after the fault",
                    at.saturating_sub(self.applied_ms)
                ));
            } else {
                self.verdict.evidence(format!(
                    "{n}: no quorum leadership, topic creation refused: {:?}",
                    s.creates
                ));
            }
        }
    }
}

/// Probes every node in parallel. Majority nodes are probed from the start and retry
/// until a topic is created; minority nodes are judged after `grace` (an isolated
/// leader needs check-quorum to resign) with one CreateTopics. A probe still pending
/// when the hold ends did not succeed during the fault, and is recorded so.
async fn probe_sides(
    info: ClusterInfo,
    majority: Vec<String>,
    cfg: QuorumConfig,
    started: Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, NodeSeen)> {
    let mut tasks = Vec::new();
    for b in info.brokers.clone() {
        let on_majority = majority.contains(&b.name);
        let mut stop = stop.clone();
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let now = || started.elapsed().as_millis() as u64;
            let mut s = NodeSeen::default();
            if !on_majority && sleep_or_stop(&mut stop, cfg.grace).await {
                return (b.name.clone(), s);
            }
            let mut round = 0u32;
            loop {
                if let Ok(q) = describe_quorum(b.direct_controller, Duration::from_secs(1)).await
                    && q.is_leader()
                {
                    s.led_at.push(now());
                }
                let done = s.creates.iter().any(|(_, r)| matches!(r, Ok(0)));
                if (on_majority && !done) || (!on_majority && s.creates.is_empty()) {
                    let topic = format!("rift-quorum-{}-{round}-{:04x}", b.name, rand::random::<u16>());
                    let at = now();
                    let probe = create_topic_at(b.direct_client, &topic, 1, cfg.create_timeout);
                    let r = tokio::select! {
                        r = probe => r.map_err(|e| e.to_string()),
                        _ = stop.changed() => Err("still pending at the end of the hold".to_string()),
                    };
                    s.creates.push((at, r));
                }
                round += 1;
                if sleep_or_stop(&mut stop, Duration::from_millis(300)).await {
                    return (b.name.clone(), s);
                }
            }
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            seen.push(r);
        }
    }
    seen
}

impl Checker for QuorumAvailabilityChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::FaultApplied => self.fault_applied(ctx),
                Phase::HoldEnd => {
                    if let Some(w) = self.watch.take() {
                        match w.finish().await {
                            Ok(seen) => self.judge(seen),
                            Err(e) => self.verdict.fail(e),
                        }
                    }
                }
                Phase::Baseline | Phase::Healed | Phase::Final => {}
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        let summary = if self.majority.is_empty() {
            format!(
                "no side kept a metadata quorum: {:?} neither led nor created topics",
                self.minority
            )
        } else {
            format!(
                "majority {:?} kept a metadata leader and created a topic; {:?} did neither",
                self.majority, self.minority
            )
        };
        verdict_after_fault(&self.verdict, self.applied_ms, || summary)
    }
}
