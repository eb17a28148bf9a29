//! rift's own control plane over the Toxiproxy proxies: every proxy is a rift node with
//! one endpoint (`toxiproxy`), so `rift partition`, `rift isolate`, profiles and
//! scenarios cut links between the clients of these proxies and their members, and
//! clients of one proxy can be cut from one member and not another.
//!
//! Proxies come and go at run time, while a [`Control`] has a fixed topology. So the
//! bridge keeps the list of nodes append-only (a deleted proxy stays a node without a
//! listener; indices never move, and registered sources stay valid) and builds a new
//! `Control` whenever a node is added, carrying the faults in force over. The rift API
//! served by [`Bridge::router`] always answers with the current one, and relays read
//! its link matrix through one `watch` channel that outlives every rebuild.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tower_service::Service;

use crate::control::{ConnectionTable, Control};
use crate::events::EventLog;
use crate::fault::FaultRequest;
use crate::identity::SourceRegistry;
use crate::matrix::{Identities, LinkMatrix, MatrixWatch};
use crate::profile::ProfileLibrary;
use crate::topology::{CLIENT, Endpoint, Node, Topology};

/// The endpoint name every Toxiproxy proxy has as a rift node.
pub const ENDPOINT: &str = "toxiproxy";

/// What relays read: the current control plane's matrix channel and the identities
/// its matrices are indexed by. It changes only when the control plane is rebuilt;
/// relays then follow the new matrix channel. Faults are read from the control plane's
/// own channel, with no task in between, so a fault is in force when the API answers.
pub struct RiftView {
    pub matrix: MatrixWatch,
    pub ids: Identities,
}

pub type RiftWatch = watch::Receiver<Arc<RiftView>>;

/// A proxy as a node: its name, and its listen address and upstream for `/topology`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub listen: String,
    pub upstream: String,
}

struct Current {
    control: Control,
    router: Router,
}

struct Inner {
    nodes: Mutex<Vec<NodeSpec>>,
    current: Mutex<Option<Current>>,
    view: watch::Sender<Arc<RiftView>>,
    sources: Arc<SourceRegistry>,
    metrics: Option<PrometheusHandle>,
    token: Option<String>,
}

/// Cheap, cloneable handle on rift's control plane for a `rift toxiproxy` server.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Toxiproxy names are free text; rift node names are not. Proxies whose name rift
/// cannot use as a node are left out of rift's topology (and say so in the log).
pub fn usable_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name != CLIENT
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Bridge {
    pub fn new(token: Option<String>) -> Bridge {
        let empty = Topology {
            api: None,
            nodes: vec![],
        };
        let ids = Identities::new(&empty);
        // No node yet: a healthy matrix that never changes (its sender is dropped, and
        // relays wait on the view channel instead).
        let (_, matrix) = watch::channel(Arc::new(LinkMatrix::healthy(&ids)));
        let (view, _) = watch::channel(Arc::new(RiftView { matrix, ids }));
        Bridge {
            inner: Arc::new(Inner {
                nodes: Mutex::new(Vec::new()),
                current: Mutex::new(None),
                view,
                sources: Arc::new(SourceRegistry::default()),
                metrics: crate::metrics::install(),
                token,
            }),
        }
    }

    pub fn watch(&self) -> RiftWatch {
        self.inner.view.subscribe()
    }

    /// The identity of a connection accepted from `peer` on `local`, by name.
    pub fn identify(&self, peer: SocketAddr, local: SocketAddr) -> String {
        let view = self.inner.view.borrow().clone();
        // (A source registered by name maps to a node index; names are stable.)
        let index = self.inner.sources.identify(&view.ids, peer, local);
        view.ids.name(index).to_string()
    }

    /// Brings rift's topology up to date with the Toxiproxy proxies. New names become
    /// nodes (and the control plane is rebuilt with the faults in force); known names
    /// only update their addresses.
    pub fn sync(&self, proxies: &[NodeSpec]) {
        let mut nodes = lock(&self.inner.nodes);
        let mut added = false;
        for proxy in proxies {
            if !usable_node_name(&proxy.name) {
                tracing::warn!(proxy = %proxy.name, "proxy name is not a usable rift node name (1-63 of a-z, A-Z, 0-9, '-', '_', '.'; not `client`): rift's own API cannot cut it");
                continue;
            }
            match nodes.iter_mut().find(|n| n.name == proxy.name) {
                Some(node) => *node = proxy.clone(),
                None => {
                    nodes.push(proxy.clone());
                    added = true;
                }
            }
        }
        if added {
            self.rebuild(&nodes);
        }
    }

    fn rebuild(&self, nodes: &[NodeSpec]) {
        let topology = Topology {
            api: None,
            nodes: nodes
                .iter()
                .map(|n| Node {
                    name: n.name.clone(),
                    source_ips: vec![],
                    source_pids: vec![],
                    source_hosts: vec![],
                    region: None,
                    endpoints: vec![Endpoint {
                        name: ENDPOINT.into(),
                        listen: n
                            .listen
                            .parse()
                            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
                        upstream: n.upstream.clone(),
                    }],
                })
                .collect(),
        };
        let events = EventLog::new(None).expect("an event log without a file cannot fail");
        let control = Control::new(
            Arc::new(topology),
            events,
            self.inner.sources.clone(),
            ProfileLibrary::builtin(),
            Arc::new(ConnectionTable::default()),
        );
        let mut current = lock(&self.inner.current);
        if let Some(old) = current.as_ref() {
            // Nodes are only ever added, so every rule in force still names known nodes.
            let now = SystemTime::now();
            for fault in old.control.status().faults {
                let duration = match fault.expires_at.as_deref() {
                    Some(at) => match humantime::parse_rfc3339_weak(at) {
                        Ok(at) => match at.duration_since(now) {
                            Ok(left) => Some(left),
                            Err(_) => continue,
                        },
                        Err(_) => None,
                    },
                    None => None,
                };
                let request = FaultRequest {
                    label: fault.label.clone(),
                    rules: fault.rules.clone(),
                    duration,
                };
                if let Err(error) = control.apply(request) {
                    tracing::warn!(label = %fault.label, %error, "fault not carried over to the new topology");
                }
            }
        }
        // Relays follow the new control plane before the old one goes away.
        self.inner.view.send_replace(Arc::new(RiftView {
            matrix: control.watch(),
            ids: control.identities().clone(),
        }));
        let router = crate::auth::protect(
            crate::api::router(control.clone(), self.inner.metrics.clone()),
            self.inner.token.as_deref(),
        );
        *current = Some(Current { control, router });
    }

    /// The control plane in force, if any proxy exists.
    pub fn control(&self) -> Option<Control> {
        lock(&self.inner.current)
            .as_ref()
            .map(|c| c.control.clone())
    }

    /// rift's control API over the current control plane; 503 until a proxy exists.
    pub fn router(&self) -> Router {
        let bridge = self.clone();
        Router::new().fallback(move |request: Request| {
            let router = lock(&bridge.inner.current).as_ref().map(|c| c.router.clone());
            async move {
                match router {
                    Some(mut router) => match router.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    None => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"error": "no Toxiproxy proxy exists yet: create one (POST /proxies on the Toxiproxy API) and its name becomes a rift node"})),
                    )
                        .into_response(),
                }
            }
        })
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}
