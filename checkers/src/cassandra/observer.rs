//! One poll of one node: what the node's gossip says about every endpoint, and the
//! hints it holds for its peers, asked over CQL on the node's real native port (so a
//! fault never blinds the poller) from two of Cassandra 5.0's virtual tables:
//! - `system_views.gossip_info`: per endpoint its generation, heartbeat version and
//!   status. A peer whose heartbeat stops advancing in a node's view is one that node
//!   no longer hears from (gossip crosses rift; the poll does not).
//! - `system_views.pending_hints`: per peer the hint files waiting for it. Hints pile
//!   up for a peer the node cannot reach and drain after the heal.
//!
//! Both are local reads of the node's own state: no replica is asked, so a cut-off node
//! answers as fast as a healthy one. nodetool would need JMX and a JVM per call.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::value::{CqlValue, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CassandraError;
use super::cql::Sessions;

/// An endpoint as one node's gossip knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerView {
    /// The node name (from its broadcast address), or the address when unknown.
    pub peer: String,
    pub generation: Option<i64>,
    pub heartbeat: Option<i64>,
    /// The gossiped status without its tokens (`NORMAL`, `shutdown`, ...).
    pub status: Option<String>,
}

/// Hints one node holds for a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HintsView {
    pub peer: String,
    pub files: Option<i64>,
    /// The other columns of the row, as the node returned them.
    pub row: BTreeMap<String, Value>,
}

/// What one poll of one node returned: the value of a `cassandra-ring` observation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RingView {
    pub peers: Vec<PeerView>,
    pub hints: Vec<HintsView>,
}

impl RingView {
    /// Endpoints (the node itself included) whose gossiped status is NORMAL.
    pub fn normal_peers(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.status.as_deref() == Some("NORMAL"))
            .count()
    }

    /// `cass1=NORMAL@46,...`: each endpoint's status and heartbeat version as this
    /// node knows them (a heartbeat that stops advancing is a peer no longer heard).
    pub fn describe(&self) -> String {
        self.peers
            .iter()
            .map(|p| {
                format!(
                    "{}={}@{}",
                    p.peer,
                    p.status.as_deref().unwrap_or("?"),
                    p.heartbeat.map_or("?".into(), |h| h.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Sessions to every node's real native port, opened on first use and reopened after
/// an error.
#[derive(Clone)]
pub struct CassandraObserver {
    sessions: Sessions,
    names: Arc<HashMap<IpAddr, String>>,
}

/// Deadline of the observer's requests (local reads of virtual tables).
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);

impl CassandraObserver {
    /// `direct`: node -> real native address; `names`: broadcast (rift) address ->
    /// node, to name the endpoints gossip reports.
    pub fn new(direct: Vec<(String, SocketAddr)>, names: Vec<(IpAddr, String)>) -> Self {
        CassandraObserver {
            sessions: Sessions::new(direct, &names, OBSERVE_TIMEOUT),
            names: Arc::new(names.into_iter().collect()),
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        self.sessions.node_names()
    }

    /// The node's real native addresses, for sessions of other clients.
    pub fn nodes(&self) -> Vec<(String, SocketAddr)> {
        self.sessions.nodes().to_vec()
    }

    /// New sessions to the same nodes with another request deadline.
    pub fn sessions(&self, timeout: Duration) -> Sessions {
        Sessions::new(self.nodes(), &self.names(), timeout)
    }

    /// The broadcast (rift) address -> node name map.
    pub fn names(&self) -> Vec<(IpAddr, String)> {
        self.names.iter().map(|(a, n)| (*a, n.clone())).collect()
    }

    /// One poll of `node`: its gossip view and its pending hints.
    pub async fn ring(&self, node: &str, deadline: Duration) -> Result<RingView, CassandraError> {
        let r = tokio::time::timeout(deadline, self.ring_inner(node)).await;
        let r = r.unwrap_or_else(|_| {
            Err(CassandraError::Query {
                node: node.to_string(),
                message: format!("no answer within {deadline:?}"),
            })
        });
        if r.is_err() {
            self.sessions.forget(node).await;
        }
        r
    }

    async fn ring_inner(&self, node: &str) -> Result<RingView, CassandraError> {
        let session = self.sessions.get(node).await?;
        let gossip = select_all(&session, node, "SELECT * FROM system_views.gossip_info").await?;
        let hints = select_all(&session, node, "SELECT * FROM system_views.pending_hints").await?;
        let mut peers: Vec<PeerView> = gossip
            .into_iter()
            .map(|row| PeerView {
                peer: self.name_of(&row),
                generation: row.get("generation").and_then(Value::as_i64),
                heartbeat: row.get("heartbeat").and_then(Value::as_i64),
                status: row
                    .get("status_with_port")
                    .or_else(|| row.get("status"))
                    .and_then(Value::as_str)
                    .map(|s| s.split(',').next().unwrap_or(s).to_string()),
            })
            .collect();
        peers.sort_by(|a, b| a.peer.cmp(&b.peer));
        let mut hints: Vec<HintsView> = hints
            .into_iter()
            .map(|mut row| {
                let peer = self.name_of(&row);
                let files = row.get("files").and_then(Value::as_i64);
                row.retain(|k, _| !matches!(k.as_str(), "address" | "port" | "files"));
                HintsView { peer, files, row }
            })
            .collect();
        hints.sort_by(|a, b| a.peer.cmp(&b.peer));
        Ok(RingView { peers, hints })
    }

    fn name_of(&self, row: &BTreeMap<String, Value>) -> String {
        let addr = row.get("address").and_then(Value::as_str).unwrap_or("?");
        addr.parse::<IpAddr>()
            .ok()
            .and_then(|ip| self.names.get(&ip).cloned())
            .unwrap_or_else(|| addr.to_string())
    }
}

/// Every row of `query` as column name -> JSON value.
async fn select_all(
    session: &Session,
    node: &str,
    query: &str,
) -> Result<Vec<BTreeMap<String, Value>>, CassandraError> {
    let err = |message: String| CassandraError::Query {
        node: node.to_string(),
        message,
    };
    let result = session
        .query_unpaged(query, &[])
        .await
        .map_err(|e| err(format!("{query}: {e}")))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| err(format!("{query}: {e}")))?;
    let names: Vec<String> = rows
        .column_specs()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut out = Vec::new();
    for row in rows
        .rows::<Row>()
        .map_err(|e| err(format!("{query}: {e}")))?
    {
        let row = row.map_err(|e| err(format!("{query}: {e}")))?;
        out.push(
            names
                .iter()
                .cloned()
                .zip(
                    row.columns
                        .iter()
                        .map(|v| v.as_ref().map_or(Value::Null, to_json)),
                )
                .collect(),
        );
    }
    Ok(out)
}

/// A CQL value as JSON (the types the virtual tables use; others as their debug text).
pub fn to_json(v: &CqlValue) -> Value {
    match v {
        CqlValue::Ascii(s) | CqlValue::Text(s) => Value::from(s.clone()),
        CqlValue::Boolean(b) => Value::from(*b),
        CqlValue::Int(i) => Value::from(*i),
        CqlValue::BigInt(i) => Value::from(*i),
        CqlValue::SmallInt(i) => Value::from(*i),
        CqlValue::TinyInt(i) => Value::from(*i),
        CqlValue::Double(f) => Value::from(*f),
        CqlValue::Float(f) => Value::from(*f),
        CqlValue::Inet(ip) => Value::from(ip.to_string()),
        CqlValue::Uuid(u) => Value::from(u.to_string()),
        CqlValue::Timestamp(t) => Value::from(t.0),
        CqlValue::List(l) | CqlValue::Set(l) => Value::Array(l.iter().map(to_json).collect()),
        other => Value::from(format!("{other:?}")),
    }
}
