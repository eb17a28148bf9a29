//! ZooKeeper's side of the register workload ([`crate::register`]), on the
//! `zookeeper-client` crate (async, tokio). Each workload client has its own session
//! with exactly one server (its member), so a client on a cut member stays there.
//!
//! - register `k` is the znode `/<prefix><run>/k<k>`; its data is the decimal value;
//! - write: `setData` (any version), `create` when the znode is absent (and its parent
//!   when that is absent too), `setData` again when a concurrent create won;
//! - linearizable read: `sync` then `getData` on the same session (ZooKeeper answers a
//!   session's requests in order, so the read sees at least what the leader had
//!   committed when the sync passed it); serializable read: `getData` alone, from the
//!   member's local copy;
//! - cas: `getData` for the value and its version, then `setData` with that version
//!   (`create` for an expected absent key). A different value, `BadVersion` or
//!   `NodeExists` mean the comparison failed and nothing was applied.
//!
//! What an error proves ([`classify`]): a request that was never sent (no session could
//! be established with the member) and ZooKeeper's own refusals (`BadVersion`,
//! `NodeExists`, `NoAuth`, bad arguments) are `fail`; `ConnectionLoss`,
//! `SessionExpired`, `OperationTimeout` and the client's deadline are `info`: the request
//! may have reached the leader and may still commit.

use std::net::SocketAddr;
use std::time::Duration;

use rift_history::Consistency;
use zookeeper_client as zk;

use crate::register::{RegisterClient, RegisterStore, StoreError};
use crate::scenario::BoxFuture;

/// Session timeout asked of the servers (they bound it to 2–20 ticks).
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// ZooKeeper as a register store: clients connect to their member's real client port.
pub struct ZkRegister {
    pub servers: Vec<(String, SocketAddr)>,
}

impl RegisterStore for ZkRegister {
    fn members(&self) -> Vec<String> {
        self.servers.iter().map(|(n, _)| n.clone()).collect()
    }

    fn client(&self, member: &str) -> Box<dyn RegisterClient> {
        let addr = self
            .servers
            .iter()
            .find(|(n, _)| n == member)
            .map(|(_, a)| *a);
        Box::new(ZkClient {
            member: member.to_string(),
            addr,
            session: None,
        })
    }

    fn key(&self, prefix: &str, run: &str, k: usize) -> String {
        format!("/{}{run}/k{k}", prefix.trim_start_matches('/'))
    }
}

/// One session with one server, (re)established on demand.
pub struct ZkClient {
    member: String,
    addr: Option<SocketAddr>,
    session: Option<zk::Client>,
}

/// How a ZooKeeper error bears on a write (see the module's docs).
pub fn classify(e: &zk::Error) -> StoreError {
    use zk::Error::*;
    match e {
        BadVersion
        | NodeExists
        | NoAuth
        | BadArguments(_)
        | InvalidAcl
        | Unimplemented
        | NoChildrenForEphemerals
        | QuotaExceeded
        | Throttled => StoreError::refused(e.to_string()),
        _ => StoreError::indeterminate(e.to_string()),
    }
}

impl ZkClient {
    fn err(&self, what: &str, e: &zk::Error) -> StoreError {
        let mut s = classify(e);
        s.message = format!("{}: {what}: {}", self.member, s.message);
        s
    }

    /// The live session, established first when there is none or it is not connected.
    /// A disconnected session is dropped rather than waited for: the crate reconnects
    /// with a backoff that doubles up to seconds, so a client of a server that was
    /// electing would come back seconds after the server does, and the run would
    /// measure the backoff instead of ZooKeeper. A failure here means no request was
    /// sent: a refusal.
    async fn session(&mut self, timeout: Duration) -> Result<zk::Client, StoreError> {
        if let Some(c) = &self.session
            && c.state() == zk::SessionState::SyncConnected
        {
            return Ok(c.clone());
        }
        self.session = None;
        let Some(addr) = self.addr else {
            return Err(StoreError::refused(format!(
                "{}: not a member of this cluster",
                self.member
            )));
        };
        let cluster = addr.to_string();
        let connect = zk::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(timeout)
            .with_fail_eagerly()
            .connect(&cluster);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(c)) => {
                self.session = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => Err(StoreError::refused(format!(
                "{}: no session ({e}): request not sent",
                self.member
            ))),
            Err(_) => Err(StoreError::refused(format!(
                "{}: no session within {timeout:?}: request not sent",
                self.member
            ))),
        }
    }

    async fn write_inner(
        &mut self,
        c: &zk::Client,
        key: &str,
        value: i64,
    ) -> Result<(), StoreError> {
        let data = value.to_string();
        match c.set_data(key, data.as_bytes(), None).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(self.err("setData", &e)),
        }
        match self.create(c, key, &data).await {
            Ok(()) => Ok(()),
            // Another client created it first: overwrite, as a write does.
            Err(Some(zk::Error::NodeExists)) => c
                .set_data(key, data.as_bytes(), None)
                .await
                .map(|_| ())
                .map_err(|e| self.err("setData", &e)),
            Err(Some(e)) => Err(self.err("create", &e)),
            Err(None) => Err(StoreError::indeterminate(format!(
                "{}: create: parent could not be created",
                self.member
            ))),
        }
    }

    /// Creates `key` with `data`, and its parent first when that is missing. `Err(None)`
    /// when creating the parent failed (the key's create was not sent again).
    async fn create(&self, c: &zk::Client, key: &str, data: &str) -> Result<(), Option<zk::Error>> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match c.create(key, data.as_bytes(), &options).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(Some(e)),
        }
        let parent = key.rsplit_once('/').map_or("/", |(p, _)| p);
        match c.mkdir(parent, &options).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(_) => return Err(None),
        }
        c.create(key, data.as_bytes(), &options)
            .await
            .map(|_| ())
            .map_err(Some)
    }
}

/// Runs `op` within `timeout`; past it the outcome is unknown.
async fn within<T>(
    member: &str,
    timeout: Duration,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, op).await.unwrap_or_else(|_| {
        Err(StoreError::indeterminate(format!(
            "{member}: no answer within {timeout:?}"
        )))
    })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

impl RegisterClient for ZkClient {
    fn read<'a>(
        &'a mut self,
        key: &'a str,
        consistency: Consistency,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let c = self.session(timeout).await?;
            let member = self.member.clone();
            within(&member, timeout, async {
                if consistency == Consistency::Linearizable {
                    // sync on the key's parent: a sync on a missing path fails.
                    match c.sync(key).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(self.err("sync", &e)),
                    }
                }
                match c.get_data(key).await {
                    Ok((data, _)) => Ok(Some(text(&data))),
                    Err(zk::Error::NoNode) => Ok(None),
                    Err(e) => Err(self.err("getData", &e)),
                }
            })
            .await
        })
    }

    fn write<'a>(
        &'a mut self,
        key: &'a str,
        value: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let c = self.session(timeout).await?;
            let member = self.member.clone();
            within(&member, timeout, self.write_inner(&c, key, value)).await
        })
    }

    fn cas<'a>(
        &'a mut self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.session(timeout).await?;
            let member = self.member.clone();
            within(&member, timeout, async {
                let data = new.to_string();
                let Some(expected) = expected else {
                    return match self.create(&c, key, &data).await {
                        Ok(()) => Ok(true),
                        Err(Some(zk::Error::NodeExists)) => Ok(false),
                        Err(Some(e)) => Err(self.err("create", &e)),
                        Err(None) => Err(StoreError::indeterminate(format!(
                            "{}: create: parent could not be created",
                            self.member
                        ))),
                    };
                };
                // The version read here may be stale (a local read); the leader checks
                // it against the latest one, so a stale version is refused.
                let (current, stat) = match c.get_data(key).await {
                    Ok(found) => found,
                    Err(zk::Error::NoNode) => return Ok(false),
                    Err(e) => {
                        // Nothing was written yet: whatever happened, not applied.
                        let mut s = self.err("getData", &e);
                        s.outcome = rift_history::OpType::Fail;
                        return Err(s);
                    }
                };
                if text(&current) != expected.to_string() {
                    return Ok(false);
                }
                match c.set_data(key, data.as_bytes(), Some(stat.version)).await {
                    Ok(_) => Ok(true),
                    Err(zk::Error::BadVersion) | Err(zk::Error::NoNode) => Ok(false),
                    Err(e) => Err(self.err("setData", &e)),
                }
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rift_history::OpType;

    #[test]
    fn refusals_are_fail_and_lost_connections_info() {
        for e in [
            zk::Error::BadVersion,
            zk::Error::NodeExists,
            zk::Error::NoAuth,
        ] {
            assert_eq!(classify(&e).outcome, OpType::Fail, "{e}");
        }
        for e in [
            zk::Error::ConnectionLoss,
            zk::Error::SessionExpired,
            zk::Error::Timeout,
        ] {
            assert_eq!(classify(&e).outcome, OpType::Info, "{e}");
        }
    }

    #[test]
    fn keys_are_znode_paths() {
        let s = ZkRegister { servers: vec![] };
        assert_eq!(s.key("rift/register/", "ab12", 3), "/rift/register/ab12/k3");
        assert_eq!(s.key("/x-", "r", 0), "/x-r/k0");
    }

    #[tokio::test]
    async fn a_member_without_a_server_refuses_every_write_unsent() {
        // Nothing listens on port 9: no session, so nothing was ever sent.
        let s = ZkRegister {
            servers: vec![("zk1".into(), "127.0.0.1:9".parse().unwrap())],
        };
        let mut c = s.client("zk1");
        let e = c
            .write("/k", 1, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.outcome, OpType::Fail, "{e}");
        assert!(
            e.message.contains("zk1") && e.message.contains("not sent"),
            "{e}"
        );
        let e = s
            .client("zk9")
            .cas("/k", None, 1, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.message.contains("not a member"), "{e}");
    }
}
