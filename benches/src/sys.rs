//! Small Linux facts the harness needs: descriptor limits, a process's memory, free ports
//! and a description of the machine for the report.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};

use serde::Serialize;

/// Resident set size of one process, from /proc/PID/status (KiB).
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    field_kib(&status, "VmRSS:").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/status has no VmRSS line"),
        )
    })
}

/// Proportional set size of a process and all its descendants (KiB). Used for proxies
/// that fork per connection (socat), where summing VmRSS would count shared pages once
/// per child.
pub fn tree_pss_kib(root: u32) -> io::Result<u64> {
    let mut total = 0;
    for pid in descendants(root)? {
        // A child may exit between listing and reading: it no longer holds memory.
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            total += field_kib(&text, "Pss:").unwrap_or(0);
        }
    }
    Ok(total)
}

/// `root` and every live process below it.
pub fn descendants(root: u32) -> io::Result<Vec<u32>> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses: parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    Ok(out)
}

fn field_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A currently free port on 127.0.0.1. The port is released before it is used, so a race
/// with another process is possible but harmless on a machine running one bench.
pub fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The machine a run happened on, recorded with every report.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_kib: u64,
    /// /proc/loadavg when the run started: other work on the machine skews every target.
    pub loadavg_at_start: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            mem_total_kib: field_kib(&meminfo, "MemTotal:").unwrap_or(0),
            loadavg_at_start: loadavg(),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss_and_tree() {
        let me = std::process::id();
        assert!(vm_rss_kib(me).unwrap() > 0);
        assert!(descendants(me).unwrap().contains(&me));
        assert!(tree_pss_kib(me).unwrap() > 0);
    }

    #[test]
    fn field_parser_takes_the_number() {
        assert_eq!(
            field_kib("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"),
            Some(1234)
        );
        assert_eq!(field_kib("Name:\tx\n", "VmRSS:"), None);
    }
}
