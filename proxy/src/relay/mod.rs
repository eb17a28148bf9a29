//! The per-connection copy loop.
//!
//! Each byte direction is a `Pump` that reads from one socket and writes to the other,
//! consulting the link matrix between every read and the matching write. A fault change
//! is observed at the next wake-up (a `watch` notification races every wait), and a
//! chunk that was already read is never dropped: under `hold` it simply stays in the
//! pump's buffer until heal. Only `blackhole` discards, and a stream that lost bytes is
//! reset on heal because it has a hole.
//!
//! The fast path (no fault) reads into one lazily allocated buffer that grows from
//! 16 KiB to 256 KiB when reads fill it, and writes straight back out: no per-chunk
//! allocation, no channel hop. Degradations (delay, bandwidth, slow close, data limit)
//! take a slower path with a deadline queue that keeps byte order (`degrade`).

mod degrade;
mod link;

pub use link::{Direction, Link, RelayError, Side};

use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::fault::{Degradation, Fault};
use crate::matrix::{LinkMatrix, MatrixWatch};
use degrade::Chunk;

const INITIAL_BUFFER: usize = 16 * 1024;
const MAX_BUFFER: usize = 256 * 1024;

/// Live per-connection byte counters, readable while the connection is open.
#[derive(Debug, Default)]
pub struct ByteCounters {
    pub forward: AtomicU64,
    pub reverse: AtomicU64,
}

/// Metric handles resolved once per connection, never per chunk.
#[derive(Clone)]
pub struct RelayMetrics {
    pub bytes_forward: Counter,
    pub bytes_reverse: Counter,
    pub delay: Histogram,
}

impl RelayMetrics {
    pub fn noop() -> RelayMetrics {
        RelayMetrics {
            bytes_forward: Counter::noop(),
            bytes_reverse: Counter::noop(),
            delay: Histogram::noop(),
        }
    }
}

/// Relays between `client` and `upstream` until both directions finished (FIN
/// propagated each way) or one failed. On `Err` the caller should reset both sockets.
pub async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    link: Link,
    watch: MatrixWatch,
    counters: Arc<ByteCounters>,
    metrics: RelayMetrics,
) -> Result<(), RelayError> {
    let forward = Pump::new(
        client,
        upstream,
        Direction::Forward,
        link,
        watch.clone(),
        counters.clone(),
        &metrics,
    );
    let reverse = Pump::new(
        upstream,
        client,
        Direction::Reverse,
        link,
        watch,
        counters,
        &metrics,
    );
    let forward = forward.run();
    let reverse = reverse.run();
    tokio::pin!(forward, reverse);
    let (mut forward_done, mut reverse_done) = (false, false);
    while !(forward_done && reverse_done) {
        tokio::select! {
            result = &mut forward, if !forward_done => { result?; forward_done = true; }
            result = &mut reverse, if !reverse_done => { result?; reverse_done = true; }
        }
    }
    Ok(())
}

/// Makes the next close of `stream` send a RST (zero linger), like iptables REJECT.
pub fn set_reset_on_close(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// What the matrix currently asks of one direction.
enum Mode {
    Pass,
    Hold,
    Reset,
    Blackhole,
    Degrade(Degradation),
}

enum Step {
    Continue,
    Done,
}

struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    from_side: Side,
    to_side: Side,
    direction: Direction,
    flow: (usize, usize),
    endpoint: usize,
    watch: MatrixWatch,
    matrix: Arc<LinkMatrix>,
    /// Set when a wait returned because of a new matrix (`changed()` marks it seen).
    refresh: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    read_at: Instant,
    queue: VecDeque<Chunk>,
    queued: usize,
    last_due: Instant,
    next_send_at: Instant,
    eof: bool,
    discarded: u64,
    sent: u64,
    counters: Arc<ByteCounters>,
    bytes: Counter,
    delay: Histogram,
}

impl<'a> Pump<'a> {
    fn new(
        from: &'a TcpStream,
        to: &'a TcpStream,
        direction: Direction,
        link: Link,
        mut watch: MatrixWatch,
        counters: Arc<ByteCounters>,
        metrics: &RelayMetrics,
    ) -> Pump<'a> {
        let (from_side, to_side) = match direction {
            Direction::Forward => (Side::Client, Side::Upstream),
            Direction::Reverse => (Side::Upstream, Side::Client),
        };
        let matrix = watch.borrow_and_update().clone();
        let now = Instant::now();
        Pump {
            from,
            to,
            from_side,
            to_side,
            direction,
            flow: direction.flow(link),
            endpoint: link.endpoint,
            watch,
            matrix,
            refresh: false,
            buf: Vec::new(),
            start: 0,
            end: 0,
            read_at: now,
            queue: VecDeque::new(),
            queued: 0,
            last_due: now,
            next_send_at: now,
            eof: false,
            discarded: 0,
            sent: 0,
            counters,
            bytes: match direction {
                Direction::Forward => metrics.bytes_forward.clone(),
                Direction::Reverse => metrics.bytes_reverse.clone(),
            },
            delay: metrics.delay.clone(),
        }
    }

    fn mode(&mut self) -> Mode {
        if self.refresh || self.watch.has_changed().unwrap_or(false) {
            self.matrix = self.watch.borrow_and_update().clone();
            self.refresh = false;
        }
        match self.matrix.fault(self.flow.0, self.flow.1, self.endpoint) {
            None => Mode::Pass,
            Some(Fault::Hold) => Mode::Hold,
            Some(Fault::Reset) => Mode::Reset,
            Some(Fault::Blackhole) => Mode::Blackhole,
            Some(Fault::Degrade(d)) => Mode::Degrade(d.clone()),
        }
    }

    async fn run(mut self) -> Result<(), RelayError> {
        loop {
            let step = match self.mode() {
                Mode::Reset => return Err(RelayError::FaultReset(self.direction.as_str())),
                Mode::Hold => {
                    // Keep whatever was read; the sender's kernel buffers fill up behind us.
                    wait_for_change(&mut self.watch).await;
                    self.refresh = true;
                    Step::Continue
                }
                Mode::Blackhole => self.blackhole_step().await?,
                Mode::Pass => {
                    self.check_gap()?;
                    self.pass_step().await?
                }
                Mode::Degrade(d) => {
                    self.check_gap()?;
                    self.degrade_step(&d).await?
                }
            };
            if let Step::Done = step {
                return Ok(());
            }
        }
    }

    fn check_gap(&self) -> Result<(), RelayError> {
        if self.discarded > 0 {
            return Err(RelayError::Gap {
                direction: self.direction.as_str(),
                discarded: self.discarded,
            });
        }
        Ok(())
    }

    pub(super) fn io_error(side: Side, op: &'static str) -> impl FnOnce(io::Error) -> RelayError {
        move |source| RelayError::Io { side, op, source }
    }

    fn count(&mut self, n: usize) {
        self.sent += n as u64;
        self.bytes.increment(n as u64);
        let counter = match self.direction {
            Direction::Forward => &self.counters.forward,
            Direction::Reverse => &self.counters.reverse,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Waits until the source is readable (`true`) or a new matrix is published
    /// (`false`, and the next mode check reloads it).
    async fn wait_readable(&mut self) -> Result<bool, RelayError> {
        let from = self.from;
        tokio::select! {
            biased;
            ready = from.readable() => {
                ready.map_err(Self::io_error(self.from_side, "read"))?;
                Ok(true)
            }
            _ = wait_for_change(&mut self.watch) => {
                self.refresh = true;
                Ok(false)
            }
        }
    }

    /// Reads into the buffer (allocated on first readiness so idle connections stay
    /// small). Returns `None` if a matrix change interrupted the wait.
    async fn read_chunk(&mut self) -> Result<Option<usize>, RelayError> {
        if !self.wait_readable().await? {
            return Ok(None);
        }
        let from = self.from;
        if self.buf.is_empty() {
            self.buf.resize(INITIAL_BUFFER, 0);
        }
        match read_drained(from, &mut self.buf) {
            Ok(n) => {
                if n == self.buf.len() && n < MAX_BUFFER {
                    // The reader keeps filling the buffer: give it a bigger one next time.
                    self.buf.resize((n * 2).min(MAX_BUFFER), 0);
                }
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Self::io_error(self.from_side, "read")(e)),
        }
    }

    /// Writes some of `data`; `None` if a matrix change interrupted the wait.
    async fn write_some(
        to: &TcpStream,
        to_side: Side,
        watch: &mut MatrixWatch,
        data: &[u8],
    ) -> Result<Option<usize>, RelayError> {
        loop {
            match to.try_write(data) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Self::io_error(to_side, "write")(e)),
            }
            tokio::select! {
                biased;
                ready = to.writable() => ready.map_err(Self::io_error(to_side, "write"))?,
                _ = wait_for_change(watch) => return Ok(None),
            }
        }
    }

    fn finish(&self) -> Result<Step, RelayError> {
        match SockRef::from(self.to).shutdown(Shutdown::Write) {
            Ok(()) => Ok(Step::Done),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(Step::Done),
            Err(e) => Err(Self::io_error(self.to_side, "shut down")(e)),
        }
    }

    async fn pass_step(&mut self) -> Result<Step, RelayError> {
        if !self.queue.is_empty() {
            // Backlog from a degradation that just ended: deliver it now, in order.
            return self.write_front(usize::MAX).await;
        }
        if self.start < self.end {
            let data = &self.buf[self.start..self.end];
            match Self::write_some(self.to, self.to_side, &mut self.watch, data).await? {
                Some(n) => {
                    self.start += n;
                    self.count(n);
                    if self.start == self.end {
                        self.delay.record(self.read_at.elapsed().as_secs_f64());
                    }
                }
                None => self.refresh = true,
            }
            return Ok(Step::Continue);
        }
        if self.eof {
            return self.finish();
        }
        if self.buf.is_empty() {
            // No bulk transfer seen yet: wait for readiness without owning a buffer.
            if !self.wait_readable().await? {
                return Ok(Step::Continue);
            }
            return self.forward_small();
        }
        match self.read_chunk().await? {
            Some(0) => self.eof = true,
            Some(n) => {
                self.start = 0;
                self.end = n;
                self.read_at = Instant::now();
            }
            None => {}
        }
        Ok(Step::Continue)
    }

    /// Request/response traffic: read into a stack buffer and write it straight
    /// through, so a connection that never moves bulk data never owns a heap buffer
    /// (idle connections stay small). Whatever cannot be written at once, or meets a
    /// newly published matrix, moves to the heap buffer and takes the normal path.
    fn forward_small(&mut self) -> Result<Step, RelayError> {
        let mut stack = [0u8; INITIAL_BUFFER];
        let n = match read_drained(self.from, &mut stack) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Continue),
            Err(e) => return Err(Self::io_error(self.from_side, "read")(e)),
        };
        if n == 0 {
            self.eof = true;
            return Ok(Step::Continue);
        }
        let read_at = Instant::now();
        let mut written = 0;
        // A fault published since this step began must be seen before any byte moves.
        if !self.watch.has_changed().unwrap_or(false) {
            written = match self.to.try_write(&stack[..n]) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(Self::io_error(self.to_side, "write")(e)),
            };
            self.count(written);
            if written == n {
                self.delay.record(read_at.elapsed().as_secs_f64());
                return Ok(Step::Continue);
            }
        }
        let capacity = if n == stack.len() {
            2 * INITIAL_BUFFER
        } else {
            INITIAL_BUFFER
        };
        self.buf.resize(capacity, 0);
        self.buf[..n - written].copy_from_slice(&stack[written..n]);
        self.start = 0;
        self.end = n - written;
        self.read_at = read_at;
        Ok(Step::Continue)
    }

    async fn blackhole_step(&mut self) -> Result<Step, RelayError> {
        self.discarded += (self.end - self.start) as u64 + self.queued as u64;
        self.start = 0;
        self.end = 0;
        self.queue.clear();
        self.queued = 0;
        if self.eof {
            wait_for_change(&mut self.watch).await;
            self.refresh = true;
            return Ok(Step::Continue);
        }
        match self.read_chunk().await? {
            Some(0) => self.eof = true,
            Some(n) => self.discarded += n as u64,
            None => {}
        }
        Ok(Step::Continue)
    }
}

/// Reads like `try_read` and, like tokio's own `poll_read`, takes a short read as proof
/// that the socket is drained: the next wait goes straight to epoll instead of paying
/// for a read that returns EAGAIN. The readiness tick is taken before the read, so
/// bytes that arrive meanwhile still wake the relay.
fn read_drained(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len();
    let mut short = None;
    let result = stream.try_io(Interest::READABLE, || match stream.try_read(buf) {
        Ok(n) if n > 0 && n < len => {
            short = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match short {
        Some(n) => Ok(n),
        None => result,
    }
}

/// Waits for the next published matrix. If the control plane is gone the proxy is
/// shutting down; the relay is then aborted by its owner, so wait forever.
async fn wait_for_change(watch: &mut MatrixWatch) {
    if watch.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
