//! One poll of one broker for the run's history: its controller's view of the KRaft
//! quorum (DescribeQuorum) and its metadata of every topic (live brokers, leader,
//! replicas and ISR per partition), each recorded as an observation with the poll's
//! start and end. Both requests go to the broker's real ports, never through rift, so
//! a cut never blinds the poller.

use std::time::Duration;

use rift_history::{Entry, Observation, Recorder};
use serde_json::Value;

use super::BrokerInfo;
use super::wire::{describe_quorum, metadata_all_at};

/// How often the poller observes each broker. Kafka's timings under test are seconds
/// (ISR shrink after `replica.lag.time.max.ms`, elections after the quorum timeouts),
/// so 100 ms keeps their resolution fine while sparing the brokers' CPU.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Deadline of each request of a poll.
const DEADLINE: Duration = Duration::from_millis(1000);

/// Polls `broker` once: two observations, `kafka-quorum` and `kafka-metadata`.
pub async fn observe_broker(broker: &BrokerInfo, recorder: &Recorder) {
    let quorum = async {
        let started = recorder.now();
        let answer = describe_quorum(broker.direct_controller, DEADLINE).await;
        let time = recorder.now();
        let (value, error) = match answer {
            Ok(q) => (
                serde_json::json!({
                    "leads": q.is_leader(),
                    "error_code": q.error_code,
                    "leader_id": q.leader_id,
                    "leader_epoch": q.leader_epoch,
                    "high_watermark": q.high_watermark,
                }),
                None,
            ),
            Err(e) => (Value::Null, Some(e.to_string())),
        };
        record(
            recorder,
            "kafka-quorum",
            &broker.name,
            started,
            time,
            value,
            error,
        );
    };
    let metadata = async {
        let started = recorder.now();
        let answer = metadata_all_at(broker.direct_client, DEADLINE).await;
        let time = recorder.now();
        let (value, error) = match answer {
            Ok(mut m) => {
                // Internal topics (__consumer_offsets: 50 partitions) would swamp the
                // history and no checker judges them.
                m.topics.retain(|t| !t.name.starts_with("__"));
                (serde_json::to_value(&m).unwrap_or_default(), None)
            }
            Err(e) => (Value::Null, Some(e.to_string())),
        };
        record(
            recorder,
            "kafka-metadata",
            &broker.name,
            started,
            time,
            value,
            error,
        );
    };
    tokio::join!(quorum, metadata);
}

fn record(
    recorder: &Recorder,
    observation: &str,
    node: &str,
    started: u64,
    time: u64,
    value: Value,
    error: Option<String>,
) {
    recorder.record(Entry::Observation(Observation {
        index: 0,
        time,
        started,
        observation: observation.to_string(),
        node: node.to_string(),
        value,
        error,
    }));
}
