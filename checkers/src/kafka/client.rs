//! rdkafka helpers the checkers share: one broker's metadata view, topic creation,
//! producers with a chosen `acks`, and reading a partition back in full.
//!
//! librdkafka's watermark and consumer calls block, so they run in `spawn_blocking`.
//! One broker's own metadata view comes from [`super::wire::metadata_at`]: librdkafka
//! answers an application's metadata request from whichever broker it picks, and
//! during a partition the brokers disagree.

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::KafkaCheckError;

/// One partition as one broker's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    /// -1 when the broker knows no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// A broker's metadata answer.
#[derive(Debug, Clone, Serialize)]
pub struct MetadataView {
    /// The address of the broker that answered.
    pub answered_by: String,
    /// Live (unfenced) brokers as this broker sees them.
    pub brokers: Vec<i32>,
    /// Partitions of the requested topic (empty without a topic).
    pub partitions: Vec<PartitionView>,
    /// The topic's error, e.g. UnknownTopicOrPartition.
    pub topic_error: Option<String>,
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "4000")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3");
    c
}

/// `addr`'s own metadata view (of `topic`, or of the brokers only).
pub async fn metadata_from(
    addr: SocketAddr,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<MetadataView, KafkaCheckError> {
    super::wire::metadata_at(addr, topic, timeout).await
}

/// Broker ids that `addr` currently lists as live.
pub async fn broker_ids(addr: SocketAddr, timeout: Duration) -> Result<Vec<i32>, KafkaCheckError> {
    Ok(metadata_from(addr, None, timeout).await?.brokers)
}

/// One partition as `addr` sees it.
pub async fn partition_from(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<PartitionView, KafkaCheckError> {
    let view = metadata_from(addr, Some(topic), timeout).await?;
    if let Some(e) = view.topic_error {
        return Err(KafkaCheckError::Client(format!("{topic} on {addr}: {e}")));
    }
    view.partitions
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| KafkaCheckError::Client(format!("{addr} knows no {topic}-{partition}")))
}

/// What a topic is created with.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Explicit replica lists per partition (first = preferred leader); overrides
    /// `partitions` and `replication_factor`.
    pub assignment: Option<Vec<Vec<i32>>>,
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    pub fn new(name: &str, partitions: i32, rf: i32) -> Self {
        Self {
            name: name.to_string(),
            partitions,
            replication_factor: rf,
            assignment: None,
            configs: Vec::new(),
        }
    }

    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.configs.push((key.to_string(), value.to_string()));
        self
    }
}

/// Creates a topic through `bootstrap` and waits until `observer` knows a leader for
/// every partition with a full ISR.
pub async fn create_topic(
    bootstrap: &str,
    observer: SocketAddr,
    spec: &TopicSpec,
    timeout: Duration,
) -> Result<Vec<PartitionView>, KafkaCheckError> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap).create()?;
    let rows: Vec<Vec<i32>> = spec.assignment.clone().unwrap_or_default();
    let row_refs: Vec<&[i32]> = rows.iter().map(Vec::as_slice).collect();
    let mut topic = if spec.assignment.is_some() {
        NewTopic::new(
            &spec.name,
            rows.len() as i32,
            TopicReplication::Variable(&row_refs),
        )
    } else {
        NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor),
        )
    };
    for (k, v) in &spec.configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin.create_topics([&topic], &opts).await?;
    for r in results {
        if let Err((name, code)) = r {
            return Err(KafkaCheckError::Client(format!(
                "create topic {name}: {code:?}"
            )));
        }
    }
    let want = if spec.assignment.is_some() {
        rows.len()
    } else {
        spec.partitions as usize
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(view) = metadata_from(observer, Some(&spec.name), Duration::from_secs(3)).await {
            let ready = view.partitions.len() == want
                && view
                    .partitions
                    .iter()
                    .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len());
            if ready {
                return Ok(view.partitions);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KafkaCheckError::Timeout(format!(
                "topic {} has no leader and full ISR after {timeout:?}",
                spec.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `acks` of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Acks {
    /// The producer does not wait for the broker (pacelc measures it).
    #[serde(rename = "0")]
    Zero,
    #[serde(rename = "1")]
    One,
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// A producer that never retries, so each send's outcome is the broker's own answer
/// (NOT_ENOUGH_REPLICAS stays visible instead of turning into a timeout).
pub fn producer(
    bootstrap: &str,
    acks: Acks,
    request_timeout: Duration,
) -> Result<FutureProducer, KafkaCheckError> {
    let request_ms = request_timeout.as_millis().to_string();
    let message_ms = (request_timeout.as_millis() + 1000).to_string();
    Ok(base_config(bootstrap)
        .set("acks", acks.as_str())
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("linger.ms", "0")
        .set("request.timeout.ms", &request_ms)
        .set("message.timeout.ms", &message_ms)
        .create()?)
}

/// Sends one record to `topic`/`partition`; Ok(offset) or the error's name.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    payload: &str,
) -> Result<i64, String> {
    let record = FutureRecord::<str, str>::to(topic)
        .partition(partition)
        .key(payload)
        .payload(payload);
    match producer.send(record, Duration::from_secs(0)).await {
        Ok(delivery) => Ok(delivery.offset),
        Err((e, _)) => Err(error_name(&e)),
    }
}

/// A short stable name for a produce error: the Kafka/librdkafka code's name.
pub fn error_name(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => e.to_string(),
    }
}

/// True for the errors that mean "ISR below min.insync.replicas".
pub fn is_not_enough_replicas(name: &str) -> bool {
    name == "NotEnoughReplicas" || name == "NotEnoughReplicasAfterAppend"
}

/// Reads `topic`/`partition` from the beginning up to its high watermark as seen by
/// `bootstrap`: (offset, payload) pairs in log order.
pub async fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Vec<(i64, String)>, KafkaCheckError> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = base_config(&bootstrap)
            .set("group.id", "rift-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_uncommitted")
            .create()?;
        let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut next = low;
        while next < high {
            if std::time::Instant::now() >= deadline {
                return Err(KafkaCheckError::Timeout(format!(
                    "read {topic}-{partition} reached offset {next} of {high} after {timeout:?}"
                )));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let payload = m
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).to_string())
                        .unwrap_or_default();
                    next = m.offset() + 1;
                    out.push((m.offset(), payload));
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| KafkaCheckError::Client(format!("reader task: {e}")))?
}
