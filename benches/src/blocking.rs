//! Single-connection workloads, run on plain threads with blocking sockets so the client
//! adds as little scheduling noise as possible: ping-pong round trips, open-loop
//! fixed-rate requests, and single-stream bulk transfer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;

use crate::echo::{MODE_ECHO, MODE_SINK, SINK_ACK};

/// Longest latency a histogram records (ns); anything slower is clamped and still counted.
const MAX_NS: u64 = 60_000_000_000;
/// A workload that sees no reply for this long is broken, not slow.
const STALL: Duration = Duration::from_secs(10);

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds")
}

fn connect(addr: SocketAddr, mode: u8) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(STALL))?;
    stream.write_all(&[mode])?;
    Ok(stream)
}

/// Round trips of `size`-byte messages on one connection, one at a time. The first
/// `warmup` round trips are not recorded (connection setup, proxy buffer growth).
pub fn ping_pong(
    addr: SocketAddr,
    size: usize,
    iterations: u64,
    warmup: u64,
) -> Result<Histogram<u64>> {
    let mut stream = connect(addr, MODE_ECHO)?;
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut hist = new_histogram();
    for i in 0..warmup + iterations {
        let start = Instant::now();
        stream.write_all(&out)?;
        stream
            .read_exact(&mut back)
            .with_context(|| format!("ping-pong round trip {i} via {addr}"))?;
        if i >= warmup {
            hist.saturating_record(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(hist)
}

/// Opens `count` connections one after another, timing each from `connect` to the
/// first echoed byte (what a client pays before its first request is answered), and
/// closes each before the next.
pub fn connect_first_byte(addr: SocketAddr, count: u64) -> Result<Histogram<u64>> {
    let mut hist = new_histogram();
    for i in 0..count {
        let start = Instant::now();
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connection {i} to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(STALL))?;
        stream.write_all(&[MODE_ECHO, 0x42])?;
        let mut back = [0u8; 1];
        stream
            .read_exact(&mut back)
            .with_context(|| format!("first echo on connection {i} via {addr}"))?;
        hist.saturating_record(start.elapsed().as_nanos() as u64);
    }
    Ok(hist)
}

/// What an open-loop run saw.
pub struct OpenLoop {
    /// Latency from each request's *intended* send time to its reply.
    pub hist: Histogram<u64>,
    /// How late the sender thread was against its schedule at worst (harness noise).
    pub max_send_lag: Duration,
}

/// Sends `size`-byte requests at a fixed `rate` for `duration` on one connection while a
/// second thread reads the echoes. Latency is measured from the time a request was
/// scheduled to go out, not when it went out, so a stalled path is charged for every
/// request it delayed (no coordinated omission).
pub fn open_loop(addr: SocketAddr, size: usize, rate: u64, duration: Duration) -> Result<OpenLoop> {
    let stream = connect(addr, MODE_ECHO)?;
    let mut reader = stream.try_clone()?;
    let mut writer = stream;
    let count = (rate as f64 * duration.as_secs_f64()).ceil() as u64;
    let interval_ns = 1_000_000_000 / rate.max(1);
    let start = Instant::now() + Duration::from_millis(10);
    let intended = move |i: u64| start + Duration::from_nanos(interval_ns * i);

    let sender = std::thread::spawn(move || -> Result<Duration> {
        rift_proxy::sys::set_thread_timer_slack(1_000).context("setting the timer slack")?;
        let msg = vec![0xa5u8; size];
        let mut max_lag = Duration::ZERO;
        for i in 0..count {
            let due = intended(i);
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
            }
            max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
            writer.write_all(&msg)?;
        }
        Ok(max_lag)
    });

    let mut hist = new_histogram();
    let mut buf = vec![0u8; size];
    let mut result = Ok(());
    for i in 0..count {
        if let Err(e) = reader.read_exact(&mut buf) {
            result = Err(e).with_context(|| format!("open-loop reply {i} of {count} via {addr}"));
            break;
        }
        let latency = Instant::now().saturating_duration_since(intended(i));
        hist.saturating_record(latency.as_nanos() as u64);
    }
    // Unblock the sender if the reader gave up first.
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let lag = sender
        .join()
        .map_err(|_| anyhow::anyhow!("open-loop sender panicked"))?;
    result?;
    Ok(OpenLoop {
        hist,
        max_send_lag: lag?,
    })
}

/// Streams `total` bytes one way and waits for the receiver to confirm the last byte;
/// returns the elapsed time.
pub fn bulk(addr: SocketAddr, total: u64) -> Result<Duration> {
    let mut stream = connect(addr, MODE_SINK)?;
    let chunk = vec![0x3cu8; 256 * 1024];
    let start = Instant::now();
    stream.write_all(&total.to_be_bytes())?;
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    let mut ack = [0u8; 1];
    stream
        .read_exact(&mut ack)
        .with_context(|| format!("waiting for the bulk receiver's acknowledgement via {addr}"))?;
    if ack[0] != SINK_ACK {
        bail!(
            "bulk receiver answered {:#04x}, expected {SINK_ACK:#04x}",
            ack[0]
        );
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoServer;

    #[test]
    fn workloads_run_against_the_echo_server() {
        let echo = EchoServer::start().unwrap();
        let hist = ping_pong(echo.addr(), 1024, 50, 5).unwrap();
        assert_eq!(hist.len(), 50);
        let ol = open_loop(echo.addr(), 64, 2000, Duration::from_millis(100)).unwrap();
        assert_eq!(ol.hist.len(), 200);
        assert_eq!(connect_first_byte(echo.addr(), 20).unwrap().len(), 20);
        let took = bulk(echo.addr(), 3 * 1024 * 1024 + 7).unwrap();
        assert!(took > Duration::ZERO);
    }

    #[test]
    fn open_loop_charges_a_stalled_path_from_the_intended_time() {
        // A server that sits on the first request for 200 ms before echoing: every
        // request scheduled during the stall must show the wait it suffered.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut mode = [0u8; 1];
            s.read_exact(&mut mode).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let ol = open_loop(addr, 64, 1000, Duration::from_millis(300)).unwrap();
        // The first request waited ~200 ms; a closed-loop client would record it once,
        // an open-loop one records the ~200 requests behind it as delayed too.
        assert!(
            ol.hist.value_at_quantile(0.5) > 20_000_000,
            "p50 {} ns",
            ol.hist.value_at_quantile(0.5)
        );
        assert!(ol.hist.max() >= 190_000_000);
        server.join().unwrap();
    }
}
