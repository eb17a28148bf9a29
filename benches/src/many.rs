//! Workloads over thousands of connections at once, on the harness's async runtime:
//! idle connections (memory per connection of the proxy) and the time rift takes to cut
//! every live connection when a partition is applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::echo::MODE_ECHO;

/// Connects this many at a time: enough to be quick, few enough not to overflow the
/// proxies' accept backlogs (which would show up as 1 s SYN retransmits, not as cost).
const CONNECT_BATCH: usize = 256;

/// Opens `n` echo connections and proves each one reaches the echo server through the
/// target (one byte there and back), so the proxy has dialed its upstream side too.
pub async fn open_echo_connections(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = CONNECT_BATCH.min(n - conns.len());
        let mut set = JoinSet::new();
        for _ in 0..batch {
            set.spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                s.write_all(&[MODE_ECHO, 1]).await?;
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await?;
                Ok::<_, std::io::Error>(s)
            });
        }
        while let Some(joined) = set.join_next().await {
            let stream = joined?.with_context(|| {
                format!(
                    "opening connection {} of {n} via {addr} (descriptor limit or backlog?)",
                    conns.len() + 1
                )
            })?;
            conns.push(stream);
        }
    }
    Ok(conns)
}

/// Outcome of one partition-apply measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionTiming {
    pub connections: usize,
    /// From the start of the API call to the last echo any connection received.
    pub apply_us: f64,
    /// How long the API call itself took to return.
    pub api_call_us: f64,
    /// Mean spacing between echoes observed in the 100 ms before the cut: the
    /// measurement's resolution (an apply time below it reads as 0).
    pub resolution_us: f64,
    /// Echoes received in the 100 ms before the cut (proves the connections were live).
    pub echoes_before_cut: usize,
    /// Connections still exchanging bytes at the end of the observation window (must be 0).
    pub still_moving: usize,
    /// Connections whose held ping was answered after heal (must equal `connections`).
    pub resumed_after_heal: usize,
    /// Why fewer connections than asked were used (the descriptor limit), if so.
    pub capped_by: Option<String>,
}

/// Sends and awaits a cut and a heal; implemented by the rift control API client.
pub trait Cutter {
    fn cut(&self) -> impl Future<Output = Result<()>>;
    fn heal(&self) -> impl Future<Output = Result<()>>;
}

/// Keeps `n` connections busy with staggered ping-pongs (each connection sends one
/// 8-byte ping per `period` and waits for its echo), applies the cut, and watches for the
/// last echo. A ping that is cut stays outstanding; after heal it must be answered, which
/// also checks that the cut lost nothing.
pub async fn partition_apply(
    addr: SocketAddr,
    n: usize,
    period: Duration,
    cutter: &impl Cutter,
) -> Result<PartitionTiming> {
    let conns = open_echo_connections(addr, n).await?;
    let base = Instant::now();
    let last_rx: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let mut tasks: JoinSet<std::io::Result<()>> = JoinSet::new();
    for (i, mut stream) in conns.into_iter().enumerate() {
        let last_rx = last_rx.clone();
        let phase = period.mul_f64(i as f64 / n as f64);
        tasks.spawn(async move {
            let mut next = tokio::time::Instant::from_std(base) + phase;
            let mut seq: u64 = 0;
            let mut back = [0u8; 8];
            loop {
                tokio::time::sleep_until(next).await;
                stream.write_all(&seq.to_be_bytes()).await?;
                stream.read_exact(&mut back).await?;
                if u64::from_be_bytes(back) != seq {
                    return Err(std::io::Error::other(format!(
                        "connection {i}: echo out of order"
                    )));
                }
                last_rx[i].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                seq += 1;
                next += period;
            }
        });
    }
    // Let every connection complete at least two round trips before cutting.
    tokio::time::sleep(period * 2 + Duration::from_millis(50)).await;
    let live = last_rx
        .iter()
        .filter(|t| t.load(Ordering::Relaxed) > 0)
        .count();
    if live < n {
        tasks.abort_all();
        bail!("only {live} of {n} connections exchanged bytes before the partition");
    }

    let t0 = base.elapsed().as_nanos() as u64;
    let window_before = Duration::from_millis(100).as_nanos() as u64;
    let echoes_before_cut = last_rx
        .iter()
        .filter(|t| t.load(Ordering::Relaxed) > t0.saturating_sub(window_before))
        .count();
    let call = Instant::now();
    cutter.cut().await.context("applying the partition")?;
    let api_call = call.elapsed();
    let window = (period * 3).max(Duration::from_millis(500));
    tokio::time::sleep(window).await;
    let snapshot: Vec<u64> = last_rx.iter().map(|t| t.load(Ordering::Relaxed)).collect();
    // Anything received in the second half of the window means a connection is still
    // moving bytes long after the cut.
    let late = t0 + api_call.as_nanos() as u64 + (window / 2).as_nanos() as u64;
    let still_moving = snapshot.iter().filter(|&&t| t > late).count();
    let last = snapshot.iter().copied().max().unwrap_or(0);
    let apply_ns = last.saturating_sub(t0);

    let t_heal = base.elapsed().as_nanos() as u64;
    cutter.heal().await.context("healing the partition")?;
    let deadline = Instant::now() + Duration::from_secs(10) + period;
    let resumed = loop {
        let resumed = last_rx
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) > t_heal)
            .count();
        if resumed == n || Instant::now() >= deadline {
            break resumed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tasks.abort_all();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(e)) = joined {
            bail!("a partition workload connection failed: {e}");
        }
    }
    Ok(PartitionTiming {
        connections: n,
        apply_us: apply_ns as f64 / 1000.0,
        api_call_us: api_call.as_secs_f64() * 1e6,
        resolution_us: window_before as f64 / 1000.0 / echoes_before_cut.max(1) as f64,
        echoes_before_cut,
        still_moving,
        resumed_after_heal: resumed,
        capped_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoServer;

    /// A cutter that does nothing: connections keep moving, so the workload must say so.
    struct NoCut;
    impl Cutter for NoCut {
        async fn cut(&self) -> Result<()> {
            Ok(())
        }
        async fn heal(&self) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cut_that_does_not_cut_is_reported_as_still_moving() {
        let echo = EchoServer::start().unwrap();
        let t = partition_apply(echo.addr(), 20, Duration::from_millis(50), &NoCut)
            .await
            .unwrap();
        assert_eq!(t.connections, 20);
        assert_eq!(t.still_moving, 20, "{t:?}");
        assert_eq!(t.resumed_after_heal, 20);
    }

    /// A minimal proxy in front of the echo server whose relays hold every chunk while
    /// `paused` is true: the cut the workload has to see.
    struct PausingProxy {
        addr: SocketAddr,
        paused: tokio::sync::watch::Sender<bool>,
    }

    impl PausingProxy {
        async fn start(upstream: SocketAddr) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (paused, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                loop {
                    let (client, _) = listener.accept().await.unwrap();
                    let server = TcpStream::connect(upstream).await.unwrap();
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(relay(cr, sw, rx.clone()));
                    tokio::spawn(relay(sr, cw, rx.clone()));
                }
            });
            Self { addr, paused }
        }
    }

    async fn relay(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut paused: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n @ 1..) = from.read(&mut buf).await else {
                return;
            };
            // Hold the chunk (never drop it) until the pause ends.
            if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    impl Cutter for PausingProxy {
        async fn cut(&self) -> Result<()> {
            self.paused.send_replace(true);
            Ok(())
        }
        async fn heal(&self) -> Result<()> {
            self.paused.send_replace(false);
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_real_cut_stops_every_connection_and_heal_resumes_them() {
        let echo = EchoServer::start().unwrap();
        let proxy = PausingProxy::start(echo.addr()).await;
        let t = partition_apply(proxy.addr, 50, Duration::from_millis(100), &proxy)
            .await
            .unwrap();
        assert_eq!(t.still_moving, 0, "{t:?}");
        assert_eq!(t.resumed_after_heal, 50, "{t:?}");
        assert!(t.echoes_before_cut > 0, "{t:?}");
        // The pause takes effect at once: only echoes already on their way arrive
        // after the call (bounded loosely: CI machines are busy).
        assert!(t.apply_us < 250_000.0, "{t:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn opens_and_proves_connections() {
        let echo = EchoServer::start().unwrap();
        let conns = open_echo_connections(echo.addr(), 300).await.unwrap();
        assert_eq!(conns.len(), 300);
    }
}
