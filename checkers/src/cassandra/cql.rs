//! CQL sessions bound to one node, and what an error from one proves.
//!
//! A session here talks to exactly one node, its coordinator: the driver is given that
//! node's real native address as its only contact point, a host filter that accepts no
//! other node (no connection pool is opened to the peers it learns from
//! `system.peers`), a load-balancing policy that targets that node alone, and no
//! retries or speculative executions. So a client of a node cut off by a fault keeps
//! asking that node, and every answer in the history is that node's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rift_history::OpType;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::cluster::{ClusterState, NodeRef};
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::policies::host_filter::AllowListHostFilter;
use scylla::policies::load_balancing::{FallbackPlan, LoadBalancingPolicy, RoutingInfo};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::routing::Shard;

use super::CassandraError;

/// One session per node, opened on first use and reopened after [`Sessions::forget`].
#[derive(Clone)]
pub struct Sessions {
    nodes: Arc<Vec<(String, SocketAddr)>>,
    /// Every node's real native address by its broadcast (rift) native address.
    translate: Arc<HashMap<SocketAddr, SocketAddr>>,
    timeout: Duration,
    open: Arc<tokio::sync::Mutex<HashMap<String, Arc<Session>>>>,
}

impl Sessions {
    /// `nodes`: node name -> its real native address; `rift`: broadcast (rift) address
    /// -> node name; `timeout`: every request's client-side deadline.
    pub fn new(
        nodes: Vec<(String, SocketAddr)>,
        rift: &[(IpAddr, String)],
        timeout: Duration,
    ) -> Self {
        let translate = rift
            .iter()
            .filter_map(|(ip, name)| {
                let real = nodes.iter().find(|(n, _)| n == name)?.1;
                Some((SocketAddr::new(*ip, real.port()), real))
            })
            .collect();
        Sessions {
            nodes: Arc::new(nodes),
            translate: Arc::new(translate),
            timeout,
            open: Arc::default(),
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn nodes(&self) -> &[(String, SocketAddr)] {
        &self.nodes
    }

    /// The real native address of `node`.
    pub fn address(&self, node: &str) -> Result<SocketAddr, CassandraError> {
        self.nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, a)| *a)
            .ok_or_else(|| CassandraError::UnknownNode(node.to_string()))
    }

    /// The session of `node`, opened now if there is none.
    pub async fn get(&self, node: &str) -> Result<Arc<Session>, CassandraError> {
        if let Some(s) = self.open.lock().await.get(node) {
            return Ok(s.clone());
        }
        let addr = self.address(node)?;
        let s = Arc::new(connect(node, addr, &self.translate, self.timeout).await?);
        self.open.lock().await.insert(node.to_string(), s.clone());
        Ok(s)
    }

    /// Drops the session of `node` (after an error), so the next use reconnects.
    pub async fn forget(&self, node: &str) {
        self.open.lock().await.remove(node);
    }
}

/// Opens a session to the node at `addr` only. `translate` maps the addresses the
/// nodes publish (`broadcast_rpc_address`: rift's listeners) to their real ones, so the
/// driver's pool connects directly. `timeout` is the client-side deadline of every
/// request of this session (past it a request is abandoned by the driver).
pub async fn connect(
    node: &str,
    addr: SocketAddr,
    translate: &HashMap<SocketAddr, SocketAddr>,
    timeout: Duration,
) -> Result<Session, CassandraError> {
    // The node appears in the driver's metadata under the address it publishes.
    let mut allowed = vec![addr];
    allowed.extend(
        translate
            .iter()
            .filter(|(_, r)| **r == addr)
            .map(|(p, _)| *p),
    );
    let ips: Vec<IpAddr> = allowed.iter().map(SocketAddr::ip).collect();
    let filter = AllowListHostFilter::new(allowed).map_err(|e| CassandraError::Connect {
        node: node.to_string(),
        addr,
        message: e.to_string(),
    })?;
    let profile = ExecutionProfile::builder()
        .load_balancing_policy(Arc::new(OneNode { ips }))
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
        .speculative_execution_policy(None)
        .request_timeout(Some(timeout))
        .build();
    let builder = SessionBuilder::new()
        .known_node_addr(addr)
        .host_filter(Arc::new(filter))
        .address_translator(Arc::new(translate.clone()))
        .default_execution_profile_handle(profile.into_handle())
        // Routing is by node, not by token: no schema metadata is needed.
        .fetch_schema_metadata(false)
        .fetch_full_schema_metadata(false)
        .connection_timeout(Duration::from_secs(2));
    let build = builder.build();
    match tokio::time::timeout(timeout.max(Duration::from_secs(3)), build).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(CassandraError::Connect {
            node: node.to_string(),
            addr,
            message: e.to_string(),
        }),
        Err(_) => Err(CassandraError::Connect {
            node: node.to_string(),
            addr,
            message: "no session within the deadline".into(),
        }),
    }
}

/// Sends every request to the one node whose (published or real) address is in
/// `ips`, with no fallback: the driver's own single-target policy looks a node up by
/// one address, which may be the translated or the published one.
#[derive(Debug)]
struct OneNode {
    ips: Vec<IpAddr>,
}

impl LoadBalancingPolicy for OneNode {
    fn pick<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        cluster: &'a ClusterState,
    ) -> Option<(NodeRef<'a>, Option<Shard>)> {
        cluster
            .get_nodes_info()
            .iter()
            .find(|n| self.ips.contains(&n.address.ip()))
            .map(|n| (n, None))
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a RoutingInfo,
        _cluster: &'a ClusterState,
    ) -> FallbackPlan<'a> {
        Box::new(std::iter::empty())
    }

    fn name(&self) -> String {
        "rift-one-node".into()
    }
}

/// How a failed write ended in the history, and the error as recorded: `fail` only
/// when Cassandra proves nothing was written, `info` otherwise.
pub fn classify_write(e: &ExecutionError) -> (OpType, String) {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, msg)) => match db {
            DbError::Unavailable {
                consistency,
                required,
                alive,
            } => (
                OpType::Fail,
                format!(
                    "UnavailableException: the coordinator refused before writing \
                     (consistency {consistency}, required {required}, alive {alive})"
                ),
            ),
            DbError::WriteTimeout {
                consistency,
                received,
                required,
                write_type,
            } => (
                OpType::Info,
                format!(
                    "WriteTimeoutException: {received} of {required} replicas acknowledged \
                     in time (consistency {consistency}, write type {write_type}); the write \
                     may have been applied"
                ),
            ),
            // Refused by the coordinator before anything was sent to a replica.
            DbError::Overloaded | DbError::IsBootstrapping => {
                (OpType::Fail, format!("{db}: refused before writing"))
            }
            DbError::SyntaxError | DbError::Invalid | DbError::Unauthorized => {
                (OpType::Fail, format!("{db}: {msg}"))
            }
            other => (OpType::Info, format!("{other}: {msg}")),
        },
        ExecutionError::RequestTimeout(d) => (
            OpType::Info,
            format!("client timeout after {d:?}: the write may have been applied"),
        ),
        // No connection to the coordinator: the request never left the client.
        ExecutionError::ConnectionPoolError(err) => (
            OpType::Fail,
            format!("no connection to the coordinator, request not sent: {err}"),
        ),
        other => (OpType::Info, other.to_string()),
    }
}

/// The error of a failed read as recorded (a read that failed observed nothing and
/// changed nothing: it is always `fail`).
pub fn describe_read_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => match db {
            DbError::Unavailable {
                consistency,
                required,
                alive,
            } => format!(
                "UnavailableException: the coordinator refused before reading \
                 (consistency {consistency}, required {required}, alive {alive})"
            ),
            DbError::ReadTimeout {
                consistency,
                received,
                required,
                ..
            } => format!(
                "ReadTimeoutException: {received} of {required} replicas answered in time \
                 (consistency {consistency})"
            ),
            DbError::WriteTimeout { .. } => format!("WriteTimeoutException: {db}"),
            other => other.to_string(),
        },
        ExecutionError::RequestTimeout(d) => format!("client timeout after {d:?}"),
        other => other.to_string(),
    }
}

/// The kind of refusal an error text names, as the checks count them.
pub fn refusal_kind(error: &str) -> &'static str {
    if error.starts_with("UnavailableException") {
        "Unavailable"
    } else if error.starts_with("WriteTimeoutException") {
        "WriteTimeout"
    } else if error.starts_with("ReadTimeoutException") {
        "ReadTimeout"
    } else if error.starts_with("client timeout") {
        "client timeout"
    } else if error.contains("CAS") || error.contains("Cas") {
        "CAS timeout"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::frame::types::Consistency;

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "msg".into()))
    }

    #[test]
    fn only_proven_refusals_are_failures() {
        let (t, text) = classify_write(&db(DbError::Unavailable {
            consistency: Consistency::Quorum,
            required: 2,
            alive: 1,
        }));
        assert_eq!(t, OpType::Fail);
        assert!(text.starts_with("UnavailableException"), "{text}");
        assert_eq!(refusal_kind(&text), "Unavailable");

        let (t, text) = classify_write(&db(DbError::WriteTimeout {
            consistency: Consistency::Quorum,
            received: 1,
            required: 2,
            write_type: scylla::errors::WriteType::Simple,
        }));
        assert_eq!(t, OpType::Info, "a write timeout may have been applied");
        assert_eq!(refusal_kind(&text), "WriteTimeout");

        let (t, text) = classify_write(&ExecutionError::RequestTimeout(Duration::from_secs(3)));
        assert_eq!(t, OpType::Info);
        assert_eq!(refusal_kind(&text), "client timeout");

        let (t, _) = classify_write(&db(DbError::ServerError));
        assert_eq!(t, OpType::Info, "an unexplained error proves nothing");
    }
}
