//! `rift controller`: the one control plane of a cluster of agents.
//!
//! It runs the proxy's control plane without listeners (the same API, profiles, event
//! log and expiry timers, so every command works unchanged against it) and distributes
//! each new version of its faults to the agents in two phases (see [`crate::cluster`]).
//! A reconciler retries until every agent holds the newest version, and probes the
//! agents so a restarted or replaced one is noticed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::peer::{Peer, PeerError};
use super::skew::{SkewLog, SwitchRecord, spread_us};
use super::{
    AgentBootstrap, AgentState, AgentStatus, ClusterStatus, ClusterTopology, CommitReply,
    CommitRequest, MatrixVersion, unix_ns,
};
use crate::api::{self, SourceRequest};
use crate::control::sync::lock;
use crate::control::{ConnectionGroup, ConnectionTable, Control, Status};
use crate::events::EventLog;
use crate::identity::SourceRegistry;
use crate::profile::ProfileLibrary;
use crate::topology::Topology;

const DEFAULT_API: &str = "127.0.0.1:7070";
/// Deadline of one prepare or commit request to one agent.
const PHASE_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of a probe or a status read.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Retry interval while some agent does not hold the newest version.
const RETRY_EVERY: Duration = Duration::from_millis(500);
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Largest request body the controller buffers to forward (`POST /sources`).
const FORWARD_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct ControllerOptions {
    /// API address; default: the topology's `[api] listen`, else 127.0.0.1:7070.
    pub api_listen: Option<SocketAddr>,
    pub events_path: Option<PathBuf>,
    pub profiles_dir: Option<PathBuf>,
    /// Required by the controller's API and sent to (and required by) the agents.
    pub api_token: Option<String>,
    /// Serve the API over HTTPS, and dial agents over HTTPS checked against a CA.
    pub tls: super::tls::TlsFiles,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot listen on {address} for the controller API: {source}")]
    Api {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the event log {path}: {source}")]
    Events {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Profiles(#[from] crate::profile::ProfileError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// One agent's answer, with the times (since the round started) the request was sent
/// and the answer received.
type Answer<T> = (Result<T, PeerError>, Duration, Duration);

/// What the controller knows of one agent.
#[derive(Debug, Clone, Default)]
struct AgentRecord {
    up: bool,
    /// (epoch, version) the agent last confirmed holding.
    held: Option<(u64, u64)>,
    last_error: Option<String>,
}

struct Distribution {
    agents: Vec<AgentRecord>,
    committed: MatrixVersion,
    skew: SkewLog,
}

struct Inner {
    control: Control,
    config: ClusterTopology,
    epoch: u64,
    peer: Peer,
    /// One distribution round at a time; versions reach agents in order.
    round: tokio::sync::Mutex<()>,
    state: Mutex<Distribution>,
    nudge: Notify,
}

/// Cheap, cloneable handle on a running controller.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// The outcome of one distribution round, as added to the answer of a change.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    pub epoch: u64,
    /// The version the controller distributed (its newest).
    pub version: u64,
    /// Every agent switched to `version` (or already held it).
    pub switched: bool,
    /// `prepare` or `commit` when not every agent switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_us: Option<f64>,
    pub agents: Vec<AgentStatus>,
}

impl RoundReport {
    /// Which agent holds which version, and why some do not hold the newest.
    pub fn describe(&self) -> String {
        let holds = self
            .agents
            .iter()
            .map(|a| match (a.up, a.version) {
                (true, Some(v)) => format!("{} holds version {v}", a.name),
                (true, None) => format!("{} holds no version of this controller", a.name),
                (false, Some(v)) => {
                    format!("{} is unreachable (last confirmed version {v})", a.name)
                }
                (false, None) => format!("{} is unreachable (no version confirmed)", a.name),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let errors = self
            .agents
            .iter()
            .filter_map(|a| a.last_error.as_ref().map(|e| format!("{}: {e}", a.name)))
            .collect::<Vec<_>>()
            .join("; ");
        let what = match self.failed_phase {
            Some("prepare") => format!(
                "version {} is in force at the controller but no agent switched to it, \
                 because not every agent could prepare it",
                self.version
            ),
            _ => format!(
                "version {} was committed but not every agent confirmed the switch",
                self.version
            ),
        };
        format!(
            "{what}. Agents: {holds}. Errors: {errors}. The controller retries every {} ms \
             and switches every agent together once all of them answer; `rift status` shows \
             where each agent is.",
            RETRY_EVERY.as_millis()
        )
    }
}

/// A started controller; call [`RunningController::shutdown`] to stop it.
pub struct RunningController {
    controller: Controller,
    api_addr: SocketAddr,
    tls: bool,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningController {
    pub fn controller(&self) -> Controller {
        self.controller.clone()
    }

    pub fn control(&self) -> Control {
        self.controller.inner.control.clone()
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn api_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.api_addr
        )
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    pub async fn run_until_signal(self) {
        crate::server::wait_for_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Binds the controller's API and starts distributing to the agents.
pub async fn start(
    config: ClusterTopology,
    options: ControllerOptions,
) -> Result<RunningController, ControllerError> {
    let handle = crate::metrics::install();
    let server_tls = options.tls.server()?;
    let client_tls = options.tls.client()?;
    let api_addr = options
        .api_listen
        .or(config.api.as_ref().map(|a| a.listen))
        .unwrap_or_else(|| DEFAULT_API.parse().expect("default API address"));
    crate::auth::check_listen(api_addr, options.api_token.as_deref())?;
    let listener = TcpListener::bind(api_addr)
        .await
        .map_err(|source| ControllerError::Api {
            address: api_addr,
            source,
        })?;
    let api_addr = listener.local_addr().unwrap_or(api_addr);
    let events = EventLog::new(options.events_path.as_deref()).map_err(|source| {
        ControllerError::Events {
            path: options
                .events_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            source,
        }
    })?;
    let mut profiles = ProfileLibrary::builtin();
    if let Some(dir) = &options.profiles_dir {
        profiles = profiles.with_dir(dir)?;
    }
    let topology = config.topology();
    let sources = Arc::new(SourceRegistry::default());
    for (index, node) in topology.nodes.iter().enumerate() {
        for ip in &node.source_ips {
            sources.register_ip(*ip, index);
        }
    }
    let control = Control::new(
        Arc::new(topology),
        events,
        sources,
        profiles,
        Arc::new(ConnectionTable::default()),
    );
    // Versions of a restarted controller start again at 0: the epoch tells them apart.
    let epoch = unix_ns(SystemTime::now());
    let (version, faults) = control.snapshot();
    let agents = vec![AgentRecord::default(); config.agents.len()];
    let controller = Controller {
        inner: Arc::new(Inner {
            control: control.clone(),
            epoch,
            peer: Peer::new(options.api_token.clone(), client_tls),
            round: tokio::sync::Mutex::new(()),
            state: Mutex::new(Distribution {
                agents,
                committed: MatrixVersion {
                    epoch,
                    version,
                    faults,
                },
                skew: SkewLog::default(),
            }),
            nudge: Notify::new(),
            config,
        }),
    };
    control.events().record(
        "start",
        json!({"role": "controller", "api": api_addr.to_string(), "epoch": epoch,
               "agents": controller.inner.config.agents.iter().map(|a| &a.name).collect::<Vec<_>>()}),
    );
    controller.publish_metrics();
    let (shutdown, _) = watch::channel(false);
    let app = crate::auth::protect(
        router(controller.clone(), handle),
        options.api_token.as_deref(),
    );
    let serving = match server_tls {
        Some(config) => tokio::spawn(super::tls::serve(
            listener,
            app,
            config,
            shutdown.subscribe(),
        )),
        None => tokio::spawn(api::serve_app(listener, app, shutdown.subscribe())),
    };
    let tasks = vec![
        serving,
        tokio::spawn(controller.clone().reconcile(shutdown.subscribe())),
    ];
    tracing::info!(api = %api_addr, agents = controller.inner.config.agents.len(), epoch, "rift controller listening");
    Ok(RunningController {
        controller,
        api_addr,
        tls: options.tls.cert.is_some(),
        shutdown,
        tasks,
    })
}

impl Controller {
    pub fn control(&self) -> &Control {
        &self.inner.control
    }

    /// Every agent confirmed the newest version and answered since.
    pub fn converged(&self) -> bool {
        let (version, _) = self.inner.control.snapshot();
        let state = lock(&self.inner.state);
        state
            .agents
            .iter()
            .all(|a| a.up && a.held == Some((self.inner.epoch, version)))
    }

    fn needs_switch(&self, version: u64) -> bool {
        lock(&self.inner.state)
            .agents
            .iter()
            .any(|a| a.held != Some((self.inner.epoch, version)))
    }

    /// Brings every agent to the newest version in two phases; a no-op when they all
    /// hold it already.
    pub async fn sync(&self) -> RoundReport {
        let _round = self.inner.round.lock().await;
        let (version, faults) = self.inner.control.snapshot();
        if !self.needs_switch(version) {
            return self.report(version, None, None, None);
        }
        let target = MatrixVersion {
            epoch: self.inner.epoch,
            version,
            faults,
        };
        // Phase 1: every agent checks and compiles the version; nothing switches.
        let body = Arc::new(target.clone());
        let prepared = self
            .each_agent(move |peer, api| {
                let body = body.clone();
                async move {
                    peer.post::<_, Value>(&api, "/cluster/prepare", &*body, PHASE_TIMEOUT)
                        .await
                }
            })
            .await;
        let mut failed = false;
        {
            let mut state = lock(&self.inner.state);
            for (i, (result, _, _)) in prepared.into_iter().enumerate() {
                let record = &mut state.agents[i];
                match result {
                    Ok(_) => {
                        record.up = true;
                        record.last_error = None;
                    }
                    Err(error) => {
                        failed = true;
                        note_failure(record, &error);
                        super::telemetry::sync_failure(
                            &self.inner.config.agents[i].name,
                            "prepare",
                        );
                    }
                }
            }
            if !failed {
                state.committed = target.clone();
            }
        }
        if failed {
            let report = self.report(version, Some("prepare"), None, None);
            self.publish_metrics();
            self.inner.control.events().record(
                "distribute",
                json!({"epoch": self.inner.epoch, "version": version, "switched": false,
                       "failed_phase": "prepare", "agents": report.agents}),
            );
            tracing::warn!(version, "{}", report.describe());
            return report;
        }
        // Phase 2: every agent holds the version; all are told to switch at once.
        let commit = CommitRequest {
            epoch: self.inner.epoch,
            version,
        };
        let committed = self
            .each_agent(move |peer, api| async move {
                peer.post::<_, CommitReply>(&api, "/cluster/commit", &commit, PHASE_TIMEOUT)
                    .await
            })
            .await;
        let mut stamps = Vec::new();
        let mut first_sent = None::<Duration>;
        let mut last_answer = Duration::ZERO;
        let mut partial = false;
        {
            let mut state = lock(&self.inner.state);
            for (i, (result, sent, answered)) in committed.into_iter().enumerate() {
                let record = &mut state.agents[i];
                match result {
                    Ok(reply) => {
                        record.up = true;
                        record.held = Some((reply.epoch, reply.version));
                        record.last_error = None;
                        stamps.push(reply.switched_at_unix_ns);
                        first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
                        last_answer = last_answer.max(answered);
                    }
                    Err(error) => {
                        partial = true;
                        note_failure(record, &error);
                        super::telemetry::sync_failure(&self.inner.config.agents[i].name, "commit");
                    }
                }
            }
        }
        let skew_us = spread_us(&stamps);
        let window_us = last_answer
            .saturating_sub(first_sent.unwrap_or_default())
            .as_secs_f64()
            * 1e6;
        if partial {
            let report = self.report(version, Some("commit"), None, None);
            self.publish_metrics();
            self.inner.control.events().record(
                "distribute",
                json!({"epoch": self.inner.epoch, "version": version, "switched": false,
                       "failed_phase": "commit", "agents": report.agents}),
            );
            tracing::warn!(version, "{}", report.describe());
            return report;
        }
        lock(&self.inner.state).skew.push(SwitchRecord {
            epoch: self.inner.epoch,
            version,
            at_unix_ms: unix_ns(SystemTime::now()) / 1_000_000,
            agents: stamps.len(),
            skew_us,
            window_us,
        });
        super::telemetry::switch(skew_us / 1e6, window_us / 1e6);
        self.publish_metrics();
        self.inner.control.events().record(
            "distribute",
            json!({"epoch": self.inner.epoch, "version": version, "switched": true,
                   "agents": stamps.len(), "skew_us": skew_us, "window_us": window_us}),
        );
        tracing::info!(version, skew_us, window_us, "every agent switched");
        self.report(version, None, Some(skew_us), Some(window_us))
    }

    /// Runs `call` against every agent at once; results in agent order with the times
    /// (since the round started) the request was sent and its answer received.
    async fn each_agent<F, Fut, T>(&self, call: F) -> Vec<Answer<T>>
    where
        F: Fn(Peer, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, PeerError>> + Send + 'static,
        T: Send + 'static,
    {
        let base = Instant::now();
        let mut calls = JoinSet::new();
        for (i, agent) in self.inner.config.agents.iter().enumerate() {
            let future = call(self.inner.peer.clone(), agent.api.clone());
            calls.spawn(async move {
                let sent = base.elapsed();
                let result = future.await;
                (i, result, sent, base.elapsed())
            });
        }
        let mut results: Vec<Option<Answer<T>>> =
            (0..self.inner.config.agents.len()).map(|_| None).collect();
        while let Some(joined) = calls.join_next().await {
            if let Ok((i, result, sent, answered)) = joined {
                results[i] = Some((result, sent, answered));
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    let url = self.inner.config.agents[i].api.clone();
                    (
                        Err(PeerError::Unreachable {
                            url,
                            cause: "the request task failed".into(),
                        }),
                        Duration::ZERO,
                        Duration::ZERO,
                    )
                })
            })
            .collect()
    }

    /// Asks every agent which version it holds.
    async fn probe(&self) {
        let _round = self.inner.round.lock().await;
        let answers = self
            .each_agent(|peer, api| async move {
                peer.get::<AgentState>(&api, "/cluster/state", PROBE_TIMEOUT)
                    .await
            })
            .await;
        {
            let mut state = lock(&self.inner.state);
            for (i, (result, _, _)) in answers.into_iter().enumerate() {
                let record = &mut state.agents[i];
                match result {
                    Ok(answer) => {
                        record.up = true;
                        record.held = Some((answer.epoch, answer.version));
                        record.last_error = None;
                    }
                    Err(error) => note_failure(record, &error),
                }
            }
        }
        self.publish_metrics();
    }

    async fn reconcile(self, mut shutdown: watch::Receiver<bool>) {
        let mut desired = self.inner.control.watch();
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (version, _) = self.inner.control.snapshot();
            let pending = self.needs_switch(version);
            let retry = if pending {
                RETRY_EVERY
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                changed = desired.changed() => if changed.is_err() { break },
                _ = self.inner.nudge.notified() => {}
                _ = tokio::time::sleep(retry) => {}
                _ = probe.tick() => {
                    self.probe().await;
                    continue;
                }
            }
            // A change made through the API was distributed by its request already:
            // this finds nothing to do. Expiries and retries land here.
            let (version, _) = self.inner.control.snapshot();
            if self.needs_switch(version) {
                self.sync().await;
            }
        }
    }

    fn report(
        &self,
        version: u64,
        failed_phase: Option<&'static str>,
        skew_us: Option<f64>,
        window_us: Option<f64>,
    ) -> RoundReport {
        RoundReport {
            epoch: self.inner.epoch,
            version,
            switched: failed_phase.is_none(),
            failed_phase,
            skew_us,
            window_us,
            agents: self.agent_statuses(),
        }
    }

    fn agent_statuses(&self) -> Vec<AgentStatus> {
        let state = lock(&self.inner.state);
        self.inner
            .config
            .agents
            .iter()
            .zip(&state.agents)
            .map(|(agent, record)| AgentStatus {
                name: agent.name.clone(),
                api: agent.api.clone(),
                nodes: agent.nodes.clone(),
                up: record.up,
                version: record
                    .held
                    .filter(|(epoch, _)| *epoch == self.inner.epoch)
                    .map(|(_, v)| v),
                last_error: record.last_error.clone(),
            })
            .collect()
    }

    pub fn cluster_status(&self) -> ClusterStatus {
        let (version, _) = self.inner.control.snapshot();
        let agents = self.agent_statuses();
        let state = lock(&self.inner.state);
        ClusterStatus {
            epoch: self.inner.epoch,
            version,
            committed: state.committed.version,
            converged: agents.iter().all(|a| a.up && a.version == Some(version)),
            agents,
            changes: state.skew.recent(),
            skew: state.skew.summary(),
        }
    }

    fn publish_metrics(&self) {
        let (version, _) = self.inner.control.snapshot();
        super::telemetry::version(version);
        for agent in self.agent_statuses() {
            super::telemetry::agent(&agent.name, agent.up, agent.version);
        }
    }

    /// What a starting agent needs; the agent will hold the committed version.
    fn bootstrap(&self, name: &str) -> Option<AgentBootstrap> {
        let index = self
            .inner
            .config
            .agents
            .iter()
            .position(|a| a.name == name)?;
        let control = &self.inner.control;
        let (ips, pids) = control.sources().snapshot();
        let topology = control.topology();
        // Source addresses from the topology travel with it; send what was added since.
        let sources = topology
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| {
                let ips: Vec<_> = ips
                    .iter()
                    .filter(|(ip, n)| *n == i && !node.source_ips.contains(ip))
                    .map(|(ip, _)| *ip)
                    .collect();
                let pids: Vec<_> = pids
                    .iter()
                    .filter(|(_, n)| *n == i)
                    .map(|(p, _)| *p)
                    .collect();
                (!ips.is_empty() || !pids.is_empty()).then(|| SourceRequest {
                    node: node.name.clone(),
                    pids,
                    ips,
                })
            })
            .collect();
        let mut state = lock(&self.inner.state);
        let committed = state.committed.clone();
        state.agents[index] = AgentRecord {
            up: true,
            held: Some((committed.epoch, committed.version)),
            last_error: None,
        };
        drop(state);
        self.inner.nudge.notify_one();
        Some(AgentBootstrap {
            agent: self.inner.config.agents[index].clone(),
            topology: Topology {
                api: None,
                nodes: topology.nodes.clone(),
            },
            state: committed,
            sources,
        })
    }

    /// The controller's status with the agents' live connections added in.
    async fn status(&self) -> Status {
        let mut status = self.inner.control.status();
        let answers = self
            .each_agent(|peer, api| async move {
                peer.get::<Status>(&api, "/status", PROBE_TIMEOUT).await
            })
            .await;
        let mut groups: Vec<ConnectionGroup> = Vec::new();
        for (result, _, _) in answers {
            let Ok(agent) = result else { continue };
            for group in agent.connections {
                match groups.iter_mut().find(|g| {
                    g.src == group.src && g.dst == group.dst && g.endpoint == group.endpoint
                }) {
                    Some(g) => {
                        g.active += group.active;
                        g.bytes_forward += group.bytes_forward;
                        g.bytes_reverse += group.bytes_reverse;
                    }
                    None => groups.push(group),
                }
            }
            status.sockets.extend(agent.sockets);
        }
        status.connections = groups;
        status.cluster = Some(self.cluster_status());
        status
    }

    /// Sends a source registration to every agent (they identify the dialers).
    async fn forward_sources(&self, body: Arc<Value>) -> Vec<(String, PeerError)> {
        let answers = self
            .each_agent(move |peer, api| {
                let body = body.clone();
                async move {
                    peer.post::<_, Value>(&api, "/sources", &*body, PHASE_TIMEOUT)
                        .await
                }
            })
            .await;
        answers
            .into_iter()
            .enumerate()
            .filter_map(|(i, (r, _, _))| {
                r.err()
                    .map(|e| (self.inner.config.agents[i].name.clone(), e))
            })
            .collect()
    }
}

fn note_failure(record: &mut AgentRecord, error: &PeerError) {
    record.up = !matches!(error, PeerError::Unreachable { .. });
    record.last_error = Some(error.to_string());
}

/// The proxy's API plus `/cluster` and `/cluster/agents/{name}`; changes are
/// distributed before they are answered.
pub fn router(controller: Controller, metrics: Option<PrometheusHandle>) -> Router {
    let cluster = Router::new()
        .route("/cluster", get(cluster_status))
        .route("/cluster/agents/{name}", get(bootstrap))
        .with_state(controller.clone());
    api::router(controller.inner.control.clone(), metrics)
        .merge(cluster)
        .layer(middleware::from_fn_with_state(controller, distribute))
}

async fn cluster_status(State(c): State<Controller>) -> axum::Json<ClusterStatus> {
    axum::Json(c.cluster_status())
}

async fn bootstrap(State(c): State<Controller>, Path(name): Path<String>) -> Response {
    match c.bootstrap(&name) {
        Some(b) => axum::Json(b).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!(
                "agent {name:?} is not in the controller's topology ({})",
                c.inner.config.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            )})),
        )
            .into_response(),
    }
}

/// Distributes every change before answering it, adds the round's report to the answer,
/// forwards source registrations, and serves `/status` with the agents' view.
async fn distribute(State(c): State<Controller>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if method == Method::GET && path == "/status" {
        return axum::Json(c.status().await).into_response();
    }
    if method == Method::POST && path == "/sources" {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORWARD_LIMIT).await else {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: larger than {FORWARD_LIMIT} bytes"),
                None,
            );
        };
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes.clone())))
            .await;
        if !response.status().is_success() {
            return response;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            return response;
        };
        let failures = c.forward_sources(Arc::new(value)).await;
        if failures.is_empty() {
            return response;
        }
        let text = failures
            .iter()
            .map(|(name, e)| format!("{name}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "registered at the controller, but not every agent has it ({text}); \
                 an agent gets it when it restarts, or register again"
            ),
            None,
        );
    }
    if !super::is_change(&method, &path) {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let report = c.sync().await;
    let status = response.status();
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), usize::MAX).await else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the control plane's answer".into(),
            None,
        );
    };
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let report_value = serde_json::to_value(&report).unwrap_or(Value::Null);
    if !report.switched {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            report.describe(),
            Some(report_value),
        );
    }
    if let Value::Object(map) = &mut body {
        map.insert("distribution".into(), report_value);
    }
    (status, axum::Json(body)).into_response()
}

fn error_response(status: StatusCode, message: String, distribution: Option<Value>) -> Response {
    let mut body = json!({"error": message});
    if let (Value::Object(map), Some(d)) = (&mut body, distribution) {
        map.insert("distribution".into(), d);
    }
    (status, axum::Json(body)).into_response()
}
