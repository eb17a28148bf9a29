//! `rift watch`: serves cluster gauges (leader per node, Raft term, ISR size per
//! partition) read from the real cluster, for Prometheus next to rift's own metrics.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use clap::Args;
use rift_checkers::watch::{Sample, WatchTargets, Watcher, render};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
rift watch --etcd etcd1=http://127.0.0.1:2379 --etcd etcd2=http://127.0.0.1:22379 --etcd etcd3=http://127.0.0.1:32379\n  \
rift watch --kafka-controller kafka1=127.0.0.1:9093 --kafka-bootstrap 127.0.0.1:9092 --topic orders\n  \
rift watch --etcd etcd1=http://127.0.0.1:2379 --once        # print once and exit\n\n\
Use the members' real addresses (not rift's listeners) so a partition never blinds the watcher.")]
pub struct WatchArgs {
    /// An etcd member as NAME=CLIENT_URL (repeatable); NAME as in the rift topology.
    #[arg(long = "etcd", value_parser = parse_named::<String>)]
    etcd: Vec<(String, String)>,
    /// A Kafka controller listener as NAME=HOST:PORT (repeatable).
    #[arg(long = "kafka-controller", value_parser = parse_named::<SocketAddr>)]
    kafka_controllers: Vec<(String, SocketAddr)>,
    /// A Kafka broker to ask for partition metadata (repeatable; the first that answers is used).
    #[arg(long = "kafka-bootstrap")]
    kafka_bootstrap: Vec<SocketAddr>,
    /// A Kafka topic whose partitions' ISR size and leader to export (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Where to serve /metrics.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// How often to read the cluster.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Deadline of each request to a member.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Read once, print Prometheus text (or JSON with --json) and exit.
    #[arg(long)]
    once: bool,
    /// With --once: print JSON instead of Prometheus text.
    #[arg(long)]
    json: bool,
}

fn parse_named<T: std::str::FromStr>(text: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=ADDRESS"))?;
    let value = value
        .parse::<T>()
        .map_err(|e| format!("{text:?}: {value:?} is not valid: {e}"))?;
    Ok((name.to_string(), value))
}

fn to_json(samples: &[Sample]) -> serde_json::Value {
    samples
        .iter()
        .map(|s| {
            let labels: serde_json::Map<String, serde_json::Value> = s
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into()))
                .collect();
            serde_json::json!({"metric": s.name, "labels": labels, "value": s.value})
        })
        .collect()
}

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let targets = WatchTargets {
        etcd: args.etcd,
        kafka_controllers: args.kafka_controllers,
        kafka_bootstrap: args.kafka_bootstrap,
        kafka_topics: args.topics,
    };
    let watcher = Watcher::new(targets, args.timeout).await?;
    if args.once {
        let samples = watcher.poll().await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&to_json(&samples))?);
        } else {
            print!("{}", render(&samples));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let latest = Arc::new(RwLock::new(String::new()));
    let served = latest.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || async move { served.read().expect("metrics lock").clone() }),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "rift watch serving http://{}/metrics, reading the cluster every {:?}",
        args.listen, args.interval
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(args.interval);
        loop {
            tick.tick().await;
            let text = render(&watcher.poll().await);
            *latest.write().expect("metrics lock") = text;
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
