//! What a ZooKeeper lab is made of, before anything runs: ports, rift's topology, each
//! server's `zoo.cfg` and `myid`, and the JVM command line. Shared by the in-process lab
//! ([`super::lab::ZkLab`]) and the detached one `rift lab up zookeeper` leaves running.
//!
//! ZooKeeper has one `server.N=host:quorumPort:electionPort` line per server, and a
//! server binds the address of its own line. So every server gets its OWN config file:
//! the other servers' lines name rift's listeners for them, so every follower→leader
//! link (quorum port) and every election link a server dials from its config crosses
//! rift, which tells the dialing server by the PID that owns the socket (each server is
//! its own JVM). Its own line names its real ports on the wildcard address `0.0.0.0`
//! (ZooKeeper's Docker convention), and that matters: a server dialing a peer with a
//! larger id sends its own election address, and the peer drops that connection and
//! dials back to the address it was sent, bypassing rift, unless that address is the
//! wildcard, which ZooKeeper ignores (`QuorumCnxManager.InitialMessage.parse`), falling
//! back to its own config. With `127.0.0.1` there, a cut leader kept exchanging
//! election notifications with the followers over those direct links. The servers
//! still only talk over loopback: every address they dial is 127.0.0.1. Dynamic
//! reconfiguration is off, so the
//! differing `server.N` lines are never compared or rewritten (ZooKeeper skips storing
//! a leader's config when `reconfigEnabled=false`). Clients and the poller use each
//! server's real client port: a client is bound to its member, on whichever side of a
//! cut the member is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rift_proxy::topology::{ApiConfig, Endpoint, Node, Topology};

use crate::lab::LabError;
use crate::lab::kafka::find_java;
use crate::lab::process::{LabProcess, Spawn, free_ports};
use crate::lab::{LabState, MemberRecord, now_rfc3339};

/// The topology endpoint of followers' (and observers') connections to the leader:
/// proposals, acks, commits. The consensus endpoint.
pub const QUORUM_ENDPOINT: &str = "quorum";
/// The topology endpoint of leader election (FastLeaderElection notifications).
pub const ELECTION_ENDPOINT: &str = "election";

/// The ZooKeeper release the lab runs (compose/zookeeper-lab/pom.xml).
pub const ZOOKEEPER_VERSION: &str = "3.9.5";

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct ZkLabConfig {
    pub nodes: usize,
    /// The lab's directory: configs, data, logs, `topology.toml`, `lab.json`.
    pub state_dir: PathBuf,
    /// First port to allocate from; random when unset.
    pub base_port: Option<u16>,
    /// `tickTime` in ms: ZooKeeper's unit of time (heartbeats, sync and init limits).
    pub tick_ms: u64,
    /// `initLimit` in ticks: how long a follower may take to connect and sync.
    pub init_limit: u32,
    /// `syncLimit` in ticks: how long a follower may go without hearing from the
    /// leader (and the leader without a quorum of acks) before giving up on it.
    pub sync_limit: u32,
    /// JVM heap per server, MiB.
    pub heap_mb: u32,
    /// Directory of the ZooKeeper jars (default `$RIFT_ZOOKEEPER_LIBS`, then
    /// `.rift/zookeeper-libs`).
    pub libs_dir: Option<PathBuf>,
}

impl ZkLabConfig {
    pub fn new(nodes: usize, state_dir: &Path) -> Self {
        ZkLabConfig {
            nodes,
            state_dir: state_dir.to_path_buf(),
            base_port: None,
            tick_ms: 200,
            init_limit: 5,
            sync_limit: 5,
            heap_mb: 192,
            libs_dir: None,
        }
    }
}

/// One server: its name, id and addresses (rift's listeners and the real ones).
#[derive(Debug, Clone)]
pub struct ServerPlan {
    pub name: String,
    /// `myid`, 1-based.
    pub id: u32,
    pub quorum: SocketAddr,
    pub election: SocketAddr,
    pub direct_quorum: SocketAddr,
    pub direct_election: SocketAddr,
    pub client: SocketAddr,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// A planned lab.
#[derive(Debug, Clone)]
pub struct ZkPlan {
    pub config: ZkLabConfig,
    pub servers: Vec<ServerPlan>,
    pub java: PathBuf,
    pub libs: PathBuf,
    /// The control API port of a detached `rift proxy`.
    pub api_port: u16,
}

impl ZkPlan {
    /// Checks Java and the jars and picks ports. Nothing is written yet.
    pub fn new(config: ZkLabConfig) -> Result<Self, LabError> {
        if !(3..=5).contains(&config.nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: config.nodes.to_string(),
                reason: "a ZooKeeper lab has 3 to 5 servers".into(),
            });
        }
        if !(50..=2000).contains(&config.tick_ms) {
            return Err(LabError::Config {
                field: "tick".into(),
                value: format!("{} ms", config.tick_ms),
                reason: "between 50 ms and 2 s".into(),
            });
        }
        let java = find_java()?;
        let libs = locate_libs(config.libs_dir.as_deref())?;
        let ports = free_ports(config.base_port, config.nodes * 5 + 1)?;
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let dir = &config.state_dir;
        let servers = (0..config.nodes)
            .map(|i| {
                let p = &ports[i * 5..i * 5 + 5];
                let name = format!("zk{}", i + 1);
                ServerPlan {
                    id: i as u32 + 1,
                    quorum: addr(p[0]),
                    election: addr(p[1]),
                    direct_quorum: addr(p[2]),
                    direct_election: addr(p[3]),
                    client: addr(p[4]),
                    data: dir.join(format!("{name}-data")),
                    config: dir.join(format!("{name}.cfg")),
                    log: dir.join(format!("{name}.log")),
                    name,
                }
            })
            .collect();
        Ok(ZkPlan {
            api_port: ports[config.nodes * 5],
            config,
            servers,
            java,
            libs,
        })
    }

    /// rift's topology: one node per server with `quorum` and `election` endpoints.
    pub fn topology(&self, api: Option<SocketAddr>) -> Topology {
        let endpoint = |name: &str, listen: SocketAddr, upstream: SocketAddr| Endpoint {
            name: name.to_string(),
            listen,
            upstream: upstream.to_string(),
        };
        Topology {
            api: api.map(|listen| ApiConfig { listen }),
            nodes: self
                .servers
                .iter()
                .map(|s| Node {
                    name: s.name.clone(),
                    source_ips: Vec::new(),
                    source_pids: Vec::new(),
                    source_hosts: Vec::new(),
                    region: None,
                    endpoints: vec![
                        endpoint(QUORUM_ENDPOINT, s.quorum, s.direct_quorum),
                        endpoint(ELECTION_ENDPOINT, s.election, s.direct_election),
                    ],
                })
                .collect(),
        }
    }

    /// Server `i`'s `zoo.cfg`: its own line with its real ports, the others' with
    /// rift's listeners.
    pub fn server_config(&self, i: usize) -> String {
        let me = &self.servers[i];
        let c = &self.config;
        let mut text = format!(
            "# rift ZooKeeper lab: {name} (server.{id})\n\
             tickTime={tick}\n\
             initLimit={init}\n\
             syncLimit={sync}\n\
             dataDir={data}\n\
             clientPort={client_port}\n\
             clientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=srvr,mntr,ruok\n\
             reconfigEnabled=false\n\
             standaloneEnabled=false\n\
             quorumListenOnAllIPs=false\n\
             autopurge.purgeInterval=0\n",
            name = me.name,
            id = me.id,
            tick = c.tick_ms,
            init = c.init_limit,
            sync = c.sync_limit,
            data = me.data.display(),
            client_port = me.client.port(),
        );
        for (j, s) in self.servers.iter().enumerate() {
            // See the module's docs for why a server's own line is the wildcard.
            let (host, q, e) = if j == i {
                ("0.0.0.0".to_string(), s.direct_quorum, s.direct_election)
            } else {
                (s.quorum.ip().to_string(), s.quorum, s.election)
            };
            text.push_str(&format!(
                "server.{}={host}:{}:{}:participant\n",
                s.id,
                q.port(),
                e.port()
            ));
        }
        text
    }

    /// Writes every server's config and `myid`.
    pub fn write_files(&self) -> Result<(), LabError> {
        for (i, s) in self.servers.iter().enumerate() {
            std::fs::create_dir_all(&s.data).map_err(|e| LabError::io(&s.data, e))?;
            let myid = s.data.join("myid");
            std::fs::write(&myid, format!("{}\n", s.id)).map_err(|e| LabError::io(&myid, e))?;
            std::fs::write(&s.config, self.server_config(i))
                .map_err(|e| LabError::io(&s.config, e))?;
        }
        Ok(())
    }

    /// Spawns server `i`'s JVM directly (its PID owns its sockets).
    pub fn spawn(&self, i: usize, detach: bool) -> Result<LabProcess, LabError> {
        let s = &self.servers[i];
        let args = vec![
            format!("-Xmx{}m", self.config.heap_mb),
            "-Xms32m".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Xss512k".into(),
            "-Djava.awt.headless=true".into(),
            "-Dzookeeper.jmx.log4j.disable=true".into(),
            // A server that keeps losing elections backs off up to this interval
            // between notification rounds (60 s by default): after a heal it would
            // rejoin only that late.
            "-Dzookeeper.fastleader.minNotificationInterval=200".into(),
            "-Dzookeeper.fastleader.maxNotificationInterval=1000".into(),
            // Election connections to an unreachable peer give up after this long
            // (5 s by default), so a cut peer does not stall a whole election round.
            "-Dzookeeper.cnxTimeout=1000".into(),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info".into(),
            "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS".into(),
            "-cp".into(),
            format!("{}/*", self.libs.display()),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
            s.config.display().to_string(),
        ];
        LabProcess::spawn(
            &s.name,
            Spawn {
                program: &self.java,
                args,
                log: s.log.clone(),
                detach,
            },
        )
    }

    /// The knobs the verdicts depend on, for reports and `lab.json`.
    pub fn settings(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "system": "zookeeper",
            "version": ZOOKEEPER_VERSION,
            "servers": self.servers.len(),
            "tick_ms": c.tick_ms,
            "init_limit": c.init_limit,
            "sync_limit": c.sync_limit,
            "sync_timeout_ms": c.tick_ms * u64::from(c.sync_limit),
            "heap_mb": c.heap_mb,
            "clients": self.servers.iter().map(|s| (s.name.clone(), serde_json::Value::from(s.client.to_string()))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// `lab.json` before anything runs.
    pub fn initial_state(&self, api_url: Option<String>) -> LabState {
        LabState {
            system: "zookeeper".into(),
            started_at: now_rfc3339(),
            api_url,
            members: self
                .servers
                .iter()
                .map(|s| MemberRecord {
                    name: s.name.clone(),
                    // Clients talk to their member directly: a client is on its
                    // member's side of any cut.
                    client_url: s.client.to_string(),
                    direct_client_url: s.client.to_string(),
                    peer_url: s.quorum.to_string(),
                })
                .collect(),
            processes: Vec::new(),
            settings: self.settings(),
        }
    }

    /// (name, real client address) of every server, for observers and clients.
    pub fn clients(&self) -> Vec<(String, SocketAddr)> {
        self.servers
            .iter()
            .map(|s| (s.name.clone(), s.client))
            .collect()
    }
}

/// The directory with the ZooKeeper jars, checked to contain the server jar.
pub fn locate_libs(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    let dir = match explicit {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("RIFT_ZOOKEEPER_LIBS") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = PathBuf::from(".rift/zookeeper-libs");
                if cwd.is_dir() {
                    cwd
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rift/zookeeper-libs")
                }
            }
        },
    };
    let jar = format!("zookeeper-{ZOOKEEPER_VERSION}.jar");
    if !dir.join(&jar).is_file() {
        return Err(LabError::Config {
            field: "RIFT_ZOOKEEPER_LIBS".into(),
            value: dir.display().to_string(),
            reason: format!(
                "no {jar} there; run scripts/setup.sh (scripts/setup.d/35-zookeeper.sh)"
            ),
        });
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ZkPlan {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let server = |i: u16| ServerPlan {
            name: format!("zk{i}"),
            id: u32::from(i),
            quorum: a(i * 10),
            election: a(i * 10 + 1),
            direct_quorum: a(i * 10 + 2),
            direct_election: a(i * 10 + 3),
            client: a(i * 10 + 4),
            data: PathBuf::from(format!("/d/zk{i}")),
            config: PathBuf::from(format!("/d/zk{i}.cfg")),
            log: PathBuf::from(format!("/d/zk{i}.log")),
        };
        ZkPlan {
            config: ZkLabConfig::new(3, Path::new("/d")),
            servers: (1..=3).map(server).collect(),
            java: PathBuf::from("/usr/bin/java"),
            libs: PathBuf::from("/libs"),
            api_port: 99,
        }
    }

    #[test]
    fn each_server_binds_its_own_line_and_dials_the_others_through_rift() {
        let text = plan().server_config(1);
        assert!(
            text.contains("\nserver.1=127.0.0.1:10:11:participant\n"),
            "{text}"
        );
        assert!(
            text.contains("\nserver.2=0.0.0.0:22:23:participant\n"),
            "{text}"
        );
        assert!(
            text.contains("\nserver.3=127.0.0.1:30:31:participant\n"),
            "{text}"
        );
        assert!(text.contains("\nclientPort=24\n"), "{text}");
        assert!(text.contains("\nreconfigEnabled=false\n"), "{text}");
        assert!(text.contains("\nsyncLimit=5\n") && text.contains("\ntickTime=200\n"));
    }

    #[test]
    fn topology_routes_quorum_and_election_to_the_real_ports() {
        let t = plan().topology(None);
        let zk2 = &t.nodes[1];
        assert_eq!(zk2.name, "zk2");
        let names: Vec<_> = zk2.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [QUORUM_ENDPOINT, ELECTION_ENDPOINT]);
        assert_eq!(zk2.endpoints[0].upstream, "127.0.0.1:22");
        assert_eq!(zk2.endpoints[1].listen.port(), 21);
    }

    #[test]
    fn missing_jars_name_the_setup_script() {
        let text = locate_libs(Some(Path::new("/nonexistent/zk-libs")))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("/nonexistent/zk-libs") && text.contains("35-zookeeper.sh"),
            "{text}"
        );
        let mut c = ZkLabConfig::new(2, Path::new("/d"));
        assert!(
            ZkPlan::new(c.clone())
                .unwrap_err()
                .to_string()
                .contains("nodes")
        );
        c.nodes = 3;
        c.tick_ms = 5;
        assert!(ZkPlan::new(c).unwrap_err().to_string().contains("tick"));
    }
}
