//! The plan of a MariaDB lab: settings, and every port, path and command-line flag of
//! its members and of rift's topology, decided before any process starts.
//!
//! Member 1 starts as the primary, the others as its replicas. Each member has one real
//! port; rift listens twice for each: `repl`, the address replicas' `CHANGE MASTER`
//! names (replication traffic, cut by the faults), and `client`, for users' clients
//! that should sit on a side of a partition. The lab's own clients and the poller use
//! the real ports, so a fault never blinds them.

use std::path::{Path, PathBuf};

use rift_proxy::topology::{ApiConfig, Endpoint, Node, Topology};
use serde::Serialize;

use crate::lab::process::free_ports;
use crate::lab::{LabError, LabState, MemberRecord, now_rfc3339};

/// The account every member gets (created by the init file, never replicated).
pub const USER: &str = "rift";
pub const PASSWORD: &str = "rift";
/// The database of the workload's tables.
pub const DATABASE: &str = "rift";

/// What a MariaDB lab is started with.
#[derive(Debug, Clone, Serialize)]
pub struct MariaLabConfig {
    pub nodes: usize,
    /// Semi-synchronous replication (else asynchronous).
    pub semi_sync: bool,
    /// `rpl_semi_sync_master_timeout`: how long a commit waits for a replica's
    /// acknowledgement before the primary falls back to asynchronous replication.
    pub semi_sync_timeout_ms: u64,
    pub state_dir: PathBuf,
    pub base_port: Option<u16>,
}

impl MariaLabConfig {
    pub fn new(nodes: usize, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            nodes,
            semi_sync: true,
            semi_sync_timeout_ms: 2_000,
            state_dir: state_dir.into(),
            base_port: None,
        }
    }

    pub fn validate(&self) -> Result<(), LabError> {
        if !(2..=9).contains(&self.nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: self.nodes.to_string(),
                reason: "a MariaDB lab has a primary and 1 to 8 replicas (3 is the tested size)"
                    .into(),
            });
        }
        if !(100..=600_000).contains(&self.semi_sync_timeout_ms) {
            return Err(LabError::Config {
                field: "semi_sync_timeout".into(),
                value: format!("{} ms", self.semi_sync_timeout_ms),
                reason: "between 100 ms and 10 min".into(),
            });
        }
        Ok(())
    }
}

/// Ports and paths of one member.
#[derive(Debug, Clone, Serialize)]
pub struct MariaMemberPlan {
    pub name: String,
    pub server_id: u32,
    pub port: u16,
    pub rift_repl_port: u16,
    pub rift_client_port: u16,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// Everything decided before any process starts.
#[derive(Debug, Clone, Serialize)]
pub struct MariaLabPlan {
    pub config: MariaLabConfig,
    pub mariadbd: PathBuf,
    pub install_db: PathBuf,
    /// What `mariadbd --version` says (`10.11.19-MariaDB-0+deb12u1`).
    pub version: String,
    pub members: Vec<MariaMemberPlan>,
    pub api_port: u16,
}

/// Where Debian installs the server; `MARIADBD` overrides.
fn find_exe(env: &str, name: &str) -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Spawn {
            program: name.to_string(),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "not found in PATH, /usr/sbin or /usr/bin (scripts/setup.d/37-mariadb.sh installs Debian's mariadb-server; or set {env})"
                ),
            ),
        })
}

impl MariaLabPlan {
    pub fn new(config: MariaLabConfig) -> Result<Self, LabError> {
        config.validate()?;
        // Checked before anything starts, so a missing server leaves nothing behind.
        let mariadbd = find_exe("MARIADBD", "mariadbd")?;
        let install_db = find_exe("MARIADB_INSTALL_DB", "mariadb-install-db")?;
        let version = reported_version(&mariadbd)?;
        let ports = free_ports(config.base_port, config.nodes * 3 + 1)?;
        let dir = &config.state_dir;
        let members = (0..config.nodes)
            .map(|i| {
                let name = format!("maria{}", i + 1);
                MariaMemberPlan {
                    server_id: i as u32 + 1,
                    port: ports[i * 3],
                    rift_repl_port: ports[i * 3 + 1],
                    rift_client_port: ports[i * 3 + 2],
                    data_dir: dir.join(format!("{name}.data")),
                    socket: dir.join(format!("{name}.sock")),
                    log: dir.join(format!("{name}.log")),
                    name,
                }
            })
            .collect();
        Ok(Self {
            mariadbd,
            install_db,
            version,
            api_port: ports[config.nodes * 3],
            members,
            config,
        })
    }

    pub fn member(&self, name: &str) -> Option<&MariaMemberPlan> {
        self.members.iter().find(|m| m.name == name)
    }

    /// rift's topology: one node per member with `repl` and `client` endpoints.
    pub fn topology(&self) -> Topology {
        Topology {
            api: Some(ApiConfig {
                listen: ([127, 0, 0, 1], self.api_port).into(),
            }),
            nodes: self
                .members
                .iter()
                .map(|m| Node {
                    name: m.name.clone(),
                    source_ips: vec![],
                    source_pids: vec![],
                    source_hosts: vec![],
                    region: None,
                    endpoints: vec![
                        Endpoint {
                            name: "repl".into(),
                            listen: ([127, 0, 0, 1], m.rift_repl_port).into(),
                            upstream: format!("127.0.0.1:{}", m.port),
                        },
                        Endpoint {
                            name: "client".into(),
                            listen: ([127, 0, 0, 1], m.rift_client_port).into(),
                            upstream: format!("127.0.0.1:{}", m.port),
                        },
                    ],
                })
                .collect(),
        }
    }

    /// The init file every member runs at start: the lab's account, kept out of the
    /// binary log so that no member has transactions of its own the others lack.
    pub fn init_sql(&self) -> String {
        format!(
            "SET sql_log_bin=0;\n\
             CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n"
        )
    }

    pub fn init_file(&self) -> PathBuf {
        self.config.state_dir.join("init.sql")
    }

    /// The `mariadbd` command line of member `i`.
    pub fn member_args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let c = &self.config;
        let on = |b: bool| if b { "ON" } else { "OFF" };
        vec![
            "--no-defaults".into(),
            format!("--datadir={}", m.data_dir.display()),
            format!("--port={}", m.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", m.socket.display()),
            format!("--pid-file={}", m.data_dir.join("mariadbd.pid").display()),
            // mariadbd refuses to run as root unless told which user to be.
            "--user=root".into(),
            format!("--server-id={}", m.server_id),
            "--log-bin=mariadb-bin".into(),
            "--binlog-format=ROW".into(),
            // Replicated transactions go to the replica's own binlog, so a promoted
            // replica can serve the others from the same GTIDs.
            "--log-slave-updates=ON".into(),
            "--skip-name-resolve".into(),
            format!("--init-file={}", self.init_file().display()),
            format!("--rpl-semi-sync-master-enabled={}", on(c.semi_sync)),
            format!("--rpl-semi-sync-slave-enabled={}", on(c.semi_sync)),
            format!("--rpl-semi-sync-master-timeout={}", c.semi_sync_timeout_ms),
            // A replica notices a dead primary within seconds, not the default minute.
            "--slave-net-timeout=4".into(),
            "--innodb-buffer-pool-size=16M".into(),
            "--innodb-log-file-size=4M".into(),
            "--performance-schema=OFF".into(),
        ]
    }

    pub fn install_args(&self, data_dir: &Path) -> Vec<String> {
        vec![
            "--no-defaults".into(),
            format!("--datadir={}", data_dir.display()),
            "--user=root".into(),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
            "--innodb-log-file-size=4M".into(),
            "--innodb-buffer-pool-size=16M".into(),
        ]
    }

    pub fn member_records(&self) -> Vec<MemberRecord> {
        self.members
            .iter()
            .map(|m| MemberRecord {
                name: m.name.clone(),
                client_url: format!("mysql://127.0.0.1:{}", m.rift_client_port),
                direct_client_url: format!("mysql://127.0.0.1:{}", m.port),
                peer_url: format!("mysql://127.0.0.1:{}", m.rift_repl_port),
            })
            .collect()
    }

    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "nodes": self.config.nodes,
            "replication": if self.config.semi_sync { "semi-sync" } else { "async" },
            "rpl_semi_sync_master_timeout_ms": self.config.semi_sync_timeout_ms,
            "mariadbd": self.mariadbd,
            "version": self.version,
            "user": USER,
        })
    }

    pub fn initial_state(&self, api_url: Option<String>) -> LabState {
        LabState {
            system: "mariadb".into(),
            started_at: now_rfc3339(),
            api_url,
            members: self.member_records(),
            processes: vec![],
            settings: self.settings(),
        }
    }
}

/// `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64` -> the
/// version word.
fn reported_version(exe: &Path) -> Result<String, LabError> {
    let out = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .map_err(|error| LabError::Spawn {
            program: exe.display().to_string(),
            error,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "Ver")
        .nth(1)
        .filter(|v| v.contains("MariaDB"))
        .map(str::to_string)
        .ok_or_else(|| LabError::Config {
            field: "MARIADBD".into(),
            value: exe.display().to_string(),
            reason: format!(
                "`--version` printed {:?}, not a MariaDB version",
                text.trim()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sizes_and_timeouts_are_named() {
        let mut c = MariaLabConfig::new(1, "/tmp/x");
        assert!(c.validate().unwrap_err().to_string().contains("nodes"));
        c.nodes = 3;
        c.semi_sync_timeout_ms = 10;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("semi_sync_timeout") && e.contains("10 ms"),
            "{e}"
        );
    }
}
