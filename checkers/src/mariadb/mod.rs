//! MariaDB (MySQL-compatible) primary/replica replication behind rift: a lab of
//! `mariadbd` processes (Debian's 10.11) whose replication streams cross rift, the
//! `promote` failover action, the poller's observation, the register workload and
//! checks over the history. See docs/mariadb.md.

pub mod checks;
pub mod client;
pub mod lab;
pub mod observer;
pub mod plan;
pub mod replication;
pub mod system;
pub mod workload;
