//! The run's one poller: observes every node of the cluster on a fixed cadence and
//! records each answer in the history. Checkers never poll on their own; what they
//! need to know about the cluster's state over time they read from these observations.
//!
//! Each node is polled by its own loop so that a member that answers slowly (or not at
//! all, until its deadline) does not stretch the cadence of the others. A poll records
//! its start and end, so a change first seen in one poll happened between the previous
//! poll's start and this poll's end: that interval is the resolution of every timing
//! derived from observations.
//!
//! Beside the members, the poller observes rift itself: every [`TRAFFIC_INTERVAL`] the
//! bytes rift delivered on each (src, dst, endpoint) (`rift-traffic`, node `rift`), the
//! evidence that a cut took effect ([`super::cut_effect`]).

use std::time::Duration;

use futures::future::join_all;
use rift_history::{Entry, Observation, Recorder};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Cluster;

/// Poll cadence per node unless the system asks for another.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

/// Cadence of the `rift-traffic` observations.
pub const TRAFFIC_INTERVAL: Duration = Duration::from_millis(100);

/// The observation kind and node name of rift's own traffic counters.
pub const TRAFFIC: &str = "rift-traffic";
pub const TRAFFIC_NODE: &str = "rift";

/// Polls every node of `cluster`, and rift's traffic, until `stop` turns true (or its
/// sender is dropped). A poll in flight when the stop comes is finished and recorded.
pub async fn run(cluster: &dyn Cluster, recorder: &Recorder, stop: watch::Receiver<bool>) {
    let interval = cluster.poll_interval();
    let nodes = cluster.nodes();
    let members = join_all(
        nodes
            .iter()
            .map(|node| poll_node(cluster, node, recorder, interval, stop.clone())),
    );
    tokio::join!(members, poll_traffic(cluster, recorder, stop.clone()));
}

async fn poll_traffic(cluster: &dyn Cluster, recorder: &Recorder, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TRAFFIC_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            _ = tick.tick() => {
                let started = recorder.now();
                let answer = cluster.nemesis().traffic().await;
                let (value, error) = match answer {
                    Ok(groups) => (serde_json::to_value(groups).unwrap_or_default(), None),
                    Err(e) => (serde_json::Value::Null, Some(e.to_string())),
                };
                recorder.record(Entry::Observation(Observation {
                    index: 0,
                    time: recorder.now(),
                    started,
                    observation: TRAFFIC.into(),
                    node: TRAFFIC_NODE.into(),
                    value,
                    error,
                }));
            }
        }
    }
}

async fn poll_node(
    cluster: &dyn Cluster,
    node: &str,
    recorder: &Recorder,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    // After a slow poll, wait a full interval rather than firing a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            _ = tick.tick() => cluster.observe(node, recorder).await,
        }
    }
}
