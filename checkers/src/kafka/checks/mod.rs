//! The Kafka checkers, each a pure function of the run's history
//! ([`HistoryCheck`](crate::scenario::check::HistoryCheck)) with a driver
//! ([`Driver`](crate::scenario::check::Driver)) that does the client side: it creates
//! the checker's own topic (placed so the fault hits the right broker), produces, and
//! reads the partitions back after the heal, every operation recorded in the history.
//! No checker polls the cluster: leaders, ISRs and the KRaft quorum come from the run's
//! one poller ([`crate::kafka::observe`]). Missing evidence is UNKNOWN, naming what is
//! missing; limits not given in the scenario derive from the cluster's settings
//! ([`KafkaTimings`]).
//!
//! - [`isr`]: an isolated follower leaves the ISR and rejoins after heal.
//! - [`acks`]: every acks=all send during the fault is refused or indeterminate, at
//!   least one with NOT_ENOUGH_REPLICAS, while acks=1 succeeds.
//! - [`loss`]: acks=1 records acknowledged by an isolated leader are lost (or kept, as
//!   the scenario states), no acks=all record is ever lost, and every acknowledged record
//!   is read back in order.
//! - [`leadership`]: partition leadership and the KRaft controller leave an isolated
//!   broker.
//! - [`quorum`]: the majority side keeps a metadata leader and creates topics; a side
//!   without a majority does neither.

pub mod acks;
pub mod isr;
pub mod leadership;
pub mod loss;
pub mod quorum;
pub mod seen;

use std::time::Duration;

use rift_history::{Entry, Nanos, Recorder};
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ClusterInfo;
use super::wire::{QuorumView, describe_quorum};
use crate::scenario::window::FaultWindow;

/// Deserializes a humantime duration ("3s", "1m 30s") from a checker table.
pub fn humantime_de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

/// Like [`humantime_de`] for a limit that defaults to one derived from the cluster.
pub fn opt_humantime_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    humantime_de(d).map(Some)
}

/// The broker settings Kafka's failure detection runs on, from the lab's settings (or
/// Kafka's defaults for a cluster rift did not start). Limits a scenario leaves out
/// derive from these, never from the hold (a limit equal to the hold cannot fail).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KafkaTimings {
    /// `replica.lag.time.max.ms`: a follower leaves the ISR 1–1.5× this after it stops
    /// fetching.
    pub lag: Duration,
    /// `broker.session.timeout.ms`: the controller fences a silent broker and moves its
    /// partition leadership.
    pub session: Duration,
    /// `controller.quorum.fetch.timeout.ms`: voters elect a new controller after this
    /// (check-quorum: 1.5×).
    pub quorum_fetch: Duration,
}

impl Default for KafkaTimings {
    /// Kafka 4.x's own defaults.
    fn default() -> Self {
        Self {
            lag: Duration::from_millis(30_000),
            session: Duration::from_millis(9_000),
            quorum_fetch: Duration::from_millis(2_000),
        }
    }
}

impl KafkaTimings {
    /// From a lab's `settings()`: its `timings`, then its `overrides` (applied last).
    pub fn from_settings(settings: &serde_json::Value) -> Self {
        let get = |key: &str| -> Option<Duration> {
            let overridden = settings["overrides"].as_array().and_then(|o| {
                o.iter()
                    .rev()
                    .find(|kv| kv[0].as_str() == Some(key))
                    .and_then(|kv| kv[1].as_str())
            });
            let text = overridden.or_else(|| settings["timings"][key].as_str())?;
            text.trim().parse::<u64>().ok().map(Duration::from_millis)
        };
        let d = Self::default();
        Self {
            lag: get("replica.lag.time.max.ms").unwrap_or(d.lag),
            session: get("broker.session.timeout.ms").unwrap_or(d.session),
            quorum_fetch: get("controller.quorum.fetch.timeout.ms").unwrap_or(d.quorum_fetch),
        }
    }
}

/// A limit: the scenario's, or a derived default, with where it came from.
#[derive(Debug, Clone)]
pub struct Limit {
    pub limit: Duration,
    pub why: String,
}

impl Limit {
    pub fn new(given: Option<Duration>, derived: Duration, why: impl Into<String>) -> Self {
        match given {
            Some(limit) => Self {
                limit,
                why: "the scenario's setting".into(),
            },
            None => Self {
                limit: derived,
                why: why.into(),
            },
        }
    }

    pub fn ns(&self) -> Nanos {
        u64::try_from(self.limit.as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn describe(&self) -> String {
        format!("{} ms ({})", self.limit.as_millis(), self.why)
    }
}

/// The nodes a fault is aimed at, from the history's record of it: an explicit list,
/// else the `target` binding, else the nodes the fault left without a quorum, else the
/// nodes named in every node-to-node rule (an inline cut of one node on some
/// endpoints). The `leader` binding alone says nothing: every role is bound.
pub fn window_targets(w: &FaultWindow, nodes: &[String], explicit: &[String]) -> Vec<String> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    if let Some(node) = w.bindings.get("target") {
        return vec![node.clone()];
    }
    if !w.minority.is_empty() {
        return w.minority.clone();
    }
    let rules: Vec<(String, String)> = w
        .rules
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some((
                        r["from"].as_str()?.to_string(),
                        r["to"].as_str()?.to_string(),
                    ))
                })
                .filter(|(f, t)| nodes.contains(f) && nodes.contains(t))
                .collect()
        })
        .unwrap_or_default();
    if rules.is_empty() {
        return Vec::new();
    }
    nodes
        .iter()
        .filter(|n| rules.iter().all(|(f, t)| f == *n || t == *n))
        .cloned()
        .collect()
}

/// The active KRaft controller: the node that answers DescribeQuorum as leader with
/// the highest epoch. (For placing a topic and for progress lines; checkers read the
/// controller from the history.)
pub async fn active_controller(info: &ClusterInfo) -> Option<(String, QuorumView)> {
    let mut best: Option<(String, QuorumView)> = None;
    for b in &info.brokers {
        if let Ok(view) = describe_quorum(b.direct_controller, Duration::from_secs(2)).await
            && view.is_leader()
            && best
                .as_ref()
                .is_none_or(|(_, v)| v.leader_epoch < view.leader_epoch)
        {
            best = Some((b.name.clone(), view));
        }
    }
    best
}

/// A checker's topic name: its prefix and a random suffix that keeps re-runs apart.
pub fn topic_name(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// One partition per broker, partition `i` led (preferred) by the `i`-th broker, so
/// whichever broker a fault isolates leads one partition and follows the others.
pub fn rotation(ids: &[i32], rf: usize) -> Vec<Vec<i32>> {
    (0..ids.len())
        .map(|i| (0..rf).map(|k| ids[(i + k) % ids.len()]).collect())
        .collect()
}

/// One partition whose preferred leader is `leader`, followed by `rf - 1` others.
pub fn led_by(ids: &[i32], leader: i32, rf: usize) -> Vec<Vec<i32>> {
    let mut row = vec![leader];
    row.extend(ids.iter().copied().filter(|id| *id != leader).take(rf - 1));
    vec![row]
}

/// Waits until the poller's newest observation of `topic` (from any broker, polled
/// after `since`) shows every partition with a leader and its whole replica set in
/// the ISR: truncation after a heal is over and the logs can be read back. Reads the
/// recorder, never the cluster.
pub async fn wait_in_sync(
    recorder: &Recorder,
    topic: &str,
    partitions: usize,
    since: Nanos,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let newest = recorder.find_last(|e| match e {
            Entry::Observation(o)
                if o.observation == seen::METADATA && o.error.is_none() && o.started >= since =>
            {
                seen::topic_partitions(&o.value, topic)
            }
            _ => None,
        });
        if let Some(parts) = &newest
            && parts.len() == partitions
            && parts
                .iter()
                .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{topic} has no full ISR in the poller's observations {within:?} after the heal: newest {newest:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A background task that runs until told to stop, then hands back what it did.
pub struct Watcher<T> {
    stop: watch::Sender<bool>,
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> Watcher<T> {
    /// Spawns `body`, which must return once the receiver it gets turns true.
    pub fn spawn<F, Fut>(body: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Self {
            stop,
            handle: tokio::spawn(body(rx)),
        }
    }

    /// True once the task has returned on its own.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Tells the task to stop without waiting for it.
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Tells the task to stop and waits for its result.
    pub async fn finish(self) -> Result<T, String> {
        let _ = self.stop.send(true);
        self.handle
            .await
            .map_err(|e| format!("client task failed: {e}"))
    }
}

/// Sleeps `d` or returns early (true) when `stop` turns true.
pub async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests;
