//! Cluster gauges for Prometheus, read from the real cluster by `rift watch`: which
//! member leads, its Raft term, and the ISR size of every watched Kafka partition. The
//! proxy's own metrics say what rift did to the links; these say what the cluster made
//! of it, on the same dashboard.
//!
//! - etcd: Maintenance Status of each member. `rift_cluster_leader{node}` is 1 on the
//!   member whose own id is the leader it reports; `rift_raft_term{node}` is the term
//!   of its last applied entry (etcd 3.4 does not report the current term).
//! - Kafka: DescribeQuorum to each controller (`rift_cluster_leader{node}` is 1 on the
//!   one that leads the metadata quorum, `rift_raft_term{node}` its leader epoch) and
//!   Metadata from the first broker that answers (`rift_partition_isr_size{topic,partition}`,
//!   `rift_partition_leader{topic,partition}` as the broker id, -1 for none).
//! - `rift_cluster_up{node}` is 0 for a member that did not answer within the deadline.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::etcd::observer::{EtcdError, EtcdObserver};
use crate::kafka::{client, wire};

/// One gauge value with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    fn new(name: &'static str, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample {
            name,
            labels,
            value,
        }
    }
}

/// What to watch; name every member as it is named in the rift topology.
#[derive(Debug, Clone, Default)]
pub struct WatchTargets {
    /// etcd members: (name, client URL).
    pub etcd: Vec<(String, String)>,
    /// Kafka controllers: (name, controller listener address).
    pub kafka_controllers: Vec<(String, SocketAddr)>,
    /// Kafka brokers asked for metadata, in order, until one answers.
    pub kafka_bootstrap: Vec<SocketAddr>,
    pub kafka_topics: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("nothing to watch: give etcd members or Kafka controllers/brokers")]
    Empty,
    #[error("Kafka topics need at least one bootstrap broker to ask")]
    TopicsWithoutBootstrap,
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

pub struct Watcher {
    targets: WatchTargets,
    etcd: Option<EtcdObserver>,
    timeout: Duration,
}

impl Watcher {
    pub async fn new(targets: WatchTargets, timeout: Duration) -> Result<Watcher, WatchError> {
        if targets.etcd.is_empty()
            && targets.kafka_controllers.is_empty()
            && targets.kafka_bootstrap.is_empty()
        {
            return Err(WatchError::Empty);
        }
        if !targets.kafka_topics.is_empty() && targets.kafka_bootstrap.is_empty() {
            return Err(WatchError::TopicsWithoutBootstrap);
        }
        let etcd = if targets.etcd.is_empty() {
            None
        } else {
            Some(EtcdObserver::connect(&targets.etcd).await?)
        };
        Ok(Watcher {
            targets,
            etcd,
            timeout,
        })
    }

    /// Reads every gauge once.
    pub async fn poll(&self) -> Vec<Sample> {
        let mut samples = Vec::new();
        if let Some(observer) = &self.etcd {
            for (name, status) in observer.status_all(self.timeout).await {
                let node = || vec![("node", name.clone())];
                match status {
                    Ok(s) => {
                        let leads = s.member_id != 0 && s.leader_id == s.member_id;
                        samples.push(Sample::new("rift_cluster_up", node(), 1.0));
                        samples.push(Sample::new(
                            "rift_cluster_leader",
                            node(),
                            f64::from(u8::from(leads)),
                        ));
                        samples.push(Sample::new("rift_raft_term", node(), s.applied_term as f64));
                    }
                    Err(error) => {
                        tracing::debug!(%error, "etcd member did not answer");
                        samples.push(Sample::new("rift_cluster_up", node(), 0.0));
                    }
                }
            }
        }
        for (name, addr) in &self.targets.kafka_controllers {
            let node = || vec![("node", name.clone())];
            match wire::describe_quorum(*addr, self.timeout).await {
                Ok(view) => {
                    samples.push(Sample::new("rift_cluster_up", node(), 1.0));
                    samples.push(Sample::new(
                        "rift_cluster_leader",
                        node(),
                        f64::from(u8::from(view.is_leader())),
                    ));
                    samples.push(Sample::new(
                        "rift_raft_term",
                        node(),
                        f64::from(view.leader_epoch),
                    ));
                }
                Err(error) => {
                    tracing::debug!(%error, "Kafka controller did not answer");
                    samples.push(Sample::new("rift_cluster_up", node(), 0.0));
                }
            }
        }
        for topic in &self.targets.kafka_topics {
            samples.extend(self.topic_samples(topic).await);
        }
        samples
    }

    async fn topic_samples(&self, topic: &str) -> Vec<Sample> {
        for addr in &self.targets.kafka_bootstrap {
            match client::metadata_from(*addr, Some(topic), self.timeout).await {
                Ok(view) if view.topic_error.is_none() => {
                    let mut samples = Vec::new();
                    for p in view.partitions {
                        let labels = || {
                            vec![
                                ("topic", topic.to_string()),
                                ("partition", p.partition.to_string()),
                            ]
                        };
                        samples.push(Sample::new(
                            "rift_partition_isr_size",
                            labels(),
                            p.isr.len() as f64,
                        ));
                        samples.push(Sample::new(
                            "rift_partition_leader",
                            labels(),
                            f64::from(p.leader),
                        ));
                    }
                    return samples;
                }
                Ok(view) => {
                    tracing::debug!(%addr, topic, error = ?view.topic_error, "topic metadata error")
                }
                Err(error) => tracing::debug!(%addr, %error, "metadata request failed"),
            }
        }
        Vec::new()
    }
}

const HELP: &[(&str, &str)] = &[
    (
        "rift_cluster_up",
        "1 if the member answered the watcher within its deadline",
    ),
    (
        "rift_cluster_leader",
        "1 on the member that currently leads (etcd Raft leader, KRaft quorum leader)",
    ),
    (
        "rift_raft_term",
        "etcd: term of the last applied entry; Kafka: metadata quorum leader epoch",
    ),
    (
        "rift_partition_isr_size",
        "in-sync replicas of a Kafka partition",
    ),
    (
        "rift_partition_leader",
        "broker id leading a Kafka partition (-1: none)",
    ),
];

/// Prometheus text exposition of `samples`, grouped by metric name.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for (name, help) in HELP {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.name == *name).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in mine {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {}", labels.join(","), s.value);
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_grouped_by_metric() {
        let samples = vec![
            Sample::new("rift_cluster_leader", vec![("node", "a".into())], 1.0),
            Sample::new(
                "rift_partition_isr_size",
                vec![("topic", "t\"x".into()), ("partition", "0".into())],
                2.0,
            ),
            Sample::new("rift_cluster_leader", vec![("node", "b".into())], 0.0),
        ];
        let text = render(&samples);
        assert_eq!(text.matches("# TYPE rift_cluster_leader gauge").count(), 1);
        assert!(
            text.contains("rift_cluster_leader{node=\"a\"} 1\nrift_cluster_leader{node=\"b\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("rift_partition_isr_size{topic=\"t\\\"x\",partition=\"0\"} 2"),
            "{text}"
        );
        assert!(!text.contains("rift_raft_term"));
    }
}
