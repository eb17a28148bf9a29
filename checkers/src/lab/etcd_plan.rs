//! The plan of an etcd lab: its settings, and every port, path, URL and command-line
//! flag of its members and of rift's topology, decided before any process starts.

use std::path::{Path, PathBuf};

use rift_proxy::topology::{ApiConfig, Endpoint, Node, Topology};
use serde::Serialize;

use super::process::free_ports;
use super::versions;
use super::{LabError, LabState, MemberRecord, now_rfc3339};

/// What the etcd lab is started with.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdLabConfig {
    pub nodes: usize,
    pub pre_vote: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub state_dir: PathBuf,
    /// First port to allocate from (tests give each binary its own range).
    pub base_port: Option<u16>,
    /// The release to run (`3.4`, `3.5`, `3.6` or an exact version); `None` runs the
    /// newest, or `ETCD_BIN` when that is set (see [`super::versions::etcd`]).
    pub version: Option<String>,
}

impl EtcdLabConfig {
    pub fn new(nodes: usize, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            nodes,
            pre_vote: true,
            heartbeat_ms: 50,
            election_ms: 500,
            state_dir: state_dir.into(),
            base_port: None,
            version: None,
        }
    }

    pub fn validate(&self) -> Result<(), LabError> {
        if !(1..=9).contains(&self.nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: self.nodes.to_string(),
                reason: "an etcd lab has 1 to 9 members (3, 4 and 5 are the tested sizes)".into(),
            });
        }
        if self.heartbeat_ms == 0 || self.election_ms < 5 * self.heartbeat_ms {
            return Err(LabError::Config {
                field: "election_ms".into(),
                value: self.election_ms.to_string(),
                reason: format!(
                    "must be at least 5 x heartbeat_ms ({}); etcd recommends 10x",
                    self.heartbeat_ms
                ),
            });
        }
        Ok(())
    }
}

/// Ports and paths of one member.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdMemberPlan {
    pub name: String,
    pub peer_port: u16,
    pub client_port: u16,
    pub rift_peer_port: u16,
    pub rift_client_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl EtcdMemberPlan {
    pub fn direct_client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn rift_client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rift_client_port)
    }
    pub fn rift_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rift_peer_port)
    }
}

/// Everything decided before any process starts.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdLabPlan {
    pub config: EtcdLabConfig,
    /// The resolved etcd executable.
    pub etcd_exe: PathBuf,
    /// The version that executable reports (`etcd --version`), so a custom
    /// `ETCD_BIN` is named for what it is.
    pub etcd_version: String,
    pub members: Vec<EtcdMemberPlan>,
    pub api_port: u16,
    pub cluster_token: String,
}

impl EtcdLabPlan {
    pub fn new(config: EtcdLabConfig) -> Result<Self, LabError> {
        config.validate()?;
        let ports = free_ports(config.base_port, config.nodes * 4 + 1)?;
        let dir = &config.state_dir;
        let members = (0..config.nodes)
            .map(|i| {
                let name = format!("etcd{}", i + 1);
                EtcdMemberPlan {
                    peer_port: ports[i * 4],
                    client_port: ports[i * 4 + 1],
                    rift_peer_port: ports[i * 4 + 2],
                    rift_client_port: ports[i * 4 + 3],
                    data_dir: dir.join(format!("{name}.etcd")),
                    log: dir.join(format!("{name}.log")),
                    name,
                }
            })
            .collect();
        // Checked before anything starts, so a missing etcd leaves nothing behind.
        let install = versions::etcd(config.version.as_deref())?;
        let etcd_exe = std::fs::canonicalize(&install.bin)
            .or_else(|_| which(&install.bin))
            .map_err(|_| LabError::Spawn {
                program: install.bin.display().to_string(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such executable (run scripts/setup.sh, or set ETCD_BIN)",
                ),
            })?;
        let etcd_version = reported_version(&etcd_exe)?;
        Ok(Self {
            etcd_exe,
            etcd_version,
            api_port: ports[config.nodes * 4],
            cluster_token: format!("rift-lab-{}", rand::random::<u32>()),
            members,
            config,
        })
    }

    /// rift's topology: one node per member with `peer` and `client` endpoints.
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
                            name: "peer".into(),
                            listen: ([127, 0, 0, 1], m.rift_peer_port).into(),
                            upstream: format!("127.0.0.1:{}", m.peer_port),
                        },
                        Endpoint {
                            name: "client".into(),
                            listen: ([127, 0, 0, 1], m.rift_client_port).into(),
                            upstream: format!("127.0.0.1:{}", m.client_port),
                        },
                    ],
                })
                .collect(),
        }
    }

    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.rift_peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The etcd command line of member `i`.
    pub fn member_args(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        let c = &self.config;
        vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer_port),
            format!("--initial-advertise-peer-urls={}", m.rift_peer_url()),
            format!("--listen-client-urls={}", m.direct_client_url()),
            format!("--advertise-client-urls={}", m.rift_client_url()),
            format!("--initial-cluster={}", self.initial_cluster()),
            "--initial-cluster-state=new".into(),
            format!("--initial-cluster-token={}", self.cluster_token),
            format!("--heartbeat-interval={}", c.heartbeat_ms),
            format!("--election-timeout={}", c.election_ms),
            format!("--pre-vote={}", c.pre_vote),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ]
    }

    /// (name, real client URL) pairs for observers.
    pub fn observer_endpoints(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.direct_client_url()))
            .collect()
    }

    pub fn member_records(&self) -> Vec<MemberRecord> {
        self.members
            .iter()
            .map(|m| MemberRecord {
                name: m.name.clone(),
                client_url: m.rift_client_url(),
                direct_client_url: m.direct_client_url(),
                peer_url: m.rift_peer_url(),
            })
            .collect()
    }

    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "nodes": self.config.nodes,
            "pre_vote": self.config.pre_vote,
            "heartbeat_ms": self.config.heartbeat_ms,
            "election_ms": self.config.election_ms,
            "etcd_bin": self.etcd_exe,
            "version": self.etcd_version,
        })
    }

    pub(super) fn initial_state(&self, api_url: Option<String>) -> LabState {
        LabState {
            system: "etcd".into(),
            started_at: now_rfc3339(),
            api_url,
            members: self.member_records(),
            processes: vec![],
            settings: self.settings(),
        }
    }
}

/// The version an etcd binary reports on its first line: `etcd Version: 3.6.16`.
fn reported_version(exe: &Path) -> Result<String, LabError> {
    let out = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .map_err(|error| LabError::Spawn {
            program: exe.display().to_string(),
            error,
        })?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| LabError::Config {
            field: "ETCD_BIN".into(),
            value: exe.display().to_string(),
            reason: "`--version` does not print `etcd Version: X`; is it etcd?".into(),
        })
}

pub(super) fn which(bin: &Path) -> std::io::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
}
