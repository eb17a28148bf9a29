//! Observing real etcd members: one etcd-client per member, talking to the member's
//! real client port so that a fault between members never blinds the observer.
//!
//! What a member says about itself comes from Maintenance Status: `leader` is live
//! (0 = this member knows no leader), while `raft_term` is the term of the last
//! APPLIED entry, not the member's current term (a cut-off member campaigning at term 12
//! still reports 2). Campaigns and leader changes are therefore read from the member's
//! own Prometheus metrics (`etcd_server_leader_changes_seen_total`,
//! `etcd_server_has_leader`). Every call has a deadline shorter than any fault: without
//! one, a request to a member without quorum is retried until the heal and succeeds.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum EtcdError {
    #[error("{member}: {op} failed: {message}")]
    Request {
        member: String,
        op: &'static str,
        message: String,
    },
    #[error("{member}: {op} timed out after {after:?}")]
    Timeout {
        member: String,
        op: &'static str,
        after: Duration,
    },
    #[error("unknown etcd member {0:?}")]
    UnknownMember(String),
    #[error("no leader agreed by a majority within {0:?}: {1}")]
    NoLeader(Duration, String),
}

/// One member's view of the cluster at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub member_id: u64,
    /// Member id of the leader this member follows; 0 when it knows none.
    pub leader_id: u64,
    /// Name of that leader, when the observer has seen its id.
    pub leader: Option<String>,
    /// Term of the last applied entry (see the module notes).
    pub applied_term: u64,
    pub raft_index: u64,
}

/// Counters read from a member's /metrics.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MemberMetrics {
    pub leader_changes_seen: u64,
    pub has_leader: bool,
    pub is_leader: bool,
}

/// A connected etcd client for one member.
#[derive(Clone)]
struct MemberClient {
    name: String,
    url: String,
    client: Client,
}

/// One client per member plus the id -> name map learnt from their Status answers.
#[derive(Clone)]
pub struct EtcdObserver {
    members: Vec<MemberClient>,
    ids: Arc<RwLock<BTreeMap<u64, String>>>,
    http: reqwest::Client,
}

impl EtcdObserver {
    /// Connects lazily to every member's client URL (`http://127.0.0.1:port`).
    pub async fn connect(members: &[(String, String)]) -> Result<Self, EtcdError> {
        let mut clients = Vec::with_capacity(members.len());
        for (name, url) in members {
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_keep_alive(Duration::from_secs(1), Duration::from_millis(500));
            let client = Client::connect([url.as_str()], Some(opts))
                .await
                .map_err(|e| EtcdError::Request {
                    member: name.clone(),
                    op: "connect",
                    message: e.to_string(),
                })?;
            clients.push(MemberClient {
                name: name.clone(),
                url: url.clone(),
                client,
            });
        }
        Ok(Self {
            members: clients,
            ids: Arc::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("plain HTTP client builds"),
        })
    }

    pub fn member_names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    fn member(&self, name: &str) -> Result<&MemberClient, EtcdError> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| EtcdError::UnknownMember(name.to_string()))
    }

    /// The member name for a Raft member id, once that member answered a Status.
    pub fn name_of(&self, id: u64) -> Option<String> {
        self.ids.read().expect("id map lock").get(&id).cloned()
    }

    pub async fn status(&self, name: &str, timeout: Duration) -> Result<MemberStatus, EtcdError> {
        let m = self.member(name)?;
        let mut client = m.client.clone();
        let resp = deadline(name, "status", timeout, client.status()).await?;
        let member_id = resp.header().map(|h| h.member_id()).unwrap_or(0);
        if member_id != 0 {
            self.ids
                .write()
                .expect("id map lock")
                .insert(member_id, name.to_string());
        }
        let leader_id = resp.leader();
        Ok(MemberStatus {
            name: name.to_string(),
            member_id,
            leader_id,
            leader: if leader_id == 0 {
                None
            } else {
                self.name_of(leader_id)
            },
            applied_term: resp.raft_term(),
            raft_index: resp.raft_index(),
        })
    }

    /// Status of every member, concurrently; unreachable members map to their error.
    pub async fn status_all(
        &self,
        timeout: Duration,
    ) -> Vec<(String, Result<MemberStatus, EtcdError>)> {
        let mut set = tokio::task::JoinSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let this = self.clone();
            let name = m.name.clone();
            set.spawn(async move {
                let st = this.status(&name, timeout).await;
                (i, name, st)
            });
        }
        let mut indexed = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(r) = joined {
                indexed.push(r);
            }
        }
        indexed.sort_by_key(|(i, _, _)| *i);
        let mut out: Vec<_> = indexed.into_iter().map(|(_, n, s)| (n, s)).collect();
        // Leader names need every id; a second pass fills those learnt in this round.
        for (_, st) in out.iter_mut() {
            if let Ok(s) = st
                && s.leader.is_none()
                && s.leader_id != 0
            {
                s.leader = self.name_of(s.leader_id);
            }
        }
        out
    }

    /// The leader followed by a majority of members right now, with its applied term.
    pub async fn majority_leader(&self, timeout: Duration) -> Option<(String, u64)> {
        let all = self.status_all(timeout).await;
        majority_leader_of(&all, self.quorum())
    }

    /// Waits until a majority follows the same leader (optionally not `exclude`).
    pub async fn wait_for_leader(
        &self,
        timeout: Duration,
        exclude: Option<&str>,
    ) -> Result<(String, u64), EtcdError> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < timeout {
            let all = self.status_all(Duration::from_millis(500)).await;
            if let Some((leader, term)) = majority_leader_of(&all, self.quorum())
                && Some(leader.as_str()) != exclude
            {
                return Ok((leader, term));
            }
            last = describe(&all);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EtcdError::NoLeader(timeout, last))
    }

    /// A Put through `name`, failing at `timeout`.
    pub async fn put(
        &self,
        name: &str,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<i64, EtcdError> {
        let mut kv = self.member(name)?.client.kv_client();
        let resp = deadline(name, "put", timeout, kv.put(key, value, None)).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// A Get through `name`: linearizable unless `serializable` (answered from the
    /// member's local state, possibly stale).
    pub async fn get(
        &self,
        name: &str,
        key: &str,
        serializable: bool,
        timeout: Duration,
    ) -> Result<Option<String>, EtcdError> {
        let mut kv = self.member(name)?.client.kv_client();
        let opts = if serializable {
            Some(GetOptions::new().with_serializable())
        } else {
            None
        };
        let resp = deadline(name, "get", timeout, kv.get(key, opts)).await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Compare-and-set through `name` as one Txn: when `key` holds `expected` (`None`:
    /// the key does not exist), it is set to `new`. `Ok(true)` when the Txn applied the
    /// Put, `Ok(false)` when the comparison failed (the Txn committed, changing nothing).
    pub async fn cas(
        &self,
        name: &str,
        key: &str,
        expected: Option<&str>,
        new: &str,
        timeout: Duration,
    ) -> Result<bool, EtcdError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let mut kv = self.member(name)?.client.kv_client();
        // A value comparison on a missing key is always false in etcd, so absence is
        // compared as version 0.
        let compare = match expected {
            Some(v) => Compare::value(key, CompareOp::Equal, v),
            None => Compare::version(key, CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, new, None)]);
        let resp = deadline(name, "txn", timeout, kv.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Every key under `prefix`, read linearizably through `name`.
    pub async fn get_prefix(
        &self,
        name: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>, EtcdError> {
        let mut kv = self.member(name)?.client.kv_client();
        let opts = Some(GetOptions::new().with_prefix());
        let resp = deadline(name, "get", timeout, kv.get(prefix, opts)).await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                )
            })
            .collect())
    }

    /// Deletes `key` through `name` (used by tests that break the lost-write property).
    pub async fn delete(&self, name: &str, key: &str, timeout: Duration) -> Result<(), EtcdError> {
        let mut kv = self.member(name)?.client.kv_client();
        deadline(name, "delete", timeout, kv.delete(key, None)).await?;
        Ok(())
    }

    /// Reads the member's /metrics (served on its client port).
    pub async fn metrics(&self, name: &str) -> Result<MemberMetrics, EtcdError> {
        let m = self.member(name)?;
        let err = |message: String| EtcdError::Request {
            member: name.to_string(),
            op: "metrics",
            message,
        };
        let body = self
            .http
            .get(format!("{}/metrics", m.url))
            .send()
            .await
            .map_err(|e| err(e.to_string()))?
            .text()
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(parse_metrics(&body))
    }
}

async fn deadline<T, F>(
    member: &str,
    op: &'static str,
    timeout: Duration,
    fut: F,
) -> Result<T, EtcdError>
where
    F: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EtcdError::Request {
            member: member.to_string(),
            op,
            message: grpc_message(&e),
        }),
        Err(_) => Err(EtcdError::Timeout {
            member: member.to_string(),
            op,
            after: timeout,
        }),
    }
}

/// The server's own message when there is one ("etcdserver: request timed out").
fn grpc_message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

/// The leader a majority of `statuses` follow, with the highest applied term among them.
pub fn majority_leader_of(
    statuses: &[(String, Result<MemberStatus, EtcdError>)],
    quorum: usize,
) -> Option<(String, u64)> {
    let mut votes: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for s in statuses.iter().filter_map(|(_, s)| s.as_ref().ok()) {
        if let Some(leader) = &s.leader {
            let e = votes.entry(leader.clone()).or_default();
            e.0 += 1;
            e.1 = e.1.max(s.applied_term);
        }
    }
    votes
        .into_iter()
        .find(|(_, (n, _))| *n >= quorum)
        .map(|(leader, (_, term))| (leader, term))
}

/// One line per member, for evidence and error messages.
pub fn describe(statuses: &[(String, Result<MemberStatus, EtcdError>)]) -> String {
    statuses
        .iter()
        .map(|(name, s)| match s {
            Ok(s) => format!(
                "{name}: leader={} applied_term={}",
                s.leader
                    .as_deref()
                    .unwrap_or(if s.leader_id == 0 { "none" } else { "?" }),
                s.applied_term
            ),
            Err(e) => format!("{name}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Extracts the counters rift uses from etcd's Prometheus text.
pub fn parse_metrics(text: &str) -> MemberMetrics {
    let mut m = MemberMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        match name.trim() {
            "etcd_server_leader_changes_seen_total" => m.leader_changes_seen = value as u64,
            "etcd_server_has_leader" => m.has_leader = value >= 1.0,
            "etcd_server_is_leader" => m.is_leader = value >= 1.0,
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(
        name: &str,
        leader: Option<&str>,
        term: u64,
    ) -> (String, Result<MemberStatus, EtcdError>) {
        (
            name.into(),
            Ok(MemberStatus {
                name: name.into(),
                member_id: 1,
                leader_id: if leader.is_some() { 7 } else { 0 },
                leader: leader.map(String::from),
                applied_term: term,
                raft_index: 1,
            }),
        )
    }

    #[test]
    fn majority_leader_needs_quorum() {
        let down = ("c".to_string(), Err(EtcdError::UnknownMember("c".into())));
        let agreed = vec![st("a", Some("a"), 3), st("b", Some("a"), 4), down.clone()];
        assert_eq!(majority_leader_of(&agreed, 2), Some(("a".into(), 4)));
        let split = vec![st("a", Some("a"), 3), st("b", None, 3), down];
        assert_eq!(majority_leader_of(&split, 2), None);
        assert!(describe(&split).contains("b: leader=none"));
    }

    #[test]
    fn parses_etcd_metrics_text() {
        let text = "# HELP etcd_server_has_leader x\n# TYPE etcd_server_has_leader gauge\n\
                    etcd_server_has_leader 1\netcd_server_is_leader 0\n\
                    etcd_server_leader_changes_seen_total 3\n";
        let m = parse_metrics(text);
        assert_eq!(
            m,
            MemberMetrics {
                leader_changes_seen: 3,
                has_leader: true,
                is_leader: false
            }
        );
        assert_eq!(parse_metrics("garbage"), MemberMetrics::default());
    }
}
