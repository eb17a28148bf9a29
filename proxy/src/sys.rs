//! The only module with `unsafe`: an exact NETLINK_SOCK_DIAG lookup that finds the
//! inode of the TCP socket with a given 4-tuple (about 2 µs, no /proc/net scan), and
//! the SIGPIPE disposition of short-lived commands.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_NOCOOKIE: u32 = !0;

#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

#[repr(C)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

#[repr(C)]
struct Request {
    header: libc::nlmsghdr,
    body: InetDiagReqV2,
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

/// Inode of the TCP socket whose local address is `local` and remote address is
/// `remote`, or `None` if no such socket exists (e.g. it already closed).
pub fn tcp_socket_inode(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u32>> {
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the fd is owned immediately.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        body: InetDiagReqV2 {
            family: family as u8,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: !0,
            id: InetDiagSockId {
                sport: local.port().to_be_bytes(),
                dport: remote.port().to_be_bytes(),
                src: addr_bytes(local.ip()),
                dst: addr_bytes(remote.ip()),
                interface: 0,
                cookie: [INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE],
            },
        },
    };
    // SAFETY: the pointer and length describe `request`, a live repr(C) value.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&request as *const Request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 4096];
    // SAFETY: the pointer and length describe `reply`, a live buffer we own.
    let received = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&reply[..received as usize])
}

/// Restores the default SIGPIPE action so that `rift status | head` ends quietly
/// instead of failing on a closed pipe. Only for commands that own no sockets: a
/// proxy must get EPIPE from a dead peer, not die of it.
pub fn restore_default_sigpipe() {
    // SAFETY: signal(2) with a valid signal number and the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn parse_reply(reply: &[u8]) -> io::Result<Option<u32>> {
    let header_len = size_of::<libc::nlmsghdr>();
    let kind = reply
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short netlink reply"))?;
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = read_u32(reply, header_len)
            .map(|e| -(e as i32))
            .unwrap_or(0);
        return if errno == libc::ENOENT || errno == 0 {
            Ok(None)
        } else {
            Err(io::Error::from_raw_os_error(errno))
        };
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink message type {kind}"),
        ));
    }
    // inet_diag_msg: 4 bytes of family/state/timer/retrans, the 48-byte socket id,
    // then expires, rqueue, wqueue, uid, inode.
    let inode_at = header_len + 4 + size_of::<InetDiagSockId>() + 16;
    read_u32(reply, inode_at)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short inet_diag_msg"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn finds_the_inode_of_our_own_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let inode = tcp_socket_inode(client.local_addr().unwrap(), client.peer_addr().unwrap())
            .unwrap()
            .expect("socket exists");
        let fd_path = format!("/proc/self/fd/{}", client.as_raw_fd());
        let expected = std::fs::metadata(&fd_path).unwrap().ino();
        assert_eq!(u64::from(inode), expected);
        let missing = tcp_socket_inode(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(missing, None);
    }
}
