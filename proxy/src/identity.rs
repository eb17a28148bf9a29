//! Who is dialing: maps an accepted connection to the node that opened it.
//!
//! Compose containers and real hosts are told apart by source IP. In a local lab every
//! member dials from 127.0.0.1, so rift asks the kernel which socket has the peer's
//! 4-tuple (sock_diag) and which registered process holds that socket. Anything else
//! is the external `client`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

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
}

impl SourceRegistry {
    pub fn register_ip(&self, ip: IpAddr, node: usize) {
        write(&self.by_ip).insert(ip, node);
    }

    pub fn register_pid(&self, pid: u32, node: usize) {
        write(&self.by_pid).insert(pid, node);
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
        if let Some(node) = read(&self.by_ip).get(&peer.ip()) {
            return *node;
        }
        let pids: Vec<(u32, usize)> = read(&self.by_pid).iter().map(|(k, v)| (*k, *v)).collect();
        if pids.is_empty() || !is_local(peer.ip()) {
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
}
