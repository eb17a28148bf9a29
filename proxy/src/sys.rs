//! The only module with `unsafe` in the workspace: an exact NETLINK_SOCK_DIAG lookup
//! that finds the inode of the TCP socket with a given 4-tuple (about 2 µs, no
//! /proc/net scan), the SIGPIPE disposition of short-lived commands, and the few
//! process calls the labs and the bench harness need, each behind a safe function.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

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

/// Sends `signal` to `pid`; signal 0 only checks that the process exists and may be
/// signalled.
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the child `cmd` spawns the leader of a new session, so a lab outlives the
/// terminal and the process group of the command that started it.
pub fn spawn_in_new_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child `cmd` spawns receive SIGKILL when the spawning thread's process dies.
pub fn kill_child_when_parent_dies(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit and returns it; children inherit
/// it, which workloads holding thousands of connections need on every side.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Sets the calling thread's timer slack: the default 50 µs makes every short sleep
/// overshoot by that much, which a fixed-rate sender cannot afford.
pub fn set_thread_timer_slack(nanos: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this thread.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

    #[test]
    fn signals_reach_live_processes_and_missing_ones_are_errors() {
        send_signal(std::process::id(), 0).unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        send_signal(child.id(), libc::SIGKILL).unwrap();
        child.wait().unwrap();
        let err = send_signal(child.id(), 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn a_detached_child_leads_its_own_session() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        spawn_in_new_session(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        // Fields after the parenthesised name: state, ppid, pgrp, session.
        let session: u32 = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(session, child.id());
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        let limit = raise_nofile_limit().unwrap();
        let soft: u64 = std::fs::read_to_string("/proc/self/limits")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(soft, limit);
        set_thread_timer_slack(1_000).unwrap();
    }
}
