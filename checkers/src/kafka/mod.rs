//! Kafka checkers: real clients (rdkafka, plus two raw requests in [`wire`]) that
//! observe a KRaft cluster behind rift and turn what it did into verdicts.
//!
//! - [`cluster`]: who is who (node names, ids, rift and real addresses).
//! - [`client`]: rdkafka helpers — per-broker metadata, topics, producers, consumers.
//! - [`wire`]: DescribeQuorum and CreateTopics sent to one chosen broker.
//! - [`checks`]: the checkers (ISR shrink, acks=all rejection, acks=1 loss vs acks=all
//!   safety, leader step-down, quorum availability, no lost records). Each is a pure
//!   function of the run's history with a driver that records its client operations.
//! - [`observe`]: one poll of one broker for the run's poller.
//! - [`ops`]: sends, topic creations and reads recorded in the history.
//! - [`system`]: Kafka as a scenario [`Cluster`](crate::scenario::Cluster) (lab or
//!   attach), mapping `[[checker]]` kinds to the checkers.
//!
//! Observers talk to brokers' real ports so a fault never blinds them; workloads go
//! through rift as the identity `client`, which the fault places on a side.

pub mod checks;
pub mod client;
pub mod cluster;
pub mod log_check;
pub mod observe;
pub mod ops;
pub mod system;
pub mod wire;

use thiserror::Error;

pub use cluster::{BrokerInfo, ClusterInfo};

#[derive(Debug, Error)]
pub enum KafkaCheckError {
    #[error("kafka client: {0}")]
    Client(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("kafka protocol: {0}")]
    Protocol(String),
    #[error("{origin}: field {field} = {value}: {reason}")]
    Config {
        origin: String,
        field: String,
        value: String,
        reason: String,
    },
    #[error("lab: {0}")]
    Lab(#[from] crate::lab::LabError),
    #[error("proxy: {0}")]
    Proxy(String),
}

impl From<rdkafka::error::KafkaError> for KafkaCheckError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        KafkaCheckError::Client(e.to_string())
    }
}
