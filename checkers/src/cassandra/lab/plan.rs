//! What a Cassandra lab is made of, before anything runs: addresses and ports, rift's
//! topology, every node's `cassandra.yaml`, and the JVM command line. Shared by the
//! in-process lab ([`super::CassandraLab`]) and the detached one that `rift lab up
//! cassandra` leaves running ([`super::detached`]).
//!
//! Cassandra uses one `storage_port` and one `native_transport_port` cluster-wide and
//! names its peers by IP address, so nodes cannot be told apart by port as etcd members
//! or Kafka brokers are. Each node therefore gets two loopback addresses:
//! - its real one, `127.0.<net>.<i>`: `listen_address` and `rpc_address`, where the
//!   JVM binds its storage and native ports;
//! - rift's one, `127.0.<net+1>.<i>`: `broadcast_address` and `broadcast_rpc_address`,
//!   what the node gossips and what peers (and drivers following `system.peers`) dial.
//!   rift listens there on the same two ports and relays to the real address.
//!
//! Every seed is a rift address, so every internode dial crosses rift. Cassandra 5.0
//! does not bind its outbound internode sockets to `listen_address` (they leave from
//! 127.0.0.1, seen with `ss -tnp` in this lab), so the source of a connection cannot be
//! recognised by IP: each JVM's PID is registered as its node's source instead, as for
//! Kafka.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_proxy::topology::{Endpoint, Node, Topology};

use crate::lab::LabError;
use crate::lab::kafka::find_java;
use crate::lab::process::{LabProcess, Spawn};

/// Endpoint names of every node in the topology.
pub const STORAGE_ENDPOINT: &str = "storage";
pub const NATIVE_ENDPOINT: &str = "native";

/// The release the setup script resolves (compose/cassandra-lab/pom.xml).
pub const CASSANDRA_VERSION: &str = "5.0.9";

/// Server-side request timeouts. The workload's client deadline is above them, so a
/// request to a coordinator that cannot reach enough replicas ends in Cassandra's own
/// named answer (WriteTimeout, ReadTimeout, Unavailable), not a client deadline.
pub const REQUEST_TIMEOUT_MS: u64 = 2_000;

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct CassandraLabOptions {
    /// Directory holding the jars (default: `$RIFT_CASSANDRA_LIBS`, then
    /// `.rift/cassandra-libs` in the working directory or the source checkout).
    pub libs_dir: Option<PathBuf>,
    /// Where configs, data and logs go (default: a fresh directory under the temp dir).
    pub work_dir: Option<PathBuf>,
    /// JVM heap per node in MiB; the machine has 2 cores and 3 JVMs.
    pub heap_mb: u32,
    /// Third octet of the nodes' real addresses; rift's are on the next one.
    pub net: u8,
    /// First port to try for the shared storage and native ports.
    pub base_port: Option<u16>,
    /// How long the whole cluster may take to come up.
    pub start_timeout: Duration,
    /// Keep the work directory after a clean shutdown.
    pub keep_work_dir: bool,
}

impl Default for CassandraLabOptions {
    fn default() -> Self {
        Self {
            libs_dir: None,
            work_dir: None,
            heap_mb: 512,
            net: 61,
            base_port: None,
            start_timeout: Duration::from_secs(150),
            keep_work_dir: std::env::var_os("RIFT_KEEP_LAB").is_some(),
        }
    }
}

/// One node: its name, addresses (real and rift's) and initial token.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub name: String,
    /// The real address (listen_address, rpc_address).
    pub ip: Ipv4Addr,
    /// rift's address for this node (broadcast_address, broadcast_rpc_address).
    pub rift_ip: Ipv4Addr,
    pub token: i64,
}

/// A planned lab.
#[derive(Debug, Clone)]
pub struct CassandraPlan {
    pub nodes: Vec<NodePlan>,
    pub storage_port: u16,
    pub native_port: u16,
    pub work_dir: PathBuf,
    pub java: PathBuf,
    pub libs: PathBuf,
    pub heap_mb: u32,
}

impl NodePlan {
    pub fn storage(&self, plan: &CassandraPlan) -> SocketAddr {
        SocketAddr::from((self.ip, plan.storage_port))
    }
    pub fn native(&self, plan: &CassandraPlan) -> SocketAddr {
        SocketAddr::from((self.ip, plan.native_port))
    }
    pub fn rift_storage(&self, plan: &CassandraPlan) -> SocketAddr {
        SocketAddr::from((self.rift_ip, plan.storage_port))
    }
    pub fn rift_native(&self, plan: &CassandraPlan) -> SocketAddr {
        SocketAddr::from((self.rift_ip, plan.native_port))
    }
}

/// Evenly spread Murmur3 tokens, one per node: with `num_tokens: 1` and
/// `initial_token` set, every node owns its range from the start and none streams.
pub fn initial_tokens(nodes: usize) -> Vec<i64> {
    let step = (1u128 << 64) / nodes as u128;
    (0..nodes)
        .map(|i| (i64::MIN as i128 + (step * i as u128) as i128) as i64)
        .collect()
}

impl CassandraPlan {
    /// Checks Java and the jars, picks the addresses and two ports free on all of
    /// them. Nothing is written yet.
    pub fn new(nodes: usize, opts: &CassandraLabOptions) -> Result<Self, LabError> {
        if !(3..=5).contains(&nodes) {
            return Err(LabError::Config {
                field: "nodes".into(),
                value: nodes.to_string(),
                reason: "a Cassandra lab has 3 to 5 nodes".into(),
            });
        }
        if !(1..=250).contains(&opts.net) {
            return Err(LabError::Config {
                field: "net".into(),
                value: opts.net.to_string(),
                reason: "the third octet of 127.0.<net>.<i>, between 1 and 250".into(),
            });
        }
        if !(128..=8192).contains(&opts.heap_mb) {
            return Err(LabError::Config {
                field: "heap_mb".into(),
                value: opts.heap_mb.to_string(),
                reason: "between 128 and 8192 MiB".into(),
            });
        }
        let java = find_java()?;
        let libs = locate_libs(opts.libs_dir.as_deref())?;
        let work_dir = match &opts.work_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!(
                "rift-cassandra-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            )),
        };
        // The JVM gets its config as a file:// URL, which must be absolute.
        let work_dir = std::path::absolute(&work_dir).map_err(|e| LabError::io(&work_dir, e))?;
        let tokens = initial_tokens(nodes);
        let plans: Vec<NodePlan> = (0..nodes)
            .map(|i| NodePlan {
                name: format!("cass{}", i + 1),
                ip: Ipv4Addr::new(127, 0, opts.net, i as u8 + 1),
                rift_ip: Ipv4Addr::new(127, 0, opts.net + 1, i as u8 + 1),
                token: tokens[i],
            })
            .collect();
        let ips: Vec<Ipv4Addr> = plans.iter().flat_map(|n| [n.ip, n.rift_ip]).collect();
        let ports = shared_free_ports(&ips, opts.base_port, 2)?;
        Ok(CassandraPlan {
            nodes: plans,
            storage_port: ports[0],
            native_port: ports[1],
            work_dir,
            java,
            libs,
            heap_mb: opts.heap_mb,
        })
    }

    /// rift's topology: one node per Cassandra node with `storage` and `native`
    /// endpoints on its rift address, relaying to its real address.
    pub fn topology(&self) -> Topology {
        let endpoint = |name: &str, listen: SocketAddr, upstream: SocketAddr| Endpoint {
            name: name.to_string(),
            listen,
            upstream: upstream.to_string(),
        };
        Topology {
            api: None,
            nodes: self
                .nodes
                .iter()
                .map(|n| Node {
                    name: n.name.clone(),
                    source_ips: Vec::new(),
                    source_pids: Vec::new(),
                    source_hosts: Vec::new(),
                    region: None,
                    endpoints: vec![
                        endpoint(STORAGE_ENDPOINT, n.rift_storage(self), n.storage(self)),
                        endpoint(NATIVE_ENDPOINT, n.rift_native(self), n.native(self)),
                    ],
                })
                .collect(),
        }
    }

    /// The directory of node `n`'s files.
    pub fn node_dir(&self, n: &NodePlan) -> PathBuf {
        self.work_dir.join(&n.name)
    }

    /// Writes every node's `cassandra.yaml`, the rack file and the logging config.
    pub fn write_configs(&self) -> Result<(), LabError> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| LabError::io(&self.work_dir, e))?;
        let write = |path: PathBuf, text: String| {
            std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))
        };
        write(self.work_dir.join("logback.xml"), LOGBACK.to_string())?;
        write(
            self.work_dir.join("cassandra-rackdc.properties"),
            "dc=dc1\nrack=rack1\n".to_string(),
        )?;
        let seeds = self
            .nodes
            .iter()
            .map(|n| n.rift_storage(self).to_string())
            .collect::<Vec<_>>()
            .join(",");
        for n in &self.nodes {
            let dir = self.node_dir(n);
            std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
            write(dir.join("cassandra.yaml"), self.yaml(n, &seeds))?;
        }
        Ok(())
    }

    /// One node's `cassandra.yaml`: real addresses to bind, rift's to broadcast, the
    /// token, small thread pools and the lab's timeouts.
    pub fn yaml(&self, n: &NodePlan, seeds: &str) -> String {
        let dir = self.node_dir(n);
        let d = |sub: &str| dir.join(sub).display().to_string();
        let t = REQUEST_TIMEOUT_MS;
        format!(
            "cluster_name: rift-lab\n\
             num_tokens: 1\n\
             initial_token: {token}\n\
             partitioner: org.apache.cassandra.dht.Murmur3Partitioner\n\
             data_file_directories: [{data}]\n\
             commitlog_directory: {commitlog}\n\
             saved_caches_directory: {caches}\n\
             hints_directory: {hints}\n\
             cdc_raw_directory: {cdc}\n\
             commitlog_sync: periodic\n\
             commitlog_sync_period: 10000ms\n\
             seed_provider:\n  \
               - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    \
                 parameters:\n      \
                   - seeds: \"{seeds}\"\n\
             listen_address: {ip}\n\
             broadcast_address: {rift_ip}\n\
             rpc_address: {ip}\n\
             broadcast_rpc_address: {rift_ip}\n\
             storage_port: {storage}\n\
             native_transport_port: {native}\n\
             start_native_transport: true\n\
             auto_bootstrap: false\n\
             endpoint_snitch: GossipingPropertyFileSnitch\n\
             dynamic_snitch: false\n\
             hinted_handoff_enabled: true\n\
             max_hint_window: 1h\n\
             hints_flush_period: 1000ms\n\
             read_request_timeout: {t}ms\n\
             range_request_timeout: {t}ms\n\
             write_request_timeout: {t}ms\n\
             counter_write_request_timeout: {t}ms\n\
             truncate_request_timeout: 10000ms\n\
             request_timeout: {t}ms\n\
             cas_contention_timeout: 1000ms\n\
             concurrent_reads: 4\n\
             concurrent_writes: 4\n\
             concurrent_counter_writes: 2\n\
             concurrent_materialized_view_writes: 2\n\
             concurrent_compactors: 1\n\
             memtable_flush_writers: 1\n\
             native_transport_max_threads: 16\n\
             key_cache_size: 8MiB\n\
             counter_cache_size: 1MiB\n\
             prepared_statements_cache_size: 4MiB\n\
             memtable_heap_space: 64MiB\n\
             memtable_offheap_space: 64MiB\n",
            token = n.token,
            data = d("data"),
            commitlog = d("commitlog"),
            caches = d("caches"),
            hints = d("hints"),
            cdc = d("cdc"),
            ip = n.ip,
            rift_ip = n.rift_ip,
            storage = self.storage_port,
            native = self.native_port,
        )
    }

    /// The JVM command line of node `n`: a small heap, the serial collector and the
    /// client compiler (3 JVMs share 2 cores), the Java 17 module flags of Cassandra's
    /// `conf/jvm17-server.options`, and properties that skip the waits a production
    /// start makes for gossip to settle.
    pub fn jvm_args(&self, n: &NodePlan) -> Vec<String> {
        let dir = self.node_dir(n);
        let mut args = vec![
            format!("-Xms{}m", self.heap_mb),
            format!("-Xmx{}m", self.heap_mb),
            "-Xss512k".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-XX:CICompilerCount=1".into(),
            "-XX:ActiveProcessorCount=2".into(),
            "-XX:MaxDirectMemorySize=256m".into(),
            "-Djava.net.preferIPv4Stack=true".into(),
            "-Djava.awt.headless=true".into(),
            "-Djdk.attach.allowAttachSelf=true".into(),
            "-Dio.netty.tryReflectionSetAccessible=true".into(),
            "-Dcassandra-foreground=yes".into(),
            format!(
                "-Dcassandra.config=file://{}",
                dir.join("cassandra.yaml").display()
            ),
            format!(
                "-Dcassandra-rackdc.properties=file://{}",
                self.work_dir.join("cassandra-rackdc.properties").display()
            ),
            format!("-Dcassandra.storagedir={}", dir.display()),
            format!("-Dcassandra.logdir={}", dir.display()),
            format!(
                "-Dlogback.configurationFile={}",
                self.work_dir.join("logback.xml").display()
            ),
            // Seeds never bootstrap and the tokens are given: nothing to wait for.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0".into(),
            "-Dcassandra.ring_delay_ms=1000".into(),
        ];
        for (flag, what) in JPMS {
            args.push(flag.to_string());
            args.push(what.to_string());
        }
        args.push("-cp".into());
        args.push(format!("{}/*", self.libs.display()));
        args.push("org.apache.cassandra.service.CassandraDaemon".into());
        args
    }

    /// Spawns node `n`'s JVM directly (its PID owns its sockets), logging to
    /// `<work_dir>/<name>.log`.
    pub fn spawn_node(
        &self,
        n: &NodePlan,
        detach: bool,
    ) -> Result<(LabProcess, PathBuf), LabError> {
        let log = self.work_dir.join(format!("{}.log", n.name));
        let process = LabProcess::spawn(
            &n.name,
            Spawn {
                program: &self.java,
                args: self.jvm_args(n),
                log: log.clone(),
                detach,
            },
        )?;
        Ok((process, log))
    }

    /// `(name, real native address)` of every node: what observers and the workload
    /// connect to, so a fault never cuts them from their coordinator.
    pub fn direct_natives(&self) -> Vec<(String, SocketAddr)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.native(self)))
            .collect()
    }

    /// `(rift address, name)` of every node: how gossip names them.
    pub fn rift_addresses(&self) -> Vec<(std::net::IpAddr, String)> {
        self.nodes
            .iter()
            .map(|n| (n.rift_ip.into(), n.name.clone()))
            .collect()
    }

    /// The knobs the verdicts depend on, for reports and `lab.json`.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "system": "cassandra",
            "nodes": self.nodes.len(),
            "version": CASSANDRA_VERSION,
            "heap_mb": self.heap_mb,
            "storage_port": self.storage_port,
            "native_port": self.native_port,
            "num_tokens": 1,
            "tokens": self.nodes.iter().map(|n| n.token.to_string()).collect::<Vec<_>>(),
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "cas_contention_timeout_ms": 1000,
            "hints_flush_period_ms": 1000,
            "snitch": "GossipingPropertyFileSnitch (dc1/rack1), dynamic_snitch off",
            "addresses": self.nodes.iter().map(|n| serde_json::json!({
                "node": n.name, "listen": n.ip.to_string(), "broadcast": n.rift_ip.to_string(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Two or more ports free on every one of `ips` (Cassandra's ports are the same on
/// every node), from `base` upwards or from a random start in 20000..29000.
pub fn shared_free_ports(
    ips: &[Ipv4Addr],
    base: Option<u16>,
    count: usize,
) -> Result<Vec<u16>, LabError> {
    let start = base.unwrap_or_else(|| 20_000 + rand::random::<u16>() % 9_000);
    let mut out = Vec::with_capacity(count);
    let mut port = u32::from(start);
    while out.len() < count {
        if port > 60_000 {
            return Err(LabError::Ports(format!(
                "no {count} ports at or above {start} free on all of {ips:?}"
            )));
        }
        let p = port as u16;
        port += 1;
        if ips
            .iter()
            .all(|ip| TcpListener::bind(SocketAddrV4::new(*ip, p)).is_ok())
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// The directory with the Cassandra jars, checked to contain `cassandra-all`.
pub fn locate_libs(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    let dir = match explicit {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("RIFT_CASSANDRA_LIBS") {
            Some(d) => PathBuf::from(d),
            None => {
                let cwd = PathBuf::from(".rift/cassandra-libs");
                if cwd.is_dir() {
                    cwd
                } else {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rift/cassandra-libs")
                }
            }
        },
    };
    let jar = format!("cassandra-all-{CASSANDRA_VERSION}.jar");
    if !dir.join(&jar).is_file() {
        return Err(LabError::Config {
            field: "RIFT_CASSANDRA_LIBS".into(),
            value: dir.display().to_string(),
            reason: format!(
                "no {jar} there; run scripts/setup.sh (scripts/setup.d/36-cassandra.sh)"
            ),
        });
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// Java 17 module flags from Cassandra's `conf/jvm17-server.options`.
const JPMS: &[(&str, &str)] = &[
    ("--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED"),
    (
        "--add-exports",
        "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    ),
    ("--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED"),
    ("--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED"),
    ("--add-exports", "java.sql/java.sql=ALL-UNNAMED"),
    ("--add-exports", "java.base/java.lang.ref=ALL-UNNAMED"),
    ("--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED"),
    (
        "--add-exports",
        "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    ),
    ("--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED"),
    ("--add-opens", "java.base/java.lang.module=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED"),
    ("--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED"),
    (
        "--add-opens",
        "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    ),
    ("--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED"),
    ("--add-opens", "java.base/java.io=ALL-UNNAMED"),
    ("--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED"),
    (
        "--add-opens",
        "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    ),
    ("--add-opens", "java.base/java.lang=ALL-UNNAMED"),
    ("--add-opens", "java.base/java.util=ALL-UNNAMED"),
];

/// Cassandra ships logback without a config; without one logback logs DEBUG.
const LOGBACK: &str = r#"<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{30} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_spread_evenly_and_start_at_the_minimum() {
        let t = initial_tokens(3);
        assert_eq!(t[0], i64::MIN);
        assert_eq!(t[1], -3_074_457_345_618_258_603);
        assert_eq!(t[2], 3_074_457_345_618_258_602);
    }

    #[test]
    fn ports_are_free_on_every_address() {
        let ips = [Ipv4Addr::new(127, 0, 77, 1), Ipv4Addr::new(127, 0, 78, 1)];
        let held = TcpListener::bind("127.0.78.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let ports = shared_free_ports(&ips, Some(busy), 2).unwrap();
        assert!(!ports.contains(&busy), "{ports:?} includes the busy {busy}");
        assert_ne!(ports[0], ports[1]);
    }

    #[test]
    fn missing_jars_name_the_setup_script() {
        let err = locate_libs(Some(Path::new("/nonexistent/cassandra-libs"))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/cassandra-libs") && text.contains("36-cassandra.sh"),
            "{text}"
        );
    }
}
