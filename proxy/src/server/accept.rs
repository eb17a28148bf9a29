//! The data plane's front door: each listener's accept loop (with its connection
//! cap), source identification, admission of new connections under faults, the
//! upstream dial, and the hand-over to the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::control::Control;
use crate::fault::Fault;
use crate::matrix::MatrixWatch;
use crate::metrics;
use crate::relay::{self, ByteCounters, Link, set_reset_on_close};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(super) struct Target {
    pub(super) node: usize,
    pub(super) endpoint: usize,
    pub(super) upstream: Arc<str>,
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    target: Target,
    control: Control,
    max_connections: Option<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let cap = max_connections.map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
    let mut at_cap = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let permit = match &cap {
                        None => None,
                        Some(cap) => match cap.clone().try_acquire_owned() {
                            Ok(permit) => {
                                at_cap = false;
                                Some(permit)
                            }
                            Err(_) => {
                                refuse(&stream, &target, &control, max_connections, &mut at_cap);
                                continue;
                            }
                        },
                    };
                    let connection = handle_connection(stream, peer, target.clone(), control.clone());
                    connections.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}

/// A connection over the listener's cap: reset at once (the dialer sees a refusal,
/// not a hang), counted, and logged once each time the listener fills up.
fn refuse(
    stream: &TcpStream,
    target: &Target,
    control: &Control,
    max_connections: Option<usize>,
    at_cap: &mut bool,
) {
    let ids = control.identities();
    let dst = ids.name(target.node);
    let endpoint = ids
        .endpoint_names()
        .get(target.endpoint)
        .map(String::as_str)
        .unwrap_or_default();
    set_reset_on_close(stream);
    metrics::connection_refused(dst, endpoint);
    if !*at_cap {
        *at_cap = true;
        tracing::warn!(dst, endpoint, max = ?max_connections, "listener at its connection cap; resetting new connections until one closes");
    }
}

async fn handle_connection(client: TcpStream, peer: SocketAddr, target: Target, control: Control) {
    let local = client.local_addr().unwrap_or(peer);
    let src = identify(&control, peer, local).await;
    let ids = control.identities();
    let link = Link {
        src,
        dst: target.node,
        endpoint: target.endpoint,
    };
    let span = tracing::info_span!(
        "conn",
        src = ids.name(src),
        dst = ids.name(target.node),
        endpoint = %ids.endpoint_names()[target.endpoint],
        %peer,
    );
    async move {
        let _ = client.set_nodelay(true);
        let counters = Arc::new(ByteCounters::default());
        let entry = control.connections().open(link, counters.clone(), peer, local);
        let (relay_metrics, active) = metrics::for_connection(control.identities(), link);
        let mut watch = control.watch();
        let outcome = match admit(&mut watch, link).await {
            Admission::Reset => {
                metrics::connection_reset("fault");
                set_reset_on_close(&client);
                tracing::debug!("reset at connect by a `reset` fault");
                Ok(())
            }
            Admission::Dial => match dial(&target.upstream).await {
                Err(error) => {
                    // A refused dial is a member that is down or not up yet: routine in a lab.
                    if error.kind() == std::io::ErrorKind::ConnectionRefused {
                        tracing::debug!(upstream = %target.upstream, %error, "upstream refused; resetting client");
                    } else {
                        tracing::warn!(upstream = %target.upstream, %error, "upstream dial failed; resetting client");
                    }
                    metrics::connection_reset("dial");
                    set_reset_on_close(&client);
                    Ok(())
                }
                Ok(upstream) => {
                    if let (Ok(ours), Ok(theirs)) = (upstream.local_addr(), upstream.peer_addr()) {
                        entry.set_upstream(ours, theirs);
                    }
                    let result = relay::relay(&client, &upstream, link, watch, counters, relay_metrics).await;
                    if result.as_ref().is_err_and(relay::RelayError::resets_connection) {
                        set_reset_on_close(&client);
                        set_reset_on_close(&upstream);
                    }
                    result
                }
            },
        };
        match outcome {
            Ok(()) => tracing::debug!("closed"),
            Err(error) => {
                if error.resets_connection() {
                    metrics::connection_reset(match error {
                        relay::RelayError::Io { .. } => "io",
                        _ => "fault",
                    });
                }
                tracing::debug!(%error, "connection ended");
            }
        }
        active.decrement(1.0);
    }
    .instrument(span)
    .await
}

/// The source node of a connection. A lookup by owning process reads `/proc/PID/fd`
/// of the registered members (a JVM broker holds thousands of descriptors): it runs on
/// a blocking thread so that a reconnect storm never stalls the data-plane thread and
/// the relays it serves.
async fn identify(control: &Control, peer: SocketAddr, local: SocketAddr) -> usize {
    let ids = control.identities();
    if let Some(index) = control.sources().identify_by_address(ids, peer) {
        return index;
    }
    let blocking = control.clone();
    tokio::task::spawn_blocking(move || {
        blocking
            .sources()
            .identify_by_process(blocking.identities(), peer, local)
    })
    .await
    .unwrap_or_else(|error| {
        tracing::warn!(%peer, %error, "source lookup failed; treating source as client");
        ids.client()
    })
}

enum Admission {
    Dial,
    Reset,
}

/// A new connection on a cut link is accepted but not dialed upstream until the link
/// heals in both directions (the SYN or the SYN-ACK would be lost); `reset` refuses it.
async fn admit(watch: &mut MatrixWatch, link: Link) -> Admission {
    let mut waited = false;
    loop {
        let matrix = watch.borrow_and_update().clone();
        let forward = matrix.fault(link.src, link.dst, link.endpoint);
        let reverse = matrix.fault(link.dst, link.src, link.endpoint);
        if matches!(forward, Some(Fault::Reset)) || matches!(reverse, Some(Fault::Reset)) {
            return Admission::Reset;
        }
        let cut = forward.is_some_and(Fault::is_cut) || reverse.is_some_and(Fault::is_cut);
        if !cut {
            if waited {
                tracing::debug!("link healed; dialing held connection");
            }
            return Admission::Dial;
        }
        if !waited {
            tracing::debug!("link is cut; holding the new connection until heal");
            waited = true;
        }
        if watch.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn dial(upstream: &str) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(upstream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "dial timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
