//! Who is dialing: maps an accepted connection to the node that opened it.
//!
//! Compose containers and real hosts are told apart by source IP. In a local lab every
//! member dials from 127.0.0.1, so rift asks the kernel which socket has the peer's
//! 4-tuple (sock_diag) and which registered process holds that socket. Anything else
//! is the external `client`. Pods get a new IP when they restart, so a node can also be
//! named by DNS names (`source_hosts`), resolved before listeners accept and again every
//! [`RESOLVE_EVERY`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use crate::control::sync::{read, write};
use crate::matrix::Identities;
use crate::sys;

/// Registered sources: (ip, node index) pairs and (pid, node index) pairs.
pub type SourceSnapshot = (Vec<(IpAddr, usize)>, Vec<(u32, usize)>);

/// Source IPs and PIDs of each node; PIDs can be registered at runtime because a
/// local cluster's members start after rift.
#[derive(Debug, Default)]
pub struct SourceRegistry {
    by_ip: RwLock<HashMap<IpAddr, usize>>,
    by_pid: RwLock<HashMap<u32, usize>>,
    /// Addresses of `source_hosts`, replaced whole by each resolution.
    by_host: RwLock<HashMap<IpAddr, usize>>,
}

/// How often `source_hosts` are resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(2);
/// Deadline of one host's lookup, so one slow name does not hold up the others.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// The last addresses each `(node index, host)` resolved to. A failed lookup keeps the
/// previous answer: a pod being rescheduled briefly has no DNS record, and dropping its
/// old address would turn its open connections' identity into `client` mid-fault.
#[derive(Debug, Default)]
pub struct HostAddresses {
    last: HashMap<(usize, String), Vec<IpAddr>>,
}

impl HostAddresses {
    /// Resolves every node's `source_hosts` and installs the addresses in `registry`.
    /// Returns the hosts that did not resolve, with why.
    pub async fn refresh(
        &mut self,
        topology: &crate::topology::Topology,
        registry: &SourceRegistry,
    ) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for (index, node) in topology.nodes.iter().enumerate() {
            for host in &node.source_hosts {
                let lookup = tokio::net::lookup_host((host.as_str(), 0));
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(addresses)) => {
                        let mut ips: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
                        ips.sort();
                        ips.dedup();
                        self.last.insert((index, host.clone()), ips);
                    }
                    Ok(Err(error)) => failed.push((host.clone(), error.to_string())),
                    Err(_) => failed.push((host.clone(), "lookup timed out".to_string())),
                }
            }
        }
        let mut map = HashMap::new();
        for ((index, host), ips) in &self.last {
            for ip in ips {
                if let Some(other) = map.insert(*ip, *index)
                    && other != *index
                {
                    tracing::warn!(%ip, %host, "address resolves for two nodes; the last one wins");
                }
            }
        }
        *write(&registry.by_host) = map;
        failed
    }
}

impl SourceRegistry {
    pub fn register_ip(&self, ip: IpAddr, node: usize) {
        write(&self.by_ip).insert(ip, node);
    }

    pub fn register_pid(&self, pid: u32, node: usize) {
        write(&self.by_pid).insert(pid, node);
    }

    /// Addresses of `source_hosts` from the last resolution, (ip, node index).
    pub fn resolved(&self) -> Vec<(IpAddr, usize)> {
        let mut out: Vec<_> = read(&self.by_host).iter().map(|(k, v)| (*k, *v)).collect();
        out.sort();
        out
    }

    /// Registered (ip, node index) and (pid, node index) pairs, for status output.
    pub fn snapshot(&self) -> SourceSnapshot {
        let ips = read(&self.by_ip).iter().map(|(k, v)| (*k, *v)).collect();
        let pids = read(&self.by_pid).iter().map(|(k, v)| (*k, *v)).collect();
        (ips, pids)
    }

    /// Identity index of the connection accepted with `peer` (the dialer's address)
    /// on `local` (our listening socket's address as the dialer sees it).
    pub fn identify(&self, ids: &Identities, peer: SocketAddr, local: SocketAddr) -> usize {
        match self.identify_by_address(ids, peer) {
            Some(index) => index,
            None => self.identify_by_process(ids, peer, local),
        }
    }

    /// The identity the address alone decides (a registered IP or host, or a non-local peer or
    /// no registered PIDs: `client`); `None` when the owning process must be looked up
    /// with [`SourceRegistry::identify_by_process`], which reads `/proc` and may take
    /// milliseconds with thousands of descriptors, so callers on the data plane run it
    /// on a blocking thread.
    pub fn identify_by_address(&self, ids: &Identities, peer: SocketAddr) -> Option<usize> {
        if let Some(node) = read(&self.by_ip).get(&peer.ip()) {
            return Some(*node);
        }
        if let Some(node) = read(&self.by_host).get(&peer.ip()) {
            return Some(*node);
        }
        if read(&self.by_pid).is_empty() || !is_local(peer.ip()) {
            return Some(ids.client());
        }
        None
    }

    /// Which registered process holds the dialing socket (sock_diag, then `/proc`).
    pub fn identify_by_process(
        &self,
        ids: &Identities,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> usize {
        let pids: Vec<(u32, usize)> = read(&self.by_pid).iter().map(|(k, v)| (*k, *v)).collect();
        if pids.is_empty() {
            return ids.client();
        }
        match sys::tcp_socket_inode(peer, local) {
            Ok(Some(inode)) => owner_of_inode(inode, &pids).unwrap_or_else(|| ids.client()),
            Ok(None) => ids.client(),
            Err(error) => {
                tracing::warn!(%peer, %error, "sock_diag lookup failed; treating source as client");
                ids.client()
            }
        }
    }
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// Which registered process holds a descriptor for socket `inode`.
fn owner_of_inode(inode: u32, pids: &[(u32, usize)]) -> Option<usize> {
    let target = format!("socket:[{inode}]");
    pids.iter().find_map(|(pid, node)| {
        let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        dir.flatten()
            .any(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|link| link.as_os_str() == target.as_str())
            })
            .then_some(*node)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;
    use std::net::{TcpListener, TcpStream};

    fn ids() -> Identities {
        let t = Topology::parse(
            r#"
[[node]]
name = "a"
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
[[node]]
name = "b"
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
"#,
            "test",
        )
        .unwrap();
        Identities::new(&t)
    }

    #[test]
    fn identifies_by_source_ip() {
        let reg = SourceRegistry::default();
        let ids = ids();
        reg.register_ip("127.0.0.2".parse().unwrap(), 1);
        let local = "127.0.0.1:80".parse().unwrap();
        assert_eq!(
            reg.identify(&ids, "127.0.0.2:5555".parse().unwrap(), local),
            1
        );
        assert_eq!(
            reg.identify(&ids, "127.0.0.3:5555".parse().unwrap(), local),
            ids.client()
        );
    }

    #[test]
    fn only_a_local_peer_with_registered_pids_needs_a_process_lookup() {
        let reg = SourceRegistry::default();
        let ids = ids();
        let local_peer = "127.0.0.1:5555".parse().unwrap();
        // No PIDs registered: the address decides.
        assert_eq!(
            reg.identify_by_address(&ids, local_peer),
            Some(ids.client())
        );
        reg.register_pid(1, 1);
        assert_eq!(reg.identify_by_address(&ids, local_peer), None);
        // A remote peer cannot be one of our processes.
        assert_eq!(
            reg.identify_by_address(&ids, "10.1.2.3:5555".parse().unwrap()),
            Some(ids.client())
        );
        reg.register_ip("127.0.0.1".parse().unwrap(), 0);
        assert_eq!(reg.identify_by_address(&ids, local_peer), Some(0));
    }

    #[test]
    fn identifies_by_owning_process() {
        let ids = ids();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _dialer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();

        let reg = SourceRegistry::default();
        // Another process (pid 1) is registered: this socket is ours, so it is a client.
        reg.register_pid(1, 1);
        assert_eq!(reg.identify(&ids, peer, local), ids.client());
        reg.register_pid(std::process::id(), 0);
        assert_eq!(reg.identify(&ids, peer, local), 0);
    }

    fn with_hosts(hosts: &[(&str, &str)]) -> Topology {
        let mut text = String::new();
        for (node, host) in hosts {
            text.push_str(&format!(
                "[[node]]\nname = \"{node}\"\nsource_hosts = [\"{host}\"]\n\
                 [[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.0.1:0\"\n\
                 upstream = \"127.0.0.1:9\"\n"
            ));
        }
        Topology::parse(&text, "test").unwrap()
    }

    #[tokio::test]
    async fn identifies_by_resolved_host_name() {
        let topology = with_hosts(&[("a", "localhost"), ("b", "no-such-host.invalid")]);
        let ids = Identities::new(&topology);
        let reg = SourceRegistry::default();
        let local = "127.0.0.1:80".parse().unwrap();
        let peer = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(reg.identify(&ids, peer, local), ids.client());
        let mut hosts = HostAddresses::default();
        let failed = hosts.refresh(&topology, &reg).await;
        assert_eq!(reg.identify(&ids, peer, local), 0, "{:?}", reg.resolved());
        // The .invalid name never resolves, and says so instead of matching nothing quietly.
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, "no-such-host.invalid");
        assert!(reg.resolved().iter().all(|(_, node)| *node == 0));
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_addresses_and_a_new_answer_replaces_them() {
        let reg = SourceRegistry::default();
        let mut hosts = HostAddresses::default();
        let good = with_hosts(&[("a", "localhost")]);
        hosts.refresh(&good, &reg).await;
        assert!(reg.resolved().contains(&("127.0.0.1".parse().unwrap(), 0)));
        // The same node now names a host that does not resolve (as a pod being
        // rescheduled): its last addresses stay in force.
        hosts
            .last
            .insert((0, "localhost".into()), vec!["10.1.2.3".parse().unwrap()]);
        let failing = with_hosts(&[("a", "gone.invalid")]);
        assert_eq!(hosts.refresh(&failing, &reg).await.len(), 1);
        assert!(reg.resolved().contains(&("10.1.2.3".parse().unwrap(), 0)));
        // A successful lookup replaces the previous answer for that host.
        hosts.refresh(&good, &reg).await;
        let resolved = reg.resolved();
        assert!(
            !resolved.contains(&("10.1.2.3".parse().unwrap(), 0)),
            "{resolved:?}"
        );
        assert!(resolved.contains(&("127.0.0.1".parse().unwrap(), 0)));
    }
}
