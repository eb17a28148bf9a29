//! Snapshots for `GET /status`: cut links per endpoint, open connections with their
//! live byte counts, registered sources, and the socket addresses of open and recently
//! closed connections (so a packet capture can map TCP 4-tuples to links).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ActiveFault, Control};
use crate::fault::Fault;
use crate::relay::{ByteCounters, Link};

/// A directed link that is not passing, per endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkState {
    pub from: String,
    pub to: String,
    /// 0 pass, 1 hold, 2 reset, 3 blackhole, 4 degraded (strongest over endpoints).
    pub state: u8,
    pub faults: BTreeMap<String, Fault>,
}

/// Live traffic on one (src, dst, endpoint), summed over its open connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionGroup {
    pub src: String,
    pub dst: String,
    pub endpoint: String,
    pub active: u64,
    pub bytes_forward: u64,
    pub bytes_reverse: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceInfo {
    pub node: String,
    pub ips: Vec<IpAddr>,
    pub pids: Vec<u32>,
}

/// The sockets of one relayed connection: which link it serves and the addresses of
/// both of its TCP connections, the member-to-rift one and the rift-to-member one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionSockets {
    pub src: String,
    pub dst: String,
    pub endpoint: String,
    /// The dialing side's address, as rift's listener saw it.
    pub client: SocketAddr,
    /// rift's listener address.
    pub listener: SocketAddr,
    /// rift's end of the upstream connection; absent until dialed (a held link).
    pub upstream_local: Option<SocketAddr>,
    /// The member's real address.
    pub upstream_peer: Option<SocketAddr>,
    pub opened_unix_ms: u64,
    pub closed_unix_ms: Option<u64>,
}

/// Closed connections kept for [`Status::sockets`], oldest dropped first.
const CLOSED_KEPT: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: u64,
    pub nodes: Vec<String>,
    pub endpoints: Vec<String>,
    pub faults: Vec<ActiveFault>,
    pub links: Vec<LinkState>,
    pub connections: Vec<ConnectionGroup>,
    pub sources: Vec<SourceInfo>,
    /// Open connections and the last closed ones, oldest first.
    #[serde(default)]
    pub sockets: Vec<ConnectionSockets>,
    /// Agents, versions and switch skew, when this is a `rift controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterStatus>,
}

/// Open connections, so status can report live byte counts and addresses.
#[derive(Default)]
pub struct ConnectionTable {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, (Link, Arc<ByteCounters>)>>,
    addresses: Mutex<Addresses>,
}

#[derive(Default)]
struct Addresses {
    open: HashMap<u64, (Link, Sockets)>,
    closed: VecDeque<(Link, Sockets)>,
}

#[derive(Clone, Copy)]
struct Sockets {
    client: SocketAddr,
    listener: SocketAddr,
    upstream: Option<(SocketAddr, SocketAddr)>,
    opened_unix_ms: u64,
    closed_unix_ms: Option<u64>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ConnectionTable {
    /// Registers an accepted connection from `client` on rift's `listener`.
    pub fn open(
        self: &Arc<Self>,
        link: Link,
        counters: Arc<ByteCounters>,
        client: SocketAddr,
        listener: SocketAddr,
    ) -> ConnectionEntry {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        super::sync::lock(&self.open).insert(id, (link, counters));
        let sockets = Sockets {
            client,
            listener,
            upstream: None,
            opened_unix_ms: unix_ms(),
            closed_unix_ms: None,
        };
        super::sync::lock(&self.addresses)
            .open
            .insert(id, (link, sockets));
        ConnectionEntry {
            id,
            table: self.clone(),
        }
    }

    pub fn len(&self) -> usize {
        super::sync::lock(&self.open).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes its connection from the table when dropped.
pub struct ConnectionEntry {
    pub id: u64,
    table: Arc<ConnectionTable>,
}

impl ConnectionEntry {
    /// Records the upstream connection's addresses once it is dialed.
    pub fn set_upstream(&self, local: SocketAddr, peer: SocketAddr) {
        let mut addresses = super::sync::lock(&self.table.addresses);
        if let Some((_, sockets)) = addresses.open.get_mut(&self.id) {
            sockets.upstream = Some((local, peer));
        }
    }
}

impl Drop for ConnectionEntry {
    fn drop(&mut self) {
        super::sync::lock(&self.table.open).remove(&self.id);
        let mut addresses = super::sync::lock(&self.table.addresses);
        if let Some((link, mut sockets)) = addresses.open.remove(&self.id) {
            sockets.closed_unix_ms = Some(unix_ms());
            addresses.closed.push_back((link, sockets));
            if addresses.closed.len() > CLOSED_KEPT {
                addresses.closed.pop_front();
            }
        }
    }
}

impl Control {
    pub fn status(&self) -> Status {
        let matrix = self.matrix();
        let ids = &self.inner.ids;
        let mut links = Vec::new();
        for src in 0..ids.len() {
            for dst in 0..ids.len() {
                let faults = matrix.link_faults(src, dst);
                if faults.is_empty() {
                    continue;
                }
                links.push(LinkState {
                    from: ids.name(src).to_string(),
                    to: ids.name(dst).to_string(),
                    state: matrix.link_state(src, dst),
                    faults: faults
                        .into_iter()
                        .map(|(ep, f)| (ids.endpoint_names()[ep].clone(), f.clone()))
                        .collect(),
                });
            }
        }
        let (ips, pids) = self.inner.sources.snapshot();
        let sources = self
            .inner
            .topology
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| SourceInfo {
                node: n.name.clone(),
                ips: ips
                    .iter()
                    .filter(|(_, node)| *node == i)
                    .map(|(ip, _)| *ip)
                    .collect(),
                pids: pids
                    .iter()
                    .filter(|(_, node)| *node == i)
                    .map(|(pid, _)| *pid)
                    .collect(),
            })
            .collect();
        let sockets = self.sockets();
        let state = super::sync::lock(&self.inner.state);
        Status {
            version: state.version,
            nodes: self.inner.topology.node_names(),
            endpoints: ids.endpoint_names().to_vec(),
            faults: state.active.iter().map(|(f, _)| f.clone()).collect(),
            links,
            connections: self.traffic(),
            sources,
            sockets,
            cluster: None,
        }
    }

    /// Live traffic per (src, dst, endpoint), summed over its open connections: the
    /// bytes rift delivered in each direction (held and discarded bytes never count).
    pub fn traffic(&self) -> Vec<ConnectionGroup> {
        let ids = &self.inner.ids;
        let mut groups: BTreeMap<(usize, usize, usize), ConnectionGroup> = BTreeMap::new();
        for (link, counters) in super::sync::lock(&self.inner.connections.open).values() {
            let group = groups
                .entry((link.src, link.dst, link.endpoint))
                .or_insert_with(|| ConnectionGroup {
                    src: ids.name(link.src).to_string(),
                    dst: ids.name(link.dst).to_string(),
                    endpoint: ids
                        .endpoint_names()
                        .get(link.endpoint)
                        .cloned()
                        .unwrap_or_default(),
                    active: 0,
                    bytes_forward: 0,
                    bytes_reverse: 0,
                });
            group.active += 1;
            group.bytes_forward += counters.forward.load(Ordering::Relaxed);
            group.bytes_reverse += counters.reverse.load(Ordering::Relaxed);
        }
        groups.into_values().collect()
    }

    /// Addresses of open and recently closed connections, oldest first.
    fn sockets(&self) -> Vec<ConnectionSockets> {
        let ids = &self.inner.ids;
        let addresses = super::sync::lock(&self.inner.connections.addresses);
        let mut open: Vec<&(Link, Sockets)> = addresses.open.values().collect();
        open.sort_by_key(|(_, s)| s.opened_unix_ms);
        addresses
            .closed
            .iter()
            .chain(open)
            .map(|(link, s)| ConnectionSockets {
                src: ids.name(link.src).to_string(),
                dst: ids.name(link.dst).to_string(),
                endpoint: ids
                    .endpoint_names()
                    .get(link.endpoint)
                    .cloned()
                    .unwrap_or_default(),
                client: s.client,
                listener: s.listener,
                upstream_local: s.upstream.map(|(local, _)| local),
                upstream_peer: s.upstream.map(|(_, peer)| peer),
                opened_unix_ms: s.opened_unix_ms,
                closed_unix_ms: s.closed_unix_ms,
            })
            .collect()
    }
}
