//! Kafka client operations in the run's history, Jepsen style:
//! - `send`, invoked with the record's value, completed `ok` with `[offset, value]`,
//!   `fail` when the broker refused the record before appending it, or `info` when it
//!   may have been appended (a timeout, a lost connection,
//!   `NOT_ENOUGH_REPLICAS_AFTER_APPEND`). The key is `topic/partition`; the value names
//!   the producer's acks level ([`payload`], [`acks_of`]).
//! - `create-topic`, key the topic, `node` the broker asked when one was: `ok` when
//!   Kafka answered that it created it, `fail` when it refused with an error that
//!   proves nothing was created, `info` otherwise (a timeout may still create it).
//! - `read`, key `topic/partition`: the invoke's value is `null`, an `ok` completion
//!   carries the partition's log as `[[offset, value], ...]`.

use std::time::Duration;

use rdkafka::producer::FutureProducer;
use rift_history::{Entry, Op, OpType, Recorder};
use serde_json::json;

use super::client::{self, Acks, PartitionView, TopicSpec};
use super::{BrokerInfo, ClusterInfo};

/// A record's value: unique per send, and naming its acks level so that checkers
/// reading the history know which guarantee the acknowledgement carried.
pub fn payload(label: &str, acks: Acks, partition: i32, seq: u64) -> String {
    format!("{label}-acks{}-p{partition}-{seq}", acks.as_str())
}

/// The acks level a [`payload`] names.
pub fn acks_of(payload: &str) -> Option<Acks> {
    if payload.contains("-acksall-") {
        Some(Acks::All)
    } else if payload.contains("-acks1-") {
        Some(Acks::One)
    } else {
        None
    }
}

/// Errors that prove the record was not appended: the broker checked and refused
/// before writing it to its log.
const REFUSED: &[&str] = &[
    "NotEnoughReplicas",
    "NotLeaderForPartition",
    "NotLeaderOrFollower",
    "UnknownTopicOrPartition",
    "MessageSizeTooLarge",
    "InvalidRecord",
    "TopicAuthorizationFailed",
];

/// How a failed send completes in the history.
pub fn classify(error_name: &str) -> OpType {
    if REFUSED.contains(&error_name) {
        OpType::Fail
    } else {
        OpType::Info
    }
}

/// [`client::send`], recorded in `recorder` under a fresh process (sends run
/// concurrently, and each process has at most one operation in flight).
pub async fn send_recorded(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    payload: &str,
    acks: client::Acks,
    recorder: &Recorder,
) -> Result<i64, String> {
    send_recorded_to(producer, (topic, partition), payload, acks, None, recorder).await
}

/// [`send_recorded`] with the op's `node` set to the partition's leader when known.
pub async fn send_recorded_to(
    producer: &FutureProducer,
    (topic, partition): (&str, i32),
    payload: &str,
    acks: client::Acks,
    leader: Option<&str>,
    recorder: &Recorder,
) -> Result<i64, String> {
    let key = format!("{topic}/{partition}");
    let mut invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "send",
        Some(&key),
        json!(payload),
    );
    if let Some(node) = leader {
        invoke = invoke.with_node(node);
    }
    recorder.record(Entry::Op(invoke.clone()));
    let result = client::send(producer, topic, partition, payload).await;
    let time = recorder.now();
    let done = match &result {
        Ok(offset) => invoke.complete(time, OpType::Ok, json!([offset, payload])),
        Err(e) => invoke
            .complete(time, classify(e), json!(payload))
            .with_error(format!("acks={}: {e}", acks.as_str())),
    };
    recorder.record(Entry::Op(done));
    result
}

/// Creates a topic through `info`'s brokers (the admin client bootstraps through rift;
/// readiness is read from the first broker's real port), recorded as `create-topic`.
/// A creation that errs is `info`: the request may have reached the controller.
pub async fn create_topic_recorded(
    info: &ClusterInfo,
    spec: &TopicSpec,
    recorder: &Recorder,
) -> Result<Vec<PartitionView>, String> {
    let invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "create-topic",
        Some(&spec.name),
        json!({"partitions": spec.partitions, "assignment": spec.assignment, "configs": spec.configs}),
    );
    recorder.record(Entry::Op(invoke.clone()));
    let result = client::create_topic(
        &info.bootstrap(),
        info.brokers[0].direct_client,
        spec,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| format!("cannot create topic {}: {e}", spec.name));
    let time = recorder.now();
    let done = match &result {
        Ok(parts) => invoke.complete(time, OpType::Ok, json!(parts)),
        Err(e) => invoke
            .complete(time, OpType::Info, json!(null))
            .with_error(e),
    };
    recorder.record(Entry::Op(done));
    result
}

/// Kafka error codes of CreateTopics that prove nothing was created.
const CREATE_REFUSED: &[i16] = &[
    36, // TOPIC_ALREADY_EXISTS
    37, // INVALID_PARTITIONS
    38, // INVALID_REPLICATION_FACTOR
    17, // INVALID_TOPIC_EXCEPTION
];

/// Asks one broker (its real port: the broker forwards to the controller it knows,
/// through rift) to create `topic`, recorded as `create-topic` with `node` = the
/// broker. `cancel` resolving first ends the operation `info`: it may still happen.
pub async fn create_topic_at_recorded(
    broker: &BrokerInfo,
    topic: &str,
    server_timeout: Duration,
    recorder: &Recorder,
    cancel: impl std::future::Future<Output = ()>,
) -> OpType {
    let invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "create-topic",
        Some(topic),
        json!({"partitions": 1, "replication_factor": 1}),
    )
    .with_node(&broker.name);
    recorder.record(Entry::Op(invoke.clone()));
    let probe = super::wire::create_topic_at(broker.direct_client, topic, 1, server_timeout);
    let (outcome, error) = tokio::select! {
        r = probe => match r {
            Ok(0) => (OpType::Ok, None),
            Ok(code) if CREATE_REFUSED.contains(&code) => {
                (OpType::Fail, Some(super::wire::error_code_name(code)))
            }
            Ok(code) => (OpType::Info, Some(super::wire::error_code_name(code))),
            Err(e) => (OpType::Info, Some(e.to_string())),
        },
        () = cancel => (OpType::Info, Some("no answer before the end of the hold".to_string())),
    };
    let mut done = invoke.complete(recorder.now(), outcome, json!(null));
    done.error = error;
    recorder.record(Entry::Op(done));
    outcome
}

/// Reads `topic`/`partition` from the beginning (real ports), recorded as `read`.
pub async fn read_recorded(
    info: &ClusterInfo,
    topic: &str,
    partition: i32,
    recorder: &Recorder,
) -> Result<Vec<(i64, String)>, String> {
    let key = format!("{topic}/{partition}");
    let invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "read",
        Some(&key),
        json!(null),
    );
    recorder.record(Entry::Op(invoke.clone()));
    let result = client::read_partition(
        &info.direct_bootstrap(),
        topic,
        partition,
        Duration::from_secs(20),
    )
    .await
    .map_err(|e| e.to_string());
    let time = recorder.now();
    let done = match &result {
        Ok(log) => invoke.complete(time, OpType::Ok, json!(log)),
        Err(e) => invoke
            .complete(time, OpType::Fail, json!(null))
            .with_error(e),
    };
    recorder.record(Entry::Op(done));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_acks_level() {
        assert_eq!(
            acks_of(&payload("record", Acks::All, 2, 7)),
            Some(Acks::All)
        );
        assert_eq!(acks_of(&payload("x", Acks::One, 0, 0)), Some(Acks::One));
        assert_eq!(payload("record", Acks::All, 0, 0), "record-acksall-p0-0");
        assert_eq!(acks_of("record-7"), None);
    }

    #[test]
    fn refusals_fail_and_everything_else_is_indeterminate() {
        assert_eq!(classify("NotEnoughReplicas"), OpType::Fail);
        assert_eq!(classify("NotEnoughReplicasAfterAppend"), OpType::Info);
        assert_eq!(classify("RequestTimedOut"), OpType::Info);
        assert_eq!(classify("MessageTimedOut"), OpType::Info);
        assert_eq!(classify("BrokerTransportFailure"), OpType::Info);
    }
}
