//! The Kafka checkers. Each implements [`Checker`](crate::scenario::Checker): it sets
//! up what it needs at `Baseline` (its own topic, placed so the fault hits the right
//! broker), spawns its watchers at `FaultApplied` / `Healed`, collects them at
//! `HoldEnd` / `Final`, and judges in `verdict()`. Failing to observe is a FAIL.
//!
//! - [`isr`]: an isolated follower leaves the ISR and rejoins after heal.
//! - [`acks`]: acks=all is rejected with NOT_ENOUGH_REPLICAS while acks=1 succeeds.
//! - [`loss`]: acks=1 records acknowledged by an isolated leader are truncated, no
//!   acks=all record is ever lost, and every acknowledged record is read back in order.
//! - [`leadership`]: partition leadership and the KRaft controller leave an isolated
//!   broker.
//! - [`quorum`]: the majority side keeps a metadata leader and creates topics; a side
//!   without a majority does neither.

pub mod acks;
pub mod isr;
pub mod leadership;
pub mod loss;
pub mod quorum;

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ClusterInfo;
use super::client::{self, PartitionView, TopicSpec};
use super::wire::{QuorumView, describe_quorum};
use crate::scenario::{ScenarioContext, Status, Verdict};

/// Deserializes a humantime duration ("3s", "1m 30s") from a checker table.
pub fn humantime_de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

/// The nodes a fault is aimed at: an explicit list, else the `target` binding, else
/// the nodes the fault left without a quorum, else the nodes named in every
/// node-to-node rule (an inline cut of one node on some endpoints). The `leader`
/// binding alone says nothing: the runner binds every role for every fault.
pub fn fault_targets(ctx: &ScenarioContext, explicit: &[String]) -> Vec<String> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let Some(fault) = &ctx.fault else {
        return Vec::new();
    };
    if let Some(node) = fault.bindings.get("target") {
        return vec![node.clone()];
    }
    if !fault.minority.is_empty() {
        return fault.minority.clone();
    }
    let between_nodes: Vec<_> = fault
        .rules
        .iter()
        .filter(|r| ctx.nodes.contains(&r.from) && ctx.nodes.contains(&r.to))
        .collect();
    if between_nodes.is_empty() {
        return Vec::new();
    }
    ctx.nodes
        .iter()
        .filter(|n| between_nodes.iter().all(|r| &r.from == *n || &r.to == *n))
        .cloned()
        .collect()
}

/// The active KRaft controller: the node that answers DescribeQuorum as leader with
/// the highest epoch.
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

/// Waits for the active controller for up to `timeout`.
pub async fn wait_controller(
    info: &ClusterInfo,
    timeout: Duration,
) -> Option<(String, QuorumView)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = active_controller(info).await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates a checker's topic, asking the first broker directly (not through rift), with
/// the error worded for a verdict.
pub async fn create_topic(
    info: &ClusterInfo,
    spec: &TopicSpec,
) -> Result<Vec<PartitionView>, String> {
    client::create_topic(
        &info.bootstrap(),
        info.brokers[0].direct_client,
        spec,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| format!("cannot create topic {}: {e}", spec.name))
}

/// The final verdict of a checker whose property is about a fault: it passes with
/// `summary` only if nothing failed and a fault phase was actually observed.
pub fn verdict_after_fault(
    verdict: &Verdict,
    applied_ms: u64,
    summary: impl FnOnce() -> String,
) -> Verdict {
    let mut v = verdict.clone();
    if v.status == Status::Pass {
        if applied_ms == 0 {
            v.fail("no fault phase was observed");
        } else {
            v.pass(summary());
        }
    }
    v
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

/// A background task that runs until told to stop, then hands back what it saw.
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

    /// Waits (without stopping it) until the task ends on its own or `deadline`.
    pub async fn wait_until(&self, deadline: Instant) {
        while !self.handle.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
            .map_err(|e| format!("watcher task failed: {e}"))
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
mod tests {
    use super::*;
    use crate::scenario::AppliedFault;
    use rift_proxy::fault::{Fault, LinkRule};

    #[test]
    fn rotation_gives_every_broker_one_lead() {
        let r = rotation(&[1, 2, 3], 3);
        assert_eq!(r, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
        assert_eq!(led_by(&[1, 2, 3, 4], 3, 3), vec![vec![3, 1, 2]]);
    }

    fn ctx(fault: Option<AppliedFault>) -> ScenarioContext {
        ScenarioContext {
            started: Instant::now(),
            nodes: vec!["k1".into(), "k2".into(), "k3".into()],
            hold: Duration::from_secs(1),
            settle: Duration::from_secs(1),
            fault,
            baseline_leader: None,
            recorder: rift_history::Recorder::new(Instant::now()),
        }
    }

    fn rule(from: &str, to: &str) -> LinkRule {
        LinkRule {
            from: from.into(),
            to: to.into(),
            fault: Fault::Hold,
            endpoints: vec!["replication".into()],
        }
    }

    #[test]
    fn targets_come_from_binding_minority_or_rules() {
        assert!(fault_targets(&ctx(None), &[]).is_empty());
        assert_eq!(
            fault_targets(&ctx(None), &["k2".into()]),
            vec!["k2".to_string()]
        );
        let mut f = AppliedFault::default();
        f.bindings.insert("leader".into(), "k1".into());
        f.rules = vec![
            rule("k1", "k2"),
            rule("k2", "k1"),
            rule("k1", "k3"),
            rule("k3", "k1"),
            rule("client", "k2"),
        ];
        // Everyone keeps a quorum on the controller endpoint: k1 is in every cut.
        assert_eq!(
            fault_targets(&ctx(Some(f.clone())), &[]),
            vec!["k1".to_string()]
        );
        f.minority = vec!["k3".into()];
        assert_eq!(
            fault_targets(&ctx(Some(f.clone())), &[]),
            vec!["k3".to_string()]
        );
        f.bindings.insert("target".into(), "k2".into());
        assert_eq!(fault_targets(&ctx(Some(f)), &[]), vec!["k2".to_string()]);
    }
}
