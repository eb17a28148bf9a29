//! Local labs: real cluster members started as processes on loopback, with rift in the
//! middle of every member-to-member link.
//!
//! A lab lives in a state directory (default `.rift/lab/`) holding `lab.json` (what was
//! started: the proxy's API address, every process with its PID, the members' URLs),
//! the generated `topology.toml`, pid files, logs and data directories. The state file
//! is written before the first process starts and updated as each one starts, so a lab
//! left by a crashed run is always found: [`clear_stale`] stops whatever of it still
//! runs and removes it, and a live lab is never silently reused.
//!
//! - [`process`]: ports, spawning, pid files, stopping.
//! - [`etcd`]: the etcd lab (etcd 3.4, 3.5 or 3.6, or `ETCD_BIN`).
//! - [`versions`]: the releases each lab offers and where they are installed.
//! - [`kafka`]: the Kafka KRaft lab (Maven Central jars, Java 17).
//! - [`locate`]: finding a running lab's control API for commands given no `--api`.

pub mod etcd;
mod etcd_plan;
pub mod kafka;
pub mod locate;
pub mod process;
pub mod versions;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use process::{LabProcess, pid_alive, pid_exe};

/// The state directory `rift lab` uses when none is given.
pub const DEFAULT_STATE_DIR: &str = ".rift/lab";

#[derive(Debug, Error)]
pub enum LabError {
    // The io error is part of the message, not a `source`, so chains print it once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    // Like `Io`: the cause is in the message, not a `source`, so chains print it once.
    #[error("cannot start {program}: {error} (run scripts/setup.sh to install it)")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("a lab is already running in {dir} (started {started}); run `rift lab down` first")]
    AlreadyRunning { dir: PathBuf, started: String },
    #[error("no lab in {0}; start one with `rift lab up etcd` or `rift lab up kafka`")]
    NotRunning(PathBuf),
    #[error("ports: {0}")]
    Ports(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("invalid lab setting {field} = {value}: {reason}")]
    Config {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{0} exited during startup; see its log {1}")]
    Exited(String, PathBuf),
    #[error("proxy: {0}")]
    Proxy(String),
}

impl LabError {
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        LabError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// One process recorded in `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessRecord {
    pub name: String,
    pub pid: u32,
    /// The executable, compared with /proc/PID/exe so a reused PID is never killed.
    pub exe: PathBuf,
    pub log: PathBuf,
}

/// A member as `rift lab status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberRecord {
    pub name: String,
    /// Client URL through rift (what users and `client`-side workloads use).
    pub client_url: String,
    /// The member's real client URL (what observers use, so a fault never blinds them).
    pub direct_client_url: String,
    /// Peer URL advertised to the other members (rift's listener).
    pub peer_url: String,
}

/// The contents of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    pub system: String,
    pub started_at: String,
    pub api_url: Option<String>,
    pub members: Vec<MemberRecord>,
    pub processes: Vec<ProcessRecord>,
    /// Raft settings, shown by status and in reports.
    pub settings: serde_json::Value,
}

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }

    pub fn load(dir: &Path) -> Result<Option<LabState>, LabError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::State {
                path: path.clone(),
                message: format!("unreadable lab state ({e}); remove the directory"),
            })
    }

    /// Records a started process: in `lab.json` and as `<name>.pid`, both written
    /// before the caller goes on, so a crash right after still leaves a trace.
    pub fn add_process(&mut self, dir: &Path, record: ProcessRecord) -> Result<(), LabError> {
        process::write_pid_file(&dir.join(format!("{}.pid", record.name)), record.pid)?;
        self.processes.push(record);
        self.save(dir)
    }

    pub fn save(&self, dir: &Path) -> Result<(), LabError> {
        let path = Self::path(dir);
        let tmp = dir.join("lab.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("lab state serialises");
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(&path, e))
    }

    /// Processes of this lab that are still running (PID alive with the recorded exe).
    pub fn running(&self) -> Vec<&ProcessRecord> {
        self.processes.iter().filter(|p| record_alive(p)).collect()
    }

    /// A lab is healthy when every recorded process still runs.
    pub fn is_healthy(&self) -> bool {
        !self.processes.is_empty() && self.running().len() == self.processes.len()
    }
}

fn record_alive(p: &ProcessRecord) -> bool {
    if !pid_alive(p.pid) {
        return false;
    }
    // An exe we cannot read (other user) is treated as ours: better to report a lab as
    // running than to forget a process that may hold the lab's ports.
    match pid_exe(p.pid) {
        Some(exe) => same_exe(&exe, &p.exe),
        None => true,
    }
}

fn same_exe(live: &Path, recorded: &Path) -> bool {
    // /proc/PID/exe of a replaced binary (cargo rebuilt rift) reads "path (deleted)".
    let live = live.to_string_lossy();
    let live = live.trim_end_matches(" (deleted)");
    let recorded_canon = std::fs::canonicalize(recorded).unwrap_or_else(|_| recorded.to_path_buf());
    Path::new(live) == recorded || Path::new(live) == recorded_canon
}

/// Outcome of looking at a state directory before starting a lab there.
#[derive(Debug, PartialEq)]
pub enum Preflight {
    /// Nothing was there.
    Empty,
    /// A lab from a crashed run was found; its surviving processes were stopped and its
    /// files removed. Holds what was found, for the warning.
    ClearedStale(LabState),
}

/// Prepares `dir` for a new lab: refuses a running lab, clears a crashed one.
pub fn clear_stale(dir: &Path) -> Result<Preflight, LabError> {
    let state = match LabState::load(dir) {
        Ok(s) => s,
        Err(LabError::State { .. }) => {
            // Unreadable state: nothing to stop safely; the directory is ours to clear.
            remove_dir(dir)?;
            return Ok(Preflight::Empty);
        }
        Err(e) => return Err(e),
    };
    match state {
        None => {
            if dir.exists() {
                remove_dir(dir)?;
            }
            Ok(Preflight::Empty)
        }
        Some(state) if state.is_healthy() => Err(LabError::AlreadyRunning {
            dir: dir.to_path_buf(),
            started: state.started_at.clone(),
        }),
        Some(state) => {
            tracing::warn!(dir = %dir.display(), started = %state.started_at,
                "found a lab left by a crashed run; stopping what is left and removing it");
            stop_processes(&state);
            remove_dir(dir)?;
            Ok(Preflight::ClearedStale(state))
        }
    }
}

const STOP_GRACE: Duration = Duration::from_secs(1);

/// Stops every process recorded in `state`: the members together, then the proxy (the
/// first record). A clean shutdown of the last etcd leader or Kafka broker waits for a
/// quorum that is already gone, and the lab's data is deleted next anyway, so the grace
/// period before SIGKILL is short.
pub fn stop_processes(state: &LabState) {
    let stop = |record: &ProcessRecord| {
        if record_alive(record) {
            tracing::info!(name = %record.name, pid = record.pid, "stopping");
            LabProcess::adopt(&record.name, record.pid).stop(STOP_GRACE);
        }
    };
    let Some((proxy, members)) = state.processes.split_first() else {
        return;
    };
    std::thread::scope(|scope| {
        for record in members {
            scope.spawn(move || stop(record));
        }
    });
    stop(proxy);
}

/// `rift lab down`: stops the lab in `dir` and removes its data. Returns the state that
/// was found, or `NotRunning` if there was none.
pub fn down(dir: &Path) -> Result<LabState, LabError> {
    let state = LabState::load(dir)?.ok_or_else(|| LabError::NotRunning(dir.to_path_buf()))?;
    stop_processes(&state);
    remove_dir(dir)?;
    Ok(state)
}

fn remove_dir(dir: &Path) -> Result<(), LabError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(dir, e)),
    }
}

/// Seconds since the Unix epoch, as RFC 3339 UTC text (no extra dependency needed).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use process::Spawn;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rift-lab-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn state_with(processes: Vec<ProcessRecord>) -> LabState {
        LabState {
            system: "etcd".into(),
            started_at: now_rfc3339(),
            api_url: None,
            members: vec![],
            processes,
            settings: serde_json::Value::Null,
        }
    }

    #[test]
    fn running_lab_is_refused_and_crashed_lab_is_cleared() {
        let dir = temp_dir("stale");
        let mut a = LabProcess::spawn(
            "a",
            Spawn {
                program: Path::new("/bin/sleep"),
                args: vec!["30".into()],
                log: dir.join("a.log"),
                detach: false,
            },
        )
        .unwrap();
        let mut b = LabProcess::spawn(
            "b",
            Spawn {
                program: Path::new("/bin/sleep"),
                args: vec!["30".into()],
                log: dir.join("b.log"),
                detach: false,
            },
        )
        .unwrap();
        let exe = std::fs::canonicalize("/bin/sleep").unwrap();
        let rec = |p: &LabProcess| ProcessRecord {
            name: p.name.clone(),
            pid: p.pid,
            exe: exe.clone(),
            log: dir.join("x.log"),
        };
        state_with(vec![rec(&a), rec(&b)]).save(&dir).unwrap();

        let err = clear_stale(&dir).unwrap_err();
        assert!(matches!(err, LabError::AlreadyRunning { .. }), "{err}");

        // One member dies: the lab is stale; the survivor is stopped and files removed.
        a.kill();
        match clear_stale(&dir).unwrap() {
            Preflight::ClearedStale(s) => assert_eq!(s.processes.len(), 2),
            other => panic!("expected a cleared stale lab, got {other:?}"),
        }
        assert!(!b.is_running());
        assert!(!dir.exists());
        assert_eq!(clear_stale(&dir).unwrap(), Preflight::Empty);
    }

    #[test]
    fn reused_pid_with_other_exe_is_not_ours() {
        let rec = ProcessRecord {
            name: "x".into(),
            pid: std::process::id(),
            exe: PathBuf::from("/usr/bin/etcd-not-this"),
            log: PathBuf::new(),
        };
        assert!(!record_alive(&rec));
    }

    #[test]
    fn down_without_lab_says_so() {
        let dir = temp_dir("none");
        let err = down(&dir.join("missing")).unwrap_err();
        assert!(err.to_string().contains("no lab"), "{err}");
    }
}
