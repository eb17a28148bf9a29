//! Wires a running proxy together: one listener per (node, endpoint), source
//! identification, admission of new connections under faults, relays, the control
//! API and metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::control::{ConnectionTable, Control};
use crate::events::EventLog;
use crate::identity::SourceRegistry;
use crate::profile::ProfileLibrary;
use crate::topology::Topology;

mod accept;
use crate::{api, metrics};
use accept::{Target, accept_loop};

const DEFAULT_API: &str = "127.0.0.1:7070";

#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Control API address; default: the topology's `[api] listen`, else 127.0.0.1:7070.
    pub api_listen: Option<SocketAddr>,
    /// Append every control event to this JSONL file.
    pub events_path: Option<PathBuf>,
    /// Extra profiles (`*.toml`) that add to or override the built-in ones.
    pub profiles_dir: Option<PathBuf>,
    /// Bearer token the API requires; mandatory when the API is not on loopback.
    pub api_token: Option<String>,
    /// Restore the faults of this state file before accepting a connection, and keep
    /// it up to date (see [`crate::control::StatePath`]). Not for agents, whose faults
    /// come from their controller.
    pub state: Option<crate::control::StatePath>,
    /// Most connections open at once on one listener; more are reset on accept and
    /// counted in `rift_connections_refused_total`. `None`: no cap.
    pub max_connections: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {address} for node {node} endpoint {endpoint}: {source}")]
    Listen {
        node: String,
        endpoint: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {address} for the control API: {source}")]
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
    #[error("the initial matrix: {0}")]
    Initial(String),
    #[error(transparent)]
    State(#[from] crate::control::PersistError),
}

/// A started proxy. Dropping it does not stop it; call [`RunningProxy::shutdown`].
pub struct RunningProxy {
    control: Control,
    api_addr: SocketAddr,
    https: bool,
    topology: Arc<Topology>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.api_addr)
    }

    /// The topology with every `listen` port as actually bound (port 0 resolved).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Closes listeners and the API and drops every relayed connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Runs until the shutdown signal of the process (Ctrl-C / SIGTERM) arrives, then
    /// stops accepting and closes every connection. The faults in force stay in the
    /// state file (a restart puts them back) unless `heal_on_exit`, which heals first.
    pub async fn run_until_signal(self, heal_on_exit: bool) {
        wait_for_signal().await;
        if heal_on_exit {
            let healed = self.control.heal();
            tracing::info!(healed, "healed on exit");
        }
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Returns on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Binds every listener and the control API, then serves in the background.
pub async fn start(topology: Topology, options: ProxyOptions) -> Result<RunningProxy, ProxyError> {
    start_hosting(topology, options, None).await
}

/// What makes a proxy a `rift agent` (see [`crate::cluster::agent`]): it knows every
/// node but listens only for its own, starts from a matrix version fetched from its
/// controller (in force before the first connection is accepted), and serves its own
/// API router.
pub struct Hosting {
    pub nodes: Vec<String>,
    pub version: u64,
    pub faults: Vec<crate::control::ActiveFault>,
    pub sources: Vec<api::SourceRequest>,
    pub router: Box<dyn FnOnce(Control, Option<PrometheusHandle>) -> axum::Router + Send>,
    /// Serve the API over HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// [`start`], or with `hosting`, an agent's proxy.
pub async fn start_hosting(
    mut topology: Topology,
    options: ProxyOptions,
    hosting: Option<Hosting>,
) -> Result<RunningProxy, ProxyError> {
    let handle = metrics::install();
    let mut listeners = Vec::new();
    for (node_index, node) in topology.nodes.iter_mut().enumerate() {
        if hosting
            .as_ref()
            .is_some_and(|h| !h.nodes.contains(&node.name))
        {
            continue;
        }
        for endpoint in node.endpoints.iter_mut() {
            let listener = bind_listener(endpoint.listen).map_err(|source| ProxyError::Listen {
                node: node.name.clone(),
                endpoint: endpoint.name.clone(),
                address: endpoint.listen,
                source,
            })?;
            if let Ok(bound) = listener.local_addr() {
                endpoint.listen = bound;
            }
            listeners.push((
                listener,
                node_index,
                endpoint.name.clone(),
                endpoint.upstream.clone(),
            ));
        }
    }
    let api_addr = options
        .api_listen
        .or(topology.api.as_ref().map(|a| a.listen))
        .unwrap_or_else(|| DEFAULT_API.parse().expect("default API address"));
    crate::auth::check_listen(api_addr, options.api_token.as_deref())?;
    let api_listener = TcpListener::bind(api_addr)
        .await
        .map_err(|source| ProxyError::Api {
            address: api_addr,
            source,
        })?;
    let api_addr = api_listener.local_addr().unwrap_or(api_addr);

    let events =
        EventLog::new(options.events_path.as_deref()).map_err(|source| ProxyError::Events {
            path: options
                .events_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            source,
        })?;
    let mut profiles = ProfileLibrary::builtin();
    if let Some(dir) = &options.profiles_dir {
        profiles = profiles.with_dir(dir)?;
    }
    let sources = Arc::new(SourceRegistry::default());
    for (index, node) in topology.nodes.iter().enumerate() {
        for ip in &node.source_ips {
            sources.register_ip(*ip, index);
        }
        for pid in &node.source_pids {
            sources.register_pid(*pid, index);
        }
    }
    let topology = Arc::new(topology);
    let control = Control::new(
        topology.clone(),
        events,
        sources,
        profiles,
        Arc::new(ConnectionTable::default()),
    );
    let tls = hosting.as_ref().and_then(|h| h.tls.clone());
    let https = tls.is_some();
    let router = match hosting {
        Some(hosting) => {
            let prepared = control
                .prepare_replica(hosting.version, hosting.faults)
                .map_err(|e| ProxyError::Initial(e.to_string()))?;
            control.commit_replica(prepared);
            for source in &hosting.sources {
                control
                    .register_source(&source.node, &source.pids, &source.ips)
                    .map_err(|e| ProxyError::Initial(e.to_string()))?;
            }
            hosting.router
        }
        None => {
            if let Some(state) = options.state {
                control.restore(state)?;
            }
            Box::new(api::router)
        }
    };
    control.events().record(
        "start",
        serde_json::json!({"api": api_addr.to_string(), "nodes": topology.node_names()}),
    );

    let (shutdown, _) = watch::channel(false);
    let mut tasks = Vec::new();
    if topology.nodes.iter().any(|n| !n.source_hosts.is_empty()) {
        // Resolved once before any listener accepts, so the first peer connections
        // are not taken for clients; then again and again, as pods move.
        let mut hosts = crate::identity::HostAddresses::default();
        for (host, error) in hosts.refresh(&topology, control.sources()).await {
            tracing::warn!(%host, %error, "source host does not resolve yet; its connections count as client until it does");
        }
        tasks.push(tokio::spawn(resolve_loop(
            hosts,
            topology.clone(),
            control.clone(),
            shutdown.subscribe(),
        )));
    }
    for (listener, node_index, endpoint_name, upstream) in listeners {
        let endpoint_index = control
            .identities()
            .endpoint_index(&endpoint_name)
            .expect("endpoint from topology");
        let target = Target {
            node: node_index,
            endpoint: endpoint_index,
            upstream: Arc::from(upstream.as_str()),
        };
        tasks.push(tokio::spawn(accept_loop(
            listener,
            target,
            control.clone(),
            options.max_connections,
            shutdown.subscribe(),
        )));
    }
    let app = crate::auth::protect(
        router(control.clone(), handle),
        options.api_token.as_deref(),
    );
    tasks.push(match tls {
        Some(config) => tokio::spawn(crate::cluster::tls::serve(
            api_listener,
            app,
            config,
            shutdown.subscribe(),
        )),
        None => tokio::spawn(api::serve_app(api_listener, app, shutdown.subscribe())),
    });
    tracing::info!(api = %api_addr, nodes = topology.nodes.len(), "rift proxy listening");
    Ok(RunningProxy {
        control,
        api_addr,
        https,
        topology,
        shutdown,
        tasks,
    })
}

async fn resolve_loop(
    mut hosts: crate::identity::HostAddresses,
    topology: Arc<Topology>,
    control: Control,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(crate::identity::RESOLVE_EVERY) => {
                for (host, error) in hosts.refresh(&topology, control.sources()).await {
                    tracing::debug!(%host, %error, "source host did not resolve; keeping its last addresses");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Connections a listener may queue before rift accepts them. The standard library's
/// 128 overflows when thousands of members or clients connect at once.
const ACCEPT_BACKLOG: u32 = 4096;

fn bind_listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}
