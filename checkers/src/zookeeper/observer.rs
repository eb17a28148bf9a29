//! One poll of one ZooKeeper server: the `srvr` four-letter word on its real client
//! port (never through rift, so a cut never blinds the poller). It answers the server's
//! mode (`leader`, `follower`, `observer`, `read-only`) and the last zxid it processed,
//! whose high 32 bits are the epoch of the leader that proposed it. A server without a
//! quorum (electing, or cut off) answers "This ZooKeeper instance is not currently
//! serving requests": recorded as mode `looking`, with no zxid.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ZkError {
    #[error("{member}: srvr: {message}")]
    Poll { member: String, message: String },
    #[error("{member}: srvr answered no Mode line: {answer:?}")]
    Unreadable { member: String, answer: String },
}

/// What `srvr` said, as recorded in a `zookeeper-srvr` observation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerStatus {
    /// The server polled.
    pub name: String,
    /// `leader`, `follower`, `observer`, `read-only`, `standalone` or `looking`.
    pub mode: String,
    /// This server's name when it leads, else absent: `srvr` names no leader, and
    /// the history view draws a lane's leader from this field.
    pub leader: Option<String>,
    /// The last zxid the server processed (absent while looking).
    pub zxid: Option<u64>,
    /// The epoch of that zxid (its high 32 bits).
    pub epoch: Option<u64>,
    /// Znodes in the server's data tree.
    pub node_count: Option<u64>,
}

/// The answer of a server that has no quorum.
const NOT_SERVING: &str = "not currently serving requests";

/// Reads `srvr`'s answer into a status.
pub fn parse_srvr(name: &str, text: &str) -> Result<ServerStatus, ZkError> {
    let mut status = ServerStatus {
        name: name.to_string(),
        mode: String::new(),
        leader: None,
        zxid: None,
        epoch: None,
        node_count: None,
    };
    if text.contains(NOT_SERVING) {
        status.mode = "looking".into();
        return Ok(status);
    }
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Mode" => status.mode = v.to_string(),
            "Zxid" => {
                status.zxid = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
            }
            "Node count" => status.node_count = v.parse().ok(),
            _ => {}
        }
    }
    if status.mode.is_empty() {
        return Err(ZkError::Unreadable {
            member: name.to_string(),
            answer: text.chars().take(200).collect(),
        });
    }
    status.epoch = status.zxid.map(|z| z >> 32);
    if status.mode == "leader" {
        status.leader = Some(name.to_string());
    }
    Ok(status)
}

/// Sends `srvr` to `addr` and parses the answer, all within `deadline`.
pub async fn srvr(
    name: &str,
    addr: SocketAddr,
    deadline: Duration,
) -> Result<ServerStatus, ZkError> {
    let poll = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"srvr").await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    };
    let text = match tokio::time::timeout(deadline, poll).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return Err(ZkError::Poll {
                member: name.to_string(),
                message: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ZkError::Poll {
                member: name.to_string(),
                message: format!("no answer within {deadline:?}"),
            });
        }
    };
    parse_srvr(name, &text)
}

/// The leader a quorum follows: of the servers in mode `leader`, the one at the highest
/// epoch (an isolated old leader keeps saying `leader` until it gives up), provided
/// that it and the servers in mode `follower` make a majority of all servers.
/// Followers' epochs are not compared: a follower's zxid moves to the new epoch only
/// with the first transaction the new leader commits.
pub fn quorum_leader(all: &[(String, Result<ServerStatus, ZkError>)]) -> Option<String> {
    let answered: Vec<&ServerStatus> = all.iter().filter_map(|(_, s)| s.as_ref().ok()).collect();
    let leader = answered
        .iter()
        .filter(|s| s.mode == "leader")
        .max_by_key(|s| s.epoch)?;
    let followers = answered.iter().filter(|s| s.mode == "follower").count();
    (followers + 1 > all.len() / 2).then(|| leader.name.clone())
}

/// One line for progress output: each server's mode.
pub fn describe(all: &[(String, Result<ServerStatus, ZkError>)]) -> String {
    all.iter()
        .map(|(n, s)| match s {
            Ok(s) => match s.epoch {
                Some(e) => format!("{n}={} (epoch {e})", s.mode),
                None => format!("{n}={}", s.mode),
            },
            Err(_) => format!("{n}=(no answer)"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls every server at once.
pub async fn srvr_all(
    servers: &[(String, SocketAddr)],
    deadline: Duration,
) -> Vec<(String, Result<ServerStatus, ZkError>)> {
    let polls = servers
        .iter()
        .map(|(n, a)| async move { (n.clone(), srvr(n, *a, deadline).await) });
    futures::future::join_all(polls).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLLOWER: &str = "Zookeeper version: 3.9.5-abc, built on 2025-01-01 00:00 UTC\n\
        Latency min/avg/max: 0/0.1/3\nReceived: 12\nSent: 11\nConnections: 1\n\
        Outstanding: 0\nZxid: 0x300000007\nMode: follower\nNode count: 9\n";

    #[test]
    fn srvr_answers_are_read() {
        let s = parse_srvr("zk2", FOLLOWER).unwrap();
        assert_eq!(s.mode, "follower");
        assert_eq!(s.zxid, Some(0x3_0000_0007));
        assert_eq!(s.epoch, Some(3));
        assert_eq!(s.node_count, Some(9));
        assert_eq!(s.leader, None);
        let l = parse_srvr("zk1", &FOLLOWER.replace("follower", "leader")).unwrap();
        assert_eq!(l.leader.as_deref(), Some("zk1"));
        let looking = parse_srvr(
            "zk3",
            "This ZooKeeper instance is not currently serving requests\n",
        )
        .unwrap();
        assert_eq!((looking.mode.as_str(), looking.zxid), ("looking", None));
        let e = parse_srvr(
            "zk1",
            "srvr is not executed because it is not in the whitelist.",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("zk1") && e.to_string().contains("whitelist"),
            "{e}"
        );
    }

    #[test]
    fn a_leader_counts_only_with_a_quorum_at_its_epoch() {
        let s = |n: &str, mode: &str, epoch: u64| {
            let text = FOLLOWER
                .replace("follower", mode)
                .replace("0x300000007", &format!("0x{epoch:x}00000001"));
            (n.to_string(), parse_srvr(n, &text))
        };
        let all = vec![
            s("zk1", "leader", 3),
            s("zk2", "follower", 3),
            s("zk3", "follower", 2),
        ];
        assert_eq!(quorum_leader(&all).as_deref(), Some("zk1"));
        // An old leader that has not stepped down yet, alone at its epoch.
        let all = vec![
            s("zk1", "leader", 3),
            s("zk2", "follower", 4),
            s("zk3", "leader", 4),
        ];
        assert_eq!(quorum_leader(&all).as_deref(), Some("zk3"));
        let all = vec![
            s("zk1", "leader", 3),
            s("zk2", "looking", 3),
            s("zk3", "looking", 3),
        ];
        assert_eq!(quorum_leader(&all), None);
        assert!(describe(&all).contains("zk2=looking"));
    }
}
