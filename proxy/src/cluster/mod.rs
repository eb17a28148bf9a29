//! rift across hosts: `rift agent`s own the listeners of the members they host and
//! identify peers by source address, as a proxy does; one `rift controller` holds the
//! link matrix and drives every agent.
//!
//! A change of the matrix is versioned and made in two phases: the controller sends
//! the new version to every agent (`prepare`: each checks and compiles it, the old one
//! stays in force), and only when all of them hold it does it tell them all to switch
//! (`commit`, sent to every agent at once). If any agent cannot be reached no agent
//! switches, the request that made the change answers 503 naming which agent holds
//! which version, and the controller keeps retrying until they all hold the newest
//! version. An agent that starts fetches the last committed version from the
//! controller before it accepts a connection.
//!
//! - [`config`]: the controller's topology file (agents and the nodes they host).
//! - [`controller`]: the controller: the one control plane, two-phase distribution,
//!   skew records, the API (the proxy's API plus `/cluster`).
//! - [`agent`]: an agent: start-up fetch, the prepare/commit API.
//! - [`peer`]: the HTTP client both use to talk to each other.

pub mod agent;
pub mod config;
pub mod controller;
pub mod peer;
mod skew;
mod telemetry;
pub mod tls;

use serde::{Deserialize, Serialize};

use crate::api::SourceRequest;
use crate::control::ActiveFault;
use crate::topology::Topology;

pub use config::{AgentConfig, ClusterTopology};
pub use skew::{SkewSummary, SwitchRecord};

/// One version of the matrix as the controller distributes it: the faults in force,
/// in the order they were applied (a later rule overrides an earlier one). `epoch`
/// tells a restarted controller's versions from its predecessor's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixVersion {
    pub epoch: u64,
    pub version: u64,
    pub faults: Vec<ActiveFault>,
}

/// Body of an agent's `POST /cluster/commit`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub epoch: u64,
    pub version: u64,
}

/// An agent's answer to a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReply {
    pub epoch: u64,
    pub version: u64,
    /// When the agent published the new matrix to its relays, on its own clock.
    pub switched_at_unix_ns: u64,
}

/// An agent's `GET /cluster/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub name: String,
    pub epoch: u64,
    pub version: u64,
    /// A prepared version not yet committed.
    pub prepared: Option<u64>,
    pub switched_at_unix_ns: Option<u64>,
}

/// What an agent fetches from the controller when it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentBootstrap {
    pub agent: AgentConfig,
    /// Every node (for identities and source addresses); the agent listens for its own.
    pub topology: Topology,
    /// The last version the controller committed (what the other agents hold).
    pub state: MatrixVersion,
    /// Sources registered at the controller at run time.
    pub sources: Vec<SourceRequest>,
}

/// One agent as the controller sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub name: String,
    pub api: String,
    pub nodes: Vec<String>,
    /// Answered the last request or probe.
    pub up: bool,
    /// The version it last confirmed holding (None: never heard of, or another epoch).
    pub version: Option<u64>,
    pub last_error: Option<String>,
}

/// The cluster part of the controller's `GET /status` (and `GET /cluster`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub epoch: u64,
    /// The newest version (the controller's faults).
    pub version: u64,
    /// The last version every agent was told to switch to.
    pub committed: u64,
    /// Every agent holds `version`.
    pub converged: bool,
    pub agents: Vec<AgentStatus>,
    /// The last changes, oldest first, with the skew between the first and last agent
    /// switching.
    pub changes: Vec<SwitchRecord>,
    pub skew: SkewSummary,
}

/// Requests that change faults: answered by the controller after distribution, refused
/// by agents.
pub(crate) fn is_change(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    (method == Method::POST
        && matches!(
            path,
            "/faults" | "/partition" | "/isolate" | "/apply" | "/heal"
        ))
        || (method == Method::DELETE && path.starts_with("/faults/"))
}

/// Unix time in nanoseconds (0 before 1970, which a running host never is).
pub(crate) fn unix_ns(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
