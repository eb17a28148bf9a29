//! Kafka sends in the run's history, Jepsen style: `send` invoked with the record's
//! value, completed `ok` with `[offset, value]`, `fail` when the broker refused the
//! record before appending it, or `info` when it may have been appended (a timeout, a
//! lost connection, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`). The key is `topic/partition`.

use rdkafka::producer::FutureProducer;
use rift_history::{Entry, Op, OpType, Recorder};
use serde_json::json;

use super::client;

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
    let key = format!("{topic}/{partition}");
    let invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "send",
        Some(&key),
        json!(payload),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_fail_and_everything_else_is_indeterminate() {
        assert_eq!(classify("NotEnoughReplicas"), OpType::Fail);
        assert_eq!(classify("NotEnoughReplicasAfterAppend"), OpType::Info);
        assert_eq!(classify("RequestTimedOut"), OpType::Info);
        assert_eq!(classify("MessageTimedOut"), OpType::Info);
        assert_eq!(classify("BrokerTransportFailure"), OpType::Info);
    }
}
