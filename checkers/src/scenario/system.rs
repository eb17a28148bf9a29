//! The registry of systems a scenario can name in `cluster.system`. Adding a system
//! (Kafka) means one arm in each function below, returning its [`Cluster`].

use std::path::PathBuf;

use super::spec::ClusterSpec;
use super::{Cluster, ScenarioError};

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

pub const SYSTEMS: &[&str] = &["etcd", "kafka"];

fn unknown(spec: &ClusterSpec, origin: &str) -> ScenarioError {
    ScenarioError::Field {
        origin: origin.to_string(),
        field: "cluster.system".into(),
        value: spec.system.clone(),
        reason: format!("unknown system (known: {})", SYSTEMS.join(", ")),
    }
}

pub async fn start_cluster(
    spec: &ClusterSpec,
    origin: &str,
    options: &StartOptions,
) -> Result<Box<dyn Cluster>, ScenarioError> {
    match spec.system.as_str() {
        "etcd" => Ok(Box::new(
            crate::etcd::system::EtcdCluster::start(spec, origin, options).await?,
        )),
        "kafka" => Ok(Box::new(
            crate::kafka::system::KafkaCluster::start(spec, origin, options).await?,
        )),
        _ => Err(unknown(spec, origin)),
    }
}

pub async fn attach_cluster(
    spec: &ClusterSpec,
    origin: &str,
    options: &AttachOptions,
) -> Result<Box<dyn Cluster>, ScenarioError> {
    match spec.system.as_str() {
        "etcd" => Ok(Box::new(
            crate::etcd::system::EtcdCluster::attach(spec, origin, options).await?,
        )),
        "kafka" => Ok(Box::new(
            crate::kafka::system::KafkaCluster::attach(spec, origin, options).await?,
        )),
        _ => Err(unknown(spec, origin)),
    }
}
