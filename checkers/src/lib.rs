//! rift's cluster side: local labs of real members behind rift, observers and checkers
//! that judge what the real cluster did, the scenario runner that ties them to a fault
//! timeline, and the reports it writes.
//!
//! - [`lab`]: start/stop real members on loopback with rift on every link.
//! - [`capmap`]: the CAP map measured from histories (`rift cap-map`).
//! - [`capture`]: packet captures and the no-crossing judgement.
//! - [`cassandra`]: the Cassandra lab, observer, register workload and checks.
//! - [`etcd`]: etcd observers, workload, checkers, and etcd as a scenario cluster.
//! - [`kafka`]: Kafka observers and checkers, and Kafka as a scenario cluster.
//! - [`register`]: the register workload and linearizable checker, shared by systems.
//! - [`mariadb`]: MariaDB primary/replica replication: lab, `promote`, workload, checks.
//! - [`scenario`]: the scenario format, runner, nemesis and the plug-in traits.
//! - [`report`]: verdict table, JSON, JUnit XML and SVG timeline.
//! - [`pacelc`]: what each operation class pays for an injected inter-member delay.
//! - [`zookeeper`]: the ZooKeeper lab, observer, register client, and ZooKeeper as a
//!   scenario cluster.
//! - [`watch`]: cluster gauges (leader, term, ISR size) for `rift watch`.

pub mod capmap;
pub mod capture;
pub mod cassandra;
pub mod etcd;
pub mod kafka;
pub mod lab;
pub mod mariadb;
pub mod pacelc;
pub mod register;
pub mod report;
pub mod scenario;
pub mod watch;
pub mod zookeeper;
