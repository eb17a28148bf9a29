//! Snapshots for `GET /status`: cut links per endpoint, open connections with their
//! live byte counts, and registered sources.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: u64,
    pub nodes: Vec<String>,
    pub endpoints: Vec<String>,
    pub faults: Vec<ActiveFault>,
    pub links: Vec<LinkState>,
    pub connections: Vec<ConnectionGroup>,
    pub sources: Vec<SourceInfo>,
}

/// Open connections, so status can report live byte counts.
#[derive(Default)]
pub struct ConnectionTable {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, (Link, Arc<ByteCounters>)>>,
}

impl ConnectionTable {
    pub fn open(self: &Arc<Self>, link: Link, counters: Arc<ByteCounters>) -> ConnectionEntry {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .expect("connection table lock")
            .insert(id, (link, counters));
        ConnectionEntry {
            id,
            table: self.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.open.lock().expect("connection table lock").len()
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

impl Drop for ConnectionEntry {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .expect("connection table lock")
            .remove(&self.id);
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
        let mut groups: BTreeMap<(usize, usize, usize), ConnectionGroup> = BTreeMap::new();
        for (link, counters) in self
            .inner
            .connections
            .open
            .lock()
            .expect("connection table lock")
            .values()
        {
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
        let state = self.inner.state.lock().expect("control lock");
        Status {
            version: state.version,
            nodes: self.inner.topology.node_names(),
            endpoints: ids.endpoint_names().to_vec(),
            faults: state.active.iter().map(|(f, _)| f.clone()).collect(),
            links,
            connections: groups.into_values().collect(),
            sources,
        }
    }
}
