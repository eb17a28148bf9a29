//! `rift agent`: a proxy for the members on one host (or in one pod), driven by a
//! controller.
//!
//! On start it fetches from the controller the whole topology (every node, so peers are
//! identified by source address as a proxy does), the nodes it hosts and the last
//! committed matrix version, puts that version in force, and only then accepts
//! connections. Its API is the proxy's (status, links, events, metrics, sources) plus
//! the two phases of a change, `/cluster/prepare` and `/cluster/commit`; requests to
//! change faults on the agent itself are refused with 409, since the next version from
//! the controller would silently undo them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use super::peer::{Peer, PeerError};
use super::{AgentBootstrap, AgentState, CommitReply, CommitRequest, MatrixVersion, unix_ns};
use crate::control::sync::lock;
use crate::control::{Control, PreparedVersion};
use crate::server::{self, Hosting, ProxyError, ProxyOptions, RunningProxy};

/// Deadline of one bootstrap request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// This agent's name in the controller's topology.
    pub name: String,
    /// The controller's API: a URL or `host:port`.
    pub controller: String,
    /// Where to serve the agent API; default: the agent's `api` in the topology.
    pub api_listen: Option<SocketAddr>,
    /// Sent to the controller, and required by this agent's API.
    pub token: Option<String>,
    pub events_path: Option<PathBuf>,
    /// Give up when the controller has not answered for this long (None: keep trying).
    pub fetch_deadline: Option<Duration>,
    /// Serve the agent API over HTTPS, and dial the controller over HTTPS checked
    /// against a CA.
    pub tls: super::tls::TlsFiles,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent name {0:?}: use 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'")]
    Name(String),
    #[error("fetching the matrix from the controller: {0}")]
    Fetch(String),
    #[error(
        "agent {name}: the topology gives its API as {api:?}, which is not an IP:port to \
         listen on; give --api-listen"
    )]
    Listen { name: String, api: String },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// The agent's side of a change in two phases.
struct Slot {
    epoch: u64,
    prepared: Option<(u64, PreparedVersion)>,
    switched_at_unix_ns: Option<u64>,
}

#[derive(Clone)]
struct AgentApi {
    name: Arc<str>,
    controller: Arc<str>,
    control: Control,
    slot: Arc<Mutex<Slot>>,
}

/// Fetches the current matrix from the controller, then listens for the hosted nodes.
pub async fn start(options: AgentOptions) -> Result<RunningProxy, AgentError> {
    if !crate::topology::valid_name(&options.name) {
        return Err(AgentError::Name(options.name));
    }
    let server_tls = options.tls.server()?;
    let peer = Peer::new(options.token.clone(), options.tls.client()?);
    let controller = peer.base(&options.controller);
    let bootstrap = fetch(&peer, &controller, &options).await?;
    let api_listen = match options.api_listen {
        Some(address) => address,
        None => bootstrap
            .agent
            .api
            .parse()
            .map_err(|_| AgentError::Listen {
                name: options.name.clone(),
                api: bootstrap.agent.api.clone(),
            })?,
    };
    let MatrixVersion {
        epoch,
        version,
        faults,
    } = bootstrap.state;
    tracing::info!(agent = %options.name, epoch, version, faults = faults.len(), nodes = ?bootstrap.agent.nodes, "fetched the matrix from the controller");
    let slot = Arc::new(Mutex::new(Slot {
        epoch,
        prepared: None,
        switched_at_unix_ns: None,
    }));
    let name: Arc<str> = Arc::from(options.name.as_str());
    let controller: Arc<str> = Arc::from(controller.as_str());
    let router = Box::new(move |control: Control, metrics: Option<PrometheusHandle>| {
        router(
            AgentApi {
                name,
                controller,
                control: control.clone(),
                slot,
            },
            control,
            metrics,
        )
    });
    let hosting = Hosting {
        nodes: bootstrap.agent.nodes.clone(),
        version,
        faults,
        sources: bootstrap.sources,
        router,
        tls: server_tls,
    };
    let proxy_options = ProxyOptions {
        api_listen: Some(api_listen),
        events_path: options.events_path,
        profiles_dir: None,
        api_token: options.token,
        state: None,
        max_connections: None,
    };
    let running = server::start_hosting(bootstrap.topology, proxy_options, Some(hosting)).await?;
    running.control().events().record(
        "start",
        json!({"role": "agent", "agent": options.name, "epoch": epoch, "version": version}),
    );
    Ok(running)
}

async fn fetch(
    peer: &Peer,
    controller: &str,
    options: &AgentOptions,
) -> Result<AgentBootstrap, AgentError> {
    let path = format!("/cluster/agents/{}", options.name);
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match peer
            .get::<AgentBootstrap>(controller, &path, FETCH_TIMEOUT)
            .await
        {
            Ok(bootstrap) => return Ok(bootstrap),
            // A wrong name or token does not fix itself by waiting.
            Err(error @ PeerError::Refused { .. }) | Err(error @ PeerError::Decode { .. }) => {
                return Err(AgentError::Fetch(error.to_string()));
            }
            Err(error) => {
                if options
                    .fetch_deadline
                    .is_some_and(|limit| started.elapsed() >= limit)
                {
                    return Err(AgentError::Fetch(format!(
                        "{error} (gave up after {attempts} attempts in {:.1} s)",
                        started.elapsed().as_secs_f64()
                    )));
                }
                if attempts == 1 || attempts.is_multiple_of(20) {
                    tracing::warn!(%error, attempts, "waiting for the controller; no listener opens before the matrix is fetched");
                }
                tokio::time::sleep(FETCH_RETRY).await;
            }
        }
    }
}

fn router(api: AgentApi, control: Control, metrics: Option<PrometheusHandle>) -> Router {
    let cluster = Router::new()
        .route("/cluster/state", get(state))
        .route("/cluster/prepare", post(prepare))
        .route("/cluster/commit", post(commit))
        .with_state(api.clone());
    crate::api::router(control, metrics)
        .merge(cluster)
        .layer(middleware::from_fn_with_state(api, refuse_changes))
}

async fn refuse_changes(State(api): State<AgentApi>, request: Request, next: Next) -> Response {
    if super::is_change(request.method(), request.uri().path()) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "this is rift agent {}: its faults come from the controller at {}; send the \
                 change there (RIFT_API={})",
                api.name, api.controller, api.controller
            ),
        );
    }
    next.run(request).await
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn state(State(api): State<AgentApi>) -> Json<AgentState> {
    let slot = lock(&api.slot);
    Json(AgentState {
        name: api.name.to_string(),
        epoch: slot.epoch,
        version: api.control.snapshot().0,
        prepared: slot.prepared.as_ref().map(|(_, p)| p.version),
        switched_at_unix_ns: slot.switched_at_unix_ns,
    })
}

async fn prepare(
    State(api): State<AgentApi>,
    body: Result<Json<MatrixVersion>, JsonRejection>,
) -> Response {
    let Json(target) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {}", rejection.body_text()),
            );
        }
    };
    match api.control.prepare_replica(target.version, target.faults) {
        Ok(prepared) => {
            lock(&api.slot).prepared = Some((target.epoch, prepared));
            Json(json!({"prepared": target.version, "epoch": target.epoch})).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("version {}: {e}", target.version),
        ),
    }
}

async fn commit(
    State(api): State<AgentApi>,
    body: Result<Json<CommitRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {}", rejection.body_text()),
            );
        }
    };
    let mut slot = lock(&api.slot);
    let matches = slot
        .prepared
        .as_ref()
        .is_some_and(|(epoch, p)| *epoch == request.epoch && p.version == request.version);
    if !matches {
        let prepared = slot
            .prepared
            .as_ref()
            .map(|(e, p)| format!("version {} of epoch {e}", p.version))
            .unwrap_or_else(|| "nothing".into());
        return error(
            StatusCode::CONFLICT,
            format!(
                "version {} of epoch {} was not prepared here (prepared: {prepared})",
                request.version, request.epoch
            ),
        );
    }
    let Some((epoch, prepared)) = slot.prepared.take() else {
        return error(StatusCode::CONFLICT, "nothing prepared".into());
    };
    let switched_at = unix_ns(api.control.commit_replica(prepared));
    slot.epoch = epoch;
    slot.switched_at_unix_ns = Some(switched_at);
    drop(slot);
    Json(CommitReply {
        epoch,
        version: request.version,
        switched_at_unix_ns: switched_at,
    })
    .into_response()
}
