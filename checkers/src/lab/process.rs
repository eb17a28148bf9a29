//! Process and port helpers shared by the local labs (etcd now, Kafka later).
//!
//! A lab runs real server processes on loopback. rift identifies which member dialed a
//! connection by the PID that owns the socket, so members are spawned directly (never
//! through a shell) and their PIDs are recorded: in memory for in-process labs, and in
//! pid files under the lab's state directory for `rift lab up`, so that a later
//! `rift lab down` — or a later `rift lab up` after a crash — can find and stop them.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{LabError, LabState, ProcessRecord};

/// Picks `count` distinct free TCP ports on 127.0.0.1.
///
/// With `base`, ports are taken in order from `base` upwards (skipping busy ones), which
/// lets parallel tests use disjoint ranges. Without it a random start in 20000..30000 is
/// used: that range is below Linux's ephemeral range, so the members' own outgoing
/// connections never steal a port between planning and binding.
pub fn free_ports(base: Option<u16>, count: usize) -> Result<Vec<u16>, LabError> {
    let start = match base {
        Some(b) => b,
        None => 20_000 + (rand::random::<u16>() % 9_000),
    };
    let mut ports = Vec::with_capacity(count);
    let mut candidate = u32::from(start);
    while ports.len() < count {
        if candidate > 60_000 {
            return Err(LabError::Ports(format!(
                "no {count} free ports at or above {start}"
            )));
        }
        let port = candidate as u16;
        candidate += 1;
        if port_is_free(port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// True when nothing listens on 127.0.0.1:`port` and it can be bound now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_for_listen(addr: SocketAddr, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "nothing listening on {addr} after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a lab process is spawned.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub log: PathBuf,
    /// Detach into its own session so the process outlives the command that started it
    /// (`rift lab up` returns while the lab keeps running).
    pub detach: bool,
}

/// A lab process: its PID and, when this process spawned it, the child handle.
#[derive(Debug)]
pub struct LabProcess {
    pub name: String,
    pub pid: u32,
    child: Option<Child>,
}

impl LabProcess {
    /// Spawns `spec.program` directly with stdout and stderr appended to `spec.log`.
    pub fn spawn(name: &str, spec: Spawn<'_>) -> Result<Self, LabError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| LabError::io(&spec.log, e))?;
        let log2 = log.try_clone().map_err(|e| LabError::io(&spec.log, e))?;
        let mut cmd = Command::new(spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if spec.detach {
            rift_proxy::sys::spawn_in_new_session(&mut cmd);
        }
        let child = cmd.spawn().map_err(|e| LabError::Spawn {
            program: spec.program.display().to_string(),
            error: e,
        })?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
        })
    }

    /// A process recorded in a pid file by an earlier command.
    pub fn adopt(name: &str, pid: u32) -> Self {
        Self {
            name: name.to_string(),
            pid,
            child: None,
        }
    }

    /// Whether the process is still running (a reaped or zombie child counts as gone).
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            return matches!(child.try_wait(), Ok(None));
        }
        pid_alive(self.pid)
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(self.pid, libc::SIGKILL);
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        } else {
            let deadline = Instant::now() + Duration::from_secs(2);
            while pid_alive(self.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends SIGKILL without waiting for a graceful stop (crash simulation, cleanup).
    pub fn kill(&mut self) {
        signal(self.pid, libc::SIGKILL);
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        }
    }
}

/// True if a process with this PID exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    if rift_proxy::sys::send_signal(pid, 0).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// The executable path of a running process, to check a recorded PID was not reused.
pub fn pid_exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn signal(pid: u32, sig: i32) {
    // A process that already exited is what stopping it wanted.
    let _ = rift_proxy::sys::send_signal(pid, sig);
}

/// Writes `pid` into `path` (one line).
pub fn write_pid_file(path: &Path, pid: u32) -> Result<(), LabError> {
    std::fs::write(path, format!("{pid}\n")).map_err(|e| LabError::io(path, e))
}

/// Reads a pid file written by [`write_pid_file`].
pub fn read_pid_file(path: &Path) -> Result<u32, LabError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?;
    text.trim().parse().map_err(|_| LabError::State {
        path: path.to_path_buf(),
        message: format!("pid file holds {:?}, not a process id", text.trim()),
    })
}

/// Where a lab registers the PID of each member it spawns (so rift knows which node a
/// connection dialing from 127.0.0.1 comes from): the in-process proxy or a detached
/// `rift proxy` over HTTP.
pub enum Registrar<'a> {
    InProcess(&'a rift_proxy::control::Control),
    Http(&'a rift_proxy::client::ApiClient),
}

impl Registrar<'_> {
    pub async fn register(&self, node: &str, pid: u32) -> Result<(), LabError> {
        let r = match self {
            Registrar::InProcess(c) => c
                .register_source(node, &[pid], &[])
                .map_err(|e| e.to_string()),
            Registrar::Http(c) => c
                .register_source(node, &[pid], &[])
                .await
                .map_err(|e| e.to_string()),
        };
        r.map_err(|e| LabError::Proxy(format!("registering {node} (pid {pid}): {e}")))
    }
}

/// Starts `rift proxy --topology TOPOLOGY` (the executable `rift`) detached, records it
/// in `state` (saved in `dir`) as the lab's first process, and waits until its control
/// API listens on `api`. For `rift lab up`, whose lab outlives the command.
pub async fn spawn_detached_proxy(
    state: &mut LabState,
    dir: &Path,
    rift: &Path,
    topology: &Path,
    api: SocketAddr,
) -> Result<(), LabError> {
    let rift_exe = std::fs::canonicalize(rift).map_err(|e| LabError::io(rift, e))?;
    let topology = std::fs::canonicalize(topology).map_err(|e| LabError::io(topology, e))?;
    let log = dir.join("rift-proxy.log");
    // `--heal-on-exit`: `rift lab down` heals before the proxy stops.
    let args: Vec<String> = vec![
        "proxy".into(),
        "--topology".into(),
        topology.display().to_string(),
        "--heal-on-exit".into(),
    ];
    // A proxy keeps its faults in a state file named by its working directory and
    // command line, and puts them back when started again the same way: a lab brought
    // up again in the same directory would start with the faults the previous one was
    // killed with. A new lab starts healed.
    let cwd = std::env::current_dir().map_err(|e| LabError::io(Path::new("."), e))?;
    let stale = rift_proxy::control::StatePath::for_command(&cwd, &args).path;
    match std::fs::remove_file(&stale) {
        Ok(()) => tracing::info!(path = %stale.display(), "removed the faults a previous lab left"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LabError::io(&stale, e)),
    }
    let mut proxy = LabProcess::spawn(
        "rift-proxy",
        Spawn {
            program: &rift_exe,
            args,
            log: log.clone(),
            detach: true,
        },
    )?;
    state.add_process(
        dir,
        ProcessRecord {
            name: "rift-proxy".into(),
            pid: proxy.pid,
            exe: rift_exe,
            log: log.clone(),
        },
    )?;
    if let Err(e) = wait_for_listen(api, Duration::from_secs(10)).await {
        if !proxy.is_running() {
            return Err(LabError::Exited("rift proxy".into(), log));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(Some(41_000), 5).unwrap();
        let mut sorted = ports.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(ports.iter().all(|p| port_is_free(*p)));
    }

    #[test]
    fn busy_port_is_skipped() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        assert!(!port_is_free(busy));
        let ports = free_ports(Some(busy), 1).unwrap();
        assert_ne!(ports[0], busy);
    }

    #[test]
    fn spawned_process_is_tracked_and_stopped() {
        let dir = std::env::temp_dir().join(format!("rift-proc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = LabProcess::spawn(
            "sleeper",
            Spawn {
                program: Path::new("/bin/sleep"),
                args: vec!["30".into()],
                log: dir.join("sleep.log"),
                detach: false,
            },
        )
        .unwrap();
        assert!(p.is_running());
        assert!(pid_alive(p.pid));
        p.stop(Duration::from_secs(2));
        assert!(!p.is_running());
        assert!(!pid_alive(p.pid));
        let pid_file = dir.join("x.pid");
        write_pid_file(&pid_file, 1234).unwrap();
        assert_eq!(read_pid_file(&pid_file).unwrap(), 1234);
        std::fs::write(&pid_file, "junk").unwrap();
        assert!(read_pid_file(&pid_file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
