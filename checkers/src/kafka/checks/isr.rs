//! ISR shrink and re-expansion: a follower cut off from its leader leaves the ISR of
//! every partition it follows within about 1–1.5 × `replica.lag.time.max.ms`, and
//! rejoins after the heal.
//!
//! A follower whose log end equals the leader's is never "lagging", so the checker
//! keeps producing (acks=1, through rift) from baseline to the end. It creates its own
//! topic with one partition led by each broker; at `FaultApplied` it watches the
//! partitions the target follows whose leader is not itself cut off.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Watcher, create_topic, fault_targets, humantime_de, rotation, sleep_or_stop};
use crate::kafka::ClusterInfo;
use crate::kafka::client::{self, Acks, PartitionView, TopicSpec};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsrConfig {
    /// Topic name prefix (a random suffix keeps re-runs apart).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The follower(s) expected to leave the ISR; default: the fault's target.
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default = "default_shrink", deserialize_with = "humantime_de")]
    pub shrink_within: Duration,
    #[serde(default = "default_rejoin", deserialize_with = "humantime_de")]
    pub rejoin_within: Duration,
}

fn default_topic() -> String {
    "rift-isr".into()
}
fn default_shrink() -> Duration {
    Duration::from_secs(10)
}
fn default_rejoin() -> Duration {
    Duration::from_secs(30)
}

impl Default for IsrConfig {
    fn default() -> Self {
        Self {
            topic: default_topic(),
            nodes: Vec::new(),
            shrink_within: default_shrink(),
            rejoin_within: default_rejoin(),
        }
    }
}

/// (partition, leader id, follower id) the checker watches.
type Watched = Vec<(i32, i32, i32)>;

pub struct IsrShrinkChecker {
    info: ClusterInfo,
    cfg: IsrConfig,
    topic: String,
    partitions: Vec<PartitionView>,
    watched: Watched,
    load: Option<Watcher<(u64, u64)>>,
    shrink: Option<Watcher<Vec<Option<u64>>>>,
    rejoin: Option<Watcher<Vec<Option<u64>>>>,
    verdict: Verdict,
}

impl IsrShrinkChecker {
    pub fn new(info: ClusterInfo, cfg: IsrConfig) -> Self {
        let topic = format!("{}-{:06x}", cfg.topic, rand::random::<u32>() & 0xff_ffff);
        Self {
            info,
            cfg,
            topic,
            partitions: Vec::new(),
            watched: Vec::new(),
            load: None,
            shrink: None,
            rejoin: None,
            verdict: Verdict::new("kafka-isr-shrink"),
        }
    }

    async fn baseline(&mut self) {
        let ids: Vec<i32> = self.info.brokers.iter().map(|b| b.id).collect();
        let mut spec = TopicSpec::new(&self.topic, ids.len() as i32, 3);
        spec.assignment = Some(rotation(&ids, ids.len().min(3)));
        match create_topic(&self.info, &spec).await {
            Ok(parts) => {
                self.verdict
                    .evidence(format!("topic {} created: {parts:?}", self.topic));
                self.partitions = parts;
            }
            Err(e) => {
                self.verdict.fail(e);
                return;
            }
        }
        let bootstrap = self.info.bootstrap();
        let topic = self.topic.clone();
        let count = self.partitions.len() as i32;
        self.load = Some(Watcher::spawn(move |mut stop| async move {
            produce_loop(&bootstrap, &topic, count, &mut stop).await
        }));
    }

    fn fault_applied(&mut self, ctx: &ScenarioContext) {
        if self.partitions.is_empty() {
            return;
        }
        let targets = fault_targets(ctx, &self.cfg.nodes);
        let target_ids: Vec<i32> = targets
            .iter()
            .filter_map(|n| self.info.by_name(n).map(|b| b.id))
            .collect();
        if target_ids.is_empty() {
            self.verdict
                .fail(format!("no follower to watch: fault targets {targets:?}"));
            return;
        }
        for p in &self.partitions {
            for t in &target_ids {
                if p.leader != *t && !target_ids.contains(&p.leader) && p.replicas.contains(t) {
                    self.watched.push((p.partition, p.leader, *t));
                }
            }
        }
        if self.watched.is_empty() {
            self.verdict.fail(format!(
                "{targets:?} follow no partition of {} whose leader is reachable",
                self.topic
            ));
            return;
        }
        self.verdict.evidence(format!(
            "fault applied at {} ms; watching (partition, leader, follower) {:?}",
            ctx.now_ms(),
            self.watched
        ));
        self.verdict.timing("fault applied", ctx.now_ms());
        self.shrink = Some(self.spawn_watch(ctx.started, false));
    }

    fn spawn_watch(&self, started: Instant, want_in_isr: bool) -> Watcher<Vec<Option<u64>>> {
        let info = self.info.clone();
        let topic = self.topic.clone();
        let watched = self.watched.clone();
        Watcher::spawn(move |mut stop| async move {
            let mut seen: Vec<Option<u64>> = vec![None; watched.len()];
            loop {
                for (i, (partition, leader, follower)) in watched.iter().enumerate() {
                    if seen[i].is_some() {
                        continue;
                    }
                    let Some(addr) = info.by_id(*leader).map(|b| b.direct_client) else {
                        continue;
                    };
                    if let Ok(p) =
                        client::partition_from(addr, &topic, *partition, Duration::from_secs(2))
                            .await
                        && p.isr.contains(follower) == want_in_isr
                    {
                        seen[i] = Some(started.elapsed().as_millis() as u64);
                    }
                }
                if seen.iter().all(Option::is_some)
                    || sleep_or_stop(&mut stop, Duration::from_millis(200)).await
                {
                    return seen;
                }
            }
        })
    }

    async fn collect(
        &mut self,
        what: &str,
        since_ms: u64,
        within: Duration,
        watcher: Option<Watcher<Vec<Option<u64>>>>,
    ) {
        let Some(w) = watcher else { return };
        let seen = match w.finish().await {
            Ok(s) => s,
            Err(e) => {
                self.verdict.fail(e);
                return;
            }
        };
        for ((partition, leader, follower), at) in self.watched.clone().into_iter().zip(seen) {
            let who = format!(
                "{} in {}-{partition} (leader {})",
                self.info.name_of(follower),
                self.topic,
                self.info.name_of(leader)
            );
            match at {
                Some(at) if at.saturating_sub(since_ms) <= within.as_millis() as u64 => {
                    self.verdict
                        .evidence(format!("{who}: {what} {} ms after", at - since_ms.min(at)));
                    self.verdict
                        .timing(format!("{} {what}", self.info.name_of(follower)), at);
                }
                Some(at) => self.verdict.fail(format!(
                    "{who}: {what} only {} ms after, limit {within:?}",
                    at.saturating_sub(since_ms)
                )),
                None => self
                    .verdict
                    .fail(format!("{who}: never {what} (limit {within:?})")),
            }
        }
    }
}

/// Produces acks=1 records round-robin over the partitions until stopped; returns
/// (acknowledged, failed).
async fn produce_loop(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> (u64, u64) {
    let Ok(producer) = client::producer(bootstrap, Acks::One, Duration::from_secs(2)) else {
        return (0, 0);
    };
    let (mut ok, mut failed, mut seq) = (0u64, 0u64, 0u64);
    let mut inflight = tokio::task::JoinSet::new();
    loop {
        for p in 0..partitions {
            let producer = producer.clone();
            let topic = topic.to_string();
            let payload = format!("isr-{seq}");
            inflight
                .spawn(async move { client::send(&producer, &topic, p, &payload).await.is_ok() });
            seq += 1;
        }
        while let Some(done) = inflight.try_join_next() {
            if matches!(done, Ok(true)) {
                ok += 1
            } else {
                failed += 1
            }
        }
        if sleep_or_stop(stop, Duration::from_millis(100)).await {
            break;
        }
    }
    while let Some(done) = inflight.join_next().await {
        if matches!(done, Ok(true)) {
            ok += 1
        } else {
            failed += 1
        }
    }
    (ok, failed)
}

impl Checker for IsrShrinkChecker {
    fn name(&self) -> String {
        self.verdict.checker.clone()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline().await,
                Phase::FaultApplied => self.fault_applied(ctx),
                Phase::HoldEnd => {
                    let applied = self.verdict.timings.first().map(|t| t.at_ms).unwrap_or(0);
                    let w = self.shrink.take();
                    self.collect("left the ISR", applied, self.cfg.shrink_within, w)
                        .await;
                }
                Phase::Healed => {
                    self.verdict.timing("healed", ctx.now_ms());
                    if !self.watched.is_empty() {
                        self.rejoin = Some(self.spawn_watch(ctx.started, true));
                    }
                }
                Phase::Final => {
                    let healed = self
                        .verdict
                        .timings
                        .iter()
                        .find(|t| t.label == "healed")
                        .map(|t| t.at_ms)
                        .unwrap_or(0);
                    // The watcher stops early once all rejoined; give it the limit.
                    if let Some(w) = self.rejoin.take() {
                        let limit = Duration::from_millis(healed) + self.cfg.rejoin_within;
                        w.wait_until(ctx.started + limit).await;
                        self.collect("rejoined the ISR", healed, self.cfg.rejoin_within, Some(w))
                            .await;
                    }
                    if let Some(load) = self.load.take()
                        && let Ok((ok, failed)) = load.finish().await
                    {
                        self.verdict
                            .evidence(format!("acks=1 load: {ok} acknowledged, {failed} failed"));
                    }
                }
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        let mut v = self.verdict.clone();
        if v.status == crate::scenario::Status::Pass {
            if self.watched.is_empty() {
                v.fail("the checker never watched a follower (fault not applied?)");
            } else {
                v.pass(format!(
                    "{} follower(s) left the ISR within {:?} and rejoined within {:?} of the heal",
                    self.watched.len(),
                    self.cfg.shrink_within,
                    self.cfg.rejoin_within
                ));
            }
        }
        v
    }
}
