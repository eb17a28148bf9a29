//! The control plane: the list of active faults, compiled into a new link-matrix
//! version on every change and published to relays without waiting on any of them.
//! Auto-heal timers, source registration and status snapshots live here too.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::events::EventLog;
use crate::fault::{Fault, FaultRequest, LinkRule, partition_rules};
use crate::identity::SourceRegistry;
use crate::matrix::{Identities, LinkMatrix, MatrixWatch};
use crate::metrics;
use crate::profile::{Bindings, Profile, ProfileLibrary, validate_groups};
use crate::topology::Topology;

pub mod limits;
mod persist;
mod replica;
mod status;
pub(crate) mod sync;

pub use persist::{PersistError, Restored, StatePath};
pub use replica::PreparedVersion;
pub use status::{
    ConnectionEntry, ConnectionGroup, ConnectionSockets, ConnectionTable, LinkState, SourceInfo,
    Status,
};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
}

/// A fault currently in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveFault {
    pub id: u64,
    pub label: String,
    pub summary: String,
    pub rules: Vec<LinkRule>,
    pub applied_at: String,
    pub expires_at: Option<String>,
}

struct State {
    active: Vec<(ActiveFault, Option<tokio::task::AbortHandle>)>,
    next_id: u64,
    version: u64,
}

struct Inner {
    topology: Arc<Topology>,
    ids: Identities,
    state: Mutex<State>,
    matrix: watch::Sender<Arc<LinkMatrix>>,
    events: EventLog,
    sources: Arc<SourceRegistry>,
    profiles: ProfileLibrary,
    connections: Arc<ConnectionTable>,
    runtime: tokio::runtime::Handle,
    /// Set by [`Control::restore`]; every change is then written there.
    state_path: OnceLock<StatePath>,
}

/// Cheap, cloneable handle on the control plane.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

/// Parameters shared by the partition-shaped requests.
#[derive(Debug, Clone, Default)]
pub struct CutOptions {
    pub fault: Option<Fault>,
    pub endpoints: Vec<String>,
    pub duration: Option<Duration>,
    pub label: Option<String>,
}

impl Control {
    pub fn new(
        topology: Arc<Topology>,
        events: EventLog,
        sources: Arc<SourceRegistry>,
        profiles: ProfileLibrary,
        connections: Arc<ConnectionTable>,
    ) -> Control {
        let ids = Identities::new(&topology);
        let healthy = LinkMatrix::healthy(&ids);
        metrics::publish_link_states(&ids, &healthy);
        let (matrix, _) = watch::channel(Arc::new(healthy));
        Control {
            inner: Arc::new(Inner {
                topology,
                ids,
                state: Mutex::new(State {
                    active: Vec::new(),
                    next_id: 1,
                    version: 0,
                }),
                matrix,
                events,
                sources,
                profiles,
                connections,
                runtime: tokio::runtime::Handle::current(),
                state_path: OnceLock::new(),
            }),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn identities(&self) -> &Identities {
        &self.inner.ids
    }

    pub fn sources(&self) -> &SourceRegistry {
        &self.inner.sources
    }

    pub fn profiles(&self) -> &ProfileLibrary {
        &self.inner.profiles
    }

    pub fn connections(&self) -> &Arc<ConnectionTable> {
        &self.inner.connections
    }

    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    /// A receiver of link-matrix versions, for relays.
    pub fn watch(&self) -> MatrixWatch {
        self.inner.matrix.subscribe()
    }

    /// The link matrix in force now.
    pub fn matrix(&self) -> Arc<LinkMatrix> {
        self.inner.matrix.borrow().clone()
    }

    /// Adds a labelled set of rules on top of the faults already in force.
    pub fn apply(&self, request: FaultRequest) -> Result<ActiveFault, ControlError> {
        self.apply_with_summary(request, None)
    }

    fn apply_with_summary(
        &self,
        request: FaultRequest,
        summary: Option<String>,
    ) -> Result<ActiveFault, ControlError> {
        if request.rules.is_empty() {
            return Err(ControlError::Invalid(
                "rules: at least one rule is required".into(),
            ));
        }
        limits::check_duration("duration", request.duration).map_err(ControlError::Invalid)?;
        limits::check_rules(&request.rules).map_err(ControlError::Invalid)?;
        LinkMatrix::validate(&self.inner.ids, &request.rules)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let now = SystemTime::now();
        let applied_at = limits::rfc3339(now).unwrap_or_default();
        let expires_at = match request.duration {
            Some(d) => Some(
                now.checked_add(d)
                    .and_then(limits::rfc3339)
                    .ok_or_else(|| {
                        ControlError::Invalid(format!(
                            "duration: {:?}: the expiry time cannot be represented",
                            humantime::format_duration(d).to_string()
                        ))
                    })?,
            ),
            None => None,
        };
        let summary = summary.unwrap_or_else(|| describe_rules(&request.rules));
        // Everything that can fail is done before the lock is taken, and what follows
        // under it cannot panic: a bad request leaves the state as it found it.
        let mut state = sync::lock(&self.inner.state);
        let id = state.next_id;
        let fault = ActiveFault {
            id,
            label: request.label.clone(),
            summary,
            rules: request.rules,
            applied_at,
            expires_at,
        };
        let matrix = self.compile(
            state.version + 1,
            state
                .active
                .iter()
                .map(|(f, _)| f.rules.as_slice())
                .chain([fault.rules.as_slice()]),
        )?;
        state.next_id += 1;
        let expiry = request.duration.map(|d| self.expire_after(id, d));
        state.active.push((fault.clone(), expiry));
        self.install(&mut state, matrix);
        drop(state);
        metrics::fault_applied(&fault.label);
        self.inner.events.record(
            "apply",
            json!({"id": id, "label": fault.label, "summary": fault.summary, "rules": fault.rules, "expires_at": fault.expires_at}),
        );
        tracing::info!(id, label = %fault.label, summary = %fault.summary, "fault applied");
        Ok(fault)
    }

    /// Cuts every pair across `groups` (both directions).
    pub fn partition(
        &self,
        groups: Vec<Vec<String>>,
        options: CutOptions,
    ) -> Result<ActiveFault, ControlError> {
        validate_groups(&groups, &self.inner.topology).map_err(ControlError::Invalid)?;
        let fault = options.fault.unwrap_or(Fault::Hold);
        let rules = partition_rules(&groups, &fault, &options.endpoints);
        let summary = groups
            .iter()
            .map(|g| g.join(","))
            .collect::<Vec<_>>()
            .join(" | ");
        let label = options.label.unwrap_or_else(|| "partition".into());
        self.apply_with_summary(
            FaultRequest {
                label,
                rules,
                duration: options.duration,
            },
            Some(summary),
        )
    }

    /// Cuts one node from every other node (both directions).
    pub fn isolate(&self, node: &str, options: CutOptions) -> Result<ActiveFault, ControlError> {
        let nodes = self.inner.topology.node_names();
        if !nodes.iter().any(|n| n == node) {
            return Err(ControlError::Invalid(format!(
                "node: {node:?}: not a node ({})",
                nodes.join(", ")
            )));
        }
        let others: Vec<String> = nodes.into_iter().filter(|n| n != node).collect();
        let label = options.label.clone().unwrap_or_else(|| "isolate".into());
        self.partition(
            vec![others, vec![node.to_string()]],
            CutOptions {
                label: Some(label),
                ..options
            },
        )
    }

    /// Resolves a profile (by name, or given) against the topology and applies it.
    pub fn apply_profile(
        &self,
        profile: &Profile,
        bindings: &Bindings,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ControlError> {
        let resolution = profile
            .resolve(&self.inner.topology, bindings)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let request = FaultRequest {
            label: profile.name.clone(),
            rules: resolution.rules,
            duration,
        };
        self.apply_with_summary(request, Some(resolution.summary))
    }

    pub fn apply_profile_named(
        &self,
        name: &str,
        bindings: &Bindings,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ControlError> {
        let profile = self
            .inner
            .profiles
            .get(name)
            .map_err(|e| ControlError::NotFound(e.to_string()))?
            .clone();
        self.apply_profile(&profile, bindings, duration)
    }

    /// Removes every fault. Idempotent: healing a healthy proxy is fine.
    pub fn heal(&self) -> usize {
        let mut state = sync::lock(&self.inner.state);
        let healed: Vec<u64> = state.active.iter().map(|(f, _)| f.id).collect();
        for (_, expiry) in state.active.drain(..) {
            if let Some(handle) = expiry {
                handle.abort();
            }
        }
        self.publish(&mut state);
        drop(state);
        self.inner.events.record("heal", json!({"healed": healed}));
        tracing::info!(healed = healed.len(), "healed");
        healed.len()
    }

    /// Removes one fault by id.
    pub fn heal_fault(&self, id: u64) -> Result<ActiveFault, ControlError> {
        let removed = self
            .remove(id)
            .ok_or_else(|| ControlError::NotFound(format!("fault {id} is not active")))?;
        self.inner.events.record("heal", json!({"healed": [id]}));
        Ok(removed)
    }

    fn expire(&self, id: u64) {
        if self.remove(id).is_some() {
            self.inner.events.record("expire", json!({"id": id}));
            tracing::info!(id, "fault expired");
        }
    }

    fn remove(&self, id: u64) -> Option<ActiveFault> {
        let mut state = sync::lock(&self.inner.state);
        let position = state.active.iter().position(|(f, _)| f.id == id)?;
        let (fault, expiry) = state.active.remove(position);
        if let Some(handle) = expiry {
            handle.abort();
        }
        self.publish(&mut state);
        Some(fault)
    }

    fn compile<'a>(
        &self,
        version: u64,
        rules: impl IntoIterator<Item = &'a [LinkRule]>,
    ) -> Result<LinkMatrix, ControlError> {
        LinkMatrix::compile(&self.inner.ids, version, rules)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// Publishes a compiled matrix. Called with the state lock held so versions are
    /// published in order.
    fn install(&self, state: &mut State, matrix: LinkMatrix) {
        state.version = matrix.version;
        metrics::publish_link_states(&self.inner.ids, &matrix);
        self.inner.matrix.send_replace(Arc::new(matrix));
        self.persist(state);
    }

    /// Compiles the active faults and publishes the new matrix (after a removal).
    fn publish(&self, state: &mut State) {
        let compiled = self.compile(
            state.version + 1,
            state.active.iter().map(|(f, _)| f.rules.as_slice()),
        );
        match compiled {
            Ok(matrix) => self.install(state, matrix),
            // Every rule was compiled when applied, and a subset of compiled rules
            // compiles too; should that ever break, keep the last good matrix rather
            // than take the control plane down.
            Err(error) => tracing::error!(%error, "cannot compile the remaining faults"),
        }
    }

    pub fn register_source(
        &self,
        node: &str,
        pids: &[u32],
        ips: &[IpAddr],
    ) -> Result<(), ControlError> {
        let index = self.inner.topology.node_index(node).ok_or_else(|| {
            ControlError::Invalid(format!(
                "node: {node:?}: not a node ({})",
                self.inner.topology.node_names().join(", ")
            ))
        })?;
        if pids.is_empty() && ips.is_empty() {
            return Err(ControlError::Invalid(
                "pids, ips: give at least one source".into(),
            ));
        }
        for pid in pids {
            self.inner.sources.register_pid(*pid, index);
        }
        for ip in ips {
            self.inner.sources.register_ip(*ip, index);
        }
        self.inner
            .events
            .record("source", json!({"node": node, "pids": pids, "ips": ips}));
        Ok(())
    }
}

/// A short human description of a rule set, e.g. `a->b hold, b->a hold`.
fn describe_rules(rules: &[LinkRule]) -> String {
    let mut parts: Vec<String> = rules
        .iter()
        .take(6)
        .map(|r| format!("{}->{} {}", r.from, r.to, r.fault.name()))
        .collect();
    if rules.len() > 6 {
        parts.push(format!("... {} rules", rules.len()));
    }
    parts.join(", ")
}
