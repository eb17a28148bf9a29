//! Cassandra 5.0 as a rift system: a lab of real nodes behind rift, CQL sessions
//! bound to one coordinator each (the `scylla` driver), the poller's observation of one
//! node (gossip and hints), the register workload at ONE, QUORUM and SERIAL, and checks
//! that judge the recorded history.
//!
//! - [`lab`]: nodes on two loopback addresses each, rift on storage and native ports.
//! - [`cql`]: one-node sessions and what a driver error proves.
//! - [`observer`]: one poll of one node (`system_views.gossip_info`, `pending_hints`).
//! - [`workload`]: the register workload (`kind = "register"`).
//! - [`checks`]: availability at ONE, refusal at QUORUM, no lost write after the heal.
//! - [`system`]: Cassandra as a scenario [`Cluster`](crate::scenario::Cluster).

pub mod checks;
pub mod cql;
pub mod lab;
pub mod observer;
pub mod system;
pub mod workload;

use std::net::SocketAddr;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CassandraError {
    #[error("{node} ({addr}): cannot open a CQL session: {message}")]
    Connect {
        node: String,
        addr: SocketAddr,
        message: String,
    },
    #[error("{node}: {message}")]
    Query { node: String, message: String },
    #[error("unknown node {0}")]
    UnknownNode(String),
}
