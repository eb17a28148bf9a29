//! Kafka produce latency with `acks=all` on a local 3-broker KRaft lab, with every link
//! through rift and without rift, one cluster after the other.
//!
//! Through rift is the lab the checkers use (rift in front of every broker listener,
//! brokers advertising rift's ports). Direct is the same plan — same jars, JVM flags,
//! test timings and topic — with each broker advertising its real ports, so nothing
//! crosses rift. Records are sent one at a time and each send is timed until the
//! leader acknowledged it with the whole ISR (min.insync.replicas = 2 of 3), so the
//! figure includes replication to the followers through the same path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use rift_checkers::kafka::client::{self, Acks, TopicSpec};
use rift_checkers::lab::LabError;
use rift_checkers::lab::kafka::{KafkaLab, KafkaLabOptions, KafkaPlan};
use rift_checkers::lab::process::LabProcess;
use serde::Serialize;

use crate::blocking::new_histogram;
use crate::report::Percentiles;

const TOPIC: &str = "rift-bench";
const BROKERS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct KafkaProduce {
    pub records: u64,
    pub direct: Percentiles,
    pub through_rift: Percentiles,
}

/// Starts a direct cluster, measures, stops it; then the same through rift.
pub async fn produce_latency(records: u64, warmup: u64) -> Result<KafkaProduce> {
    let direct = {
        let cluster = DirectCluster::start(KafkaLabOptions::default())
            .await
            .context("starting the direct Kafka cluster")?;
        measure(&cluster.bootstrap(), cluster.observer(), records, warmup)
            .await
            .context("producing to the direct cluster")?
    };
    let lab = KafkaLab::start(BROKERS, KafkaLabOptions::default())
        .await
        .context("starting the Kafka lab behind rift")?;
    let through = measure(
        &lab.bootstrap(),
        lab.brokers[0].direct_client,
        records,
        warmup,
    )
    .await
    .context("producing through rift");
    lab.shutdown().await;
    Ok(KafkaProduce {
        records,
        direct: Percentiles::of(&direct),
        through_rift: Percentiles::of(&through?),
    })
}

/// Creates the topic (1 partition, 3 replicas, min.insync.replicas 2) and times
/// `records` sequential acks=all sends after `warmup` untimed ones.
async fn measure(
    bootstrap: &str,
    observer: SocketAddr,
    records: u64,
    warmup: u64,
) -> Result<Histogram<u64>> {
    let spec = TopicSpec::new(TOPIC, 1, BROKERS as i32).config("min.insync.replicas", "2");
    client::create_topic(bootstrap, observer, &spec, Duration::from_secs(60)).await?;
    let producer = client::producer(bootstrap, Acks::All, Duration::from_secs(10))?;
    let mut hist = new_histogram();
    for i in 0..warmup + records {
        let start = Instant::now();
        client::send(&producer, TOPIC, 0, &format!("record-{i}"))
            .await
            .map_err(|e| anyhow!("record {i}: {e}"))?;
        if i >= warmup {
            hist.saturating_record(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(hist)
}

/// The lab's plan with every advertised address replaced by the broker's real one:
/// a plain 3-broker cluster on loopback. Killed (and its files removed) when dropped.
struct DirectCluster {
    plan: KafkaPlan,
    processes: Vec<LabProcess>,
}

impl DirectCluster {
    async fn start(opts: KafkaLabOptions) -> Result<Self, LabError> {
        let mut plan = KafkaPlan::new(BROKERS, &opts, None)?;
        for b in &mut plan.brokers {
            b.client = b.direct_client;
            b.replication = b.direct_replication;
            b.controller = b.direct_controller;
        }
        let configs = plan.write_and_format().await?;
        let mut cluster = DirectCluster {
            plan,
            processes: Vec::new(),
        };
        for (b, config) in cluster.plan.brokers.iter().zip(&configs) {
            let (process, _log) = cluster.plan.spawn_broker(b, config, false)?;
            cluster.processes.push(process);
        }
        let work_dir = cluster.plan.work_dir.clone();
        let processes = &mut cluster.processes;
        cluster
            .plan
            .wait_ready(
                || {
                    for p in processes.iter_mut() {
                        if !p.is_running() {
                            let log = work_dir.join(format!("{}.log", p.name));
                            return Err(LabError::Exited(p.name.clone(), log));
                        }
                    }
                    Ok(())
                },
                opts.start_timeout,
            )
            .await?;
        Ok(cluster)
    }

    fn bootstrap(&self) -> String {
        let addrs: Vec<String> = self
            .plan
            .brokers
            .iter()
            .map(|b| b.direct_client.to_string())
            .collect();
        addrs.join(",")
    }

    fn observer(&self) -> SocketAddr {
        self.plan.brokers[0].direct_client
    }
}

impl Drop for DirectCluster {
    fn drop(&mut self) {
        for p in &mut self.processes {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.plan.work_dir);
    }
}
