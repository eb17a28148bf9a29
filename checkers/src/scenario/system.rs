//! The registry of systems a scenario, `rift scenario matrix` and the CLI can name in
//! `cluster.system`: one [`System`] per system, each a vertical folder of its own
//! (`crate::etcd`, `crate::kafka`: lab, observer, workload, checks, typed settings).
//! Nothing outside a system's folder matches on its name: callers look it up here.
//!
//! Adding a system: a folder with a type implementing [`System`] (and its
//! [`Cluster`]), and one line in [`REGISTRY`]. See `docs/architecture.md`.

use std::path::PathBuf;

use super::spec::ClusterSpec;
use super::{BoxFuture, Cluster, ScenarioError};
use crate::lab::versions::Release;

/// Where a started lab lives.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The lab's state directory (pid files, logs, data).
    pub state_dir: PathBuf,
    /// First port to allocate from; random when unset.
    pub base_port: Option<u16>,
}

/// An already running cluster behind an already running `rift proxy`.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub api_url: String,
    /// node name -> the member's client URL (direct, not through rift).
    pub endpoints: Vec<(String, String)>,
}

/// One system rift can test: how to start a cluster of it behind rift (or attach to
/// one), which releases it offers, and which checker kinds its scenarios may use.
pub trait System: Sync {
    /// The `cluster.system` name.
    fn name(&self) -> &'static str;
    /// The `[[checker]]` kinds its clusters build.
    fn checkers(&self) -> &'static [&'static str];
    /// The releases a lab can run, oldest first (the last is the default).
    fn releases(&self) -> &'static [Release];
    /// Starts a lab of `spec` behind a fresh rift proxy.
    fn start<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a StartOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>>;
    /// Attaches to members already behind a running `rift proxy`.
    fn attach<'a>(
        &'a self,
        spec: &'a ClusterSpec,
        origin: &'a str,
        options: &'a AttachOptions,
    ) -> BoxFuture<'a, Result<Box<dyn Cluster>, ScenarioError>>;
}

/// Every system, in the order the CLI lists them.
pub static REGISTRY: &[&dyn System] = &[
    &crate::etcd::system::Etcd,
    &crate::kafka::system::Kafka,
    &crate::zookeeper::system::ZooKeeper,
    &crate::mariadb::system::Mariadb,
    &crate::cassandra::system::Cassandra,
];

/// The names of every registered system.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.name()).collect()
}

/// The system called `name`, or an error naming `origin`, the field and the known ones.
pub fn find(name: &str, origin: &str) -> Result<&'static dyn System, ScenarioError> {
    REGISTRY
        .iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| ScenarioError::Field {
            origin: origin.to_string(),
            field: "cluster.system".into(),
            value: name.to_string(),
            reason: format!("unknown system (known: {})", names().join(", ")),
        })
}

pub async fn start_cluster(
    spec: &ClusterSpec,
    origin: &str,
    options: &StartOptions,
) -> Result<Box<dyn Cluster>, ScenarioError> {
    find(&spec.system, origin)?
        .start(spec, origin, options)
        .await
}

pub async fn attach_cluster(
    spec: &ClusterSpec,
    origin: &str,
    options: &AttachOptions,
) -> Result<Box<dyn Cluster>, ScenarioError> {
    find(&spec.system, origin)?
        .attach(spec, origin, options)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_is_found_by_its_name_and_unknown_ones_are_named() {
        for s in REGISTRY {
            assert_eq!(find(s.name(), "f").unwrap().name(), s.name());
            assert!(!s.checkers().is_empty() && !s.releases().is_empty());
        }
        let Err(e) = find("riak", "f.toml") else {
            panic!("riak is not registered")
        };
        let e = e.to_string();
        assert!(
            e.contains("f.toml") && e.contains("riak") && e.contains("etcd, kafka"),
            "{e}"
        );
    }
}
