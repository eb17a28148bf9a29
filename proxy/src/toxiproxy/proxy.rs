//! One Toxiproxy proxy: a listener created at run time, its upstream, its toxics, and
//! the connections it relays. Disabling closes the listener and every connection;
//! the toxics and the bound `listen` address survive it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::ApiError;
use super::link::{self, Chains, ChainsWatch, End, RiftLink};
use super::rift::Bridge;
use super::toxics::{Stream, Toxic};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_BACKLOG: u32 = 4096;

pub struct Proxy {
    pub name: String,
    /// The requested address until the first start, then the bound one.
    pub listen: String,
    pub upstream: String,
    toxics: Vec<Toxic>,
    chains: watch::Sender<Arc<Chains>>,
    running: Option<Running>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub fn new(name: String, listen: String, upstream: String) -> Proxy {
        let (chains, _) = watch::channel(Arc::new(Chains::default()));
        Proxy {
            name,
            listen,
            upstream,
            toxics: Vec::new(),
            chains,
            running: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// Binds the listener and starts accepting. A bind error (port in use) is
    /// Toxiproxy's 500 with the same wording as Go's `net.Listen`.
    pub async fn start(&mut self, bridge: Option<&Bridge>) -> Result<(), ApiError> {
        if self.running.is_some() {
            return Ok(());
        }
        let address = resolve_listen(&self.listen).await?;
        let listener = bind(address).map_err(|e| {
            ApiError::internal(format!("listen tcp {address}: bind: {}", os_message(&e)))
        })?;
        if let Ok(bound) = listener.local_addr() {
            self.listen = bound.to_string();
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(
            accept_loop(
                listener,
                Arc::from(self.upstream.as_str()),
                self.chains.subscribe(),
                bridge.map(|b| (b.clone(), Arc::from(self.name.as_str()))),
                stopped,
            )
            .instrument(tracing::info_span!("toxiproxy", proxy = %self.name)),
        );
        self.running = Some(Running { stop, task });
        tracing::info!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, "started proxy");
        Ok(())
    }

    /// Closes the listener and every connection, and waits until they are gone.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.task.await;
            tracing::info!(proxy = %self.name, "terminated proxy");
        }
    }

    /// Whether `listen`/`upstream` name another proxy than this one (Toxiproxy's
    /// `Differs`: the listen address is compared after resolution).
    pub async fn differs(&self, listen: &str, upstream: &str) -> Result<bool, ApiError> {
        let resolved = resolve_listen(listen).await?;
        Ok(self.listen != resolved.to_string() || self.upstream != upstream)
    }

    pub fn toxics(&self) -> &[Toxic] {
        &self.toxics
    }

    pub fn toxic(&self, name: &str) -> Option<&Toxic> {
        self.toxics.iter().find(|t| t.name == name)
    }

    /// Replaces the toxic list and publishes it to every live connection.
    pub fn set_toxics(&mut self, toxics: Vec<Toxic>) {
        self.toxics = toxics;
        let chains = Chains {
            upstream: self
                .toxics
                .iter()
                .filter(|t| t.stream == Stream::Upstream)
                .cloned()
                .collect(),
            downstream: self
                .toxics
                .iter()
                .filter(|t| t.stream == Stream::Downstream)
                .cloned()
                .collect(),
        };
        self.chains.send_replace(Arc::new(chains));
    }

    /// Toxiproxy lists upstream toxics first, then downstream, each in creation order.
    pub fn toxics_json(&self) -> Value {
        let ordered = [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .flat_map(|s| {
                self.toxics
                    .iter()
                    .filter(move |t| t.stream == s)
                    .map(Toxic::to_json)
            });
        Value::Array(ordered.collect())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled(),
            "toxics": self.toxics_json(),
        })
    }
}

/// Resolves `host:port` like Go's `net.Listen("tcp", ...)`: an empty host listens on
/// every interface; a name takes its first address.
pub async fn resolve_listen(listen: &str) -> Result<SocketAddr, ApiError> {
    if let Ok(address) = listen.parse::<SocketAddr>() {
        return Ok(address);
    }
    let (host, port) = listen.rsplit_once(':').ok_or_else(|| {
        ApiError::internal(format!(
            "listen tcp {listen}: address {listen}: missing port in address"
        ))
    })?;
    let port: u16 = port.parse().map_err(|_| {
        ApiError::internal(format!(
            "listen tcp {listen}: address {listen}: invalid port"
        ))
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let mut addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ApiError::internal(format!("listen tcp {listen}: lookup {host}: {e}")))?;
    // Prefer IPv4 as Go does for "localhost".
    let all: Vec<SocketAddr> = addresses.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| {
            ApiError::internal(format!("listen tcp {listen}: lookup {host}: no such host"))
        })
}

fn os_message(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Go sets SO_REUSEADDR on listeners too: a port in TIME_WAIT is reusable at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Arc<str>,
    chains: ChainsWatch,
    rift: Option<(Bridge, Arc<str>)>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    // Who dialed, as rift's nodes see it (a registered source or `client`).
                    let link = rift.as_ref().map(|(bridge, name)| {
                        let local = client.local_addr().unwrap_or(peer);
                        RiftLink::new(bridge.watch(), bridge.identify(peer, local), name.to_string())
                    });
                    let span = tracing::debug_span!("conn", %peer, src = link.as_ref().map(|l| l.src().to_string()));
                    connections.spawn(handle(client, upstream.clone(), chains.clone(), link).instrument(span));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn handle(
    client: TcpStream,
    upstream: Arc<str>,
    chains: ChainsWatch,
    mut rift: Option<RiftLink>,
) {
    let _ = client.set_nodelay(true);
    if let Some(link) = rift.as_mut()
        && !link.admit().await
    {
        link::set_reset_on_close(&client);
        tracing::debug!("reset at connect by a rift `reset` fault");
        return;
    }
    let dialed = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&*upstream)).await;
    let server = match dialed {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            tracing::debug!(%upstream, %error, "unable to open connection to upstream");
            return;
        }
        Err(_) => {
            tracing::debug!(%upstream, "upstream dial timed out");
            return;
        }
    };
    let _ = server.set_nodelay(true);
    match link::relay(&client, &server, chains, rift).await {
        End::Finished => tracing::debug!("closed"),
        End::Close(why) => tracing::debug!(why, "closed by proxy"),
        End::Reset => {
            link::set_reset_on_close(&client);
            link::set_reset_on_close(&server);
            tracing::debug!("reset by reset_peer or a rift fault");
        }
    }
}
