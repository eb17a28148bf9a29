//! Test fixtures: upstream servers that echo or record, a proxy started on ephemeral
//! ports, and clients that dial from a chosen loopback source address.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rift_proxy::server::{self, ProxyOptions, RunningProxy};
use rift_proxy::topology::Topology;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Echoes every byte back and closes its write side after the client's FIN.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Records what each accepted connection sent, and counts accepts.
#[derive(Clone, Default)]
pub struct Recorder {
    pub accepted: Arc<AtomicUsize>,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    pub fn len(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

/// Records received bytes and, if `tick` is set, writes one byte every `tick`.
pub async fn recording_server(tick: Option<Duration>) -> (SocketAddr, Recorder) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = Recorder::default();
    let rec = recorder.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            rec.accepted.fetch_add(1, Ordering::SeqCst);
            let rec = rec.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                if let Some(tick) = tick {
                    tokio::spawn(async move {
                        while w.write_all(b".").await.is_ok() {
                            tokio::time::sleep(tick).await;
                        }
                    });
                }
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    rec.received.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, recorder)
}

pub struct NodeSpec {
    pub name: &'static str,
    pub source_ip: Option<&'static str>,
    pub endpoints: Vec<(&'static str, SocketAddr)>,
}

pub fn node(
    name: &'static str,
    source_ip: Option<&'static str>,
    endpoints: Vec<(&'static str, SocketAddr)>,
) -> NodeSpec {
    NodeSpec {
        name,
        source_ip,
        endpoints,
    }
}

pub fn topology(nodes: &[NodeSpec]) -> Topology {
    let mut text = String::new();
    for n in nodes {
        text.push_str(&format!("[[node]]\nname = \"{}\"\n", n.name));
        if let Some(ip) = n.source_ip {
            text.push_str(&format!("source_ips = [\"{ip}\"]\n"));
        }
        for (ep, upstream) in &n.endpoints {
            text.push_str(&format!("[[node.endpoint]]\nname = \"{ep}\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n"));
        }
    }
    Topology::parse(&text, "test topology").unwrap()
}

pub async fn start(nodes: &[NodeSpec]) -> RunningProxy {
    let options = ProxyOptions {
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    server::start(topology(nodes), options).await.unwrap()
}

/// Where the proxy listens for `node`'s `endpoint`.
pub fn listen(proxy: &RunningProxy, node: &str, endpoint: &str) -> SocketAddr {
    let n = proxy
        .topology()
        .nodes
        .iter()
        .find(|n| n.name == node)
        .unwrap();
    n.endpoints
        .iter()
        .find(|e| e.name == endpoint)
        .unwrap()
        .listen
}

/// Dials `to` from the loopback address `from` (127.0.0.2 stands for a node).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(to).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A deterministic byte pattern so order and completeness can be checked.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}
