//! One proxied connection: two pumps (upstream: client -> server, downstream: server
//! -> client), each applying its stream's toxics to the bytes it moves.
//!
//! A pump consults the proxy's toxic chains between every read and the matching write
//! and races every wait against a `watch` notification, so adding, changing or removing
//! a toxic takes effect on live connections at their next wake-up, and the API never
//! waits on a relay. A chunk that was read is never dropped by a change: held bytes
//! (latency, `bandwidth` rate 0) stay queued and are delivered when the toxic goes.
//! Only `timeout` and `reset_peer` swallow data, as in Toxiproxy.
//!
//! With no toxic, the pump reads into a stack buffer (a heap one once a read fills it)
//! and writes straight back out; only bytes the destination cannot take at once are
//! copied into the queue.

use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::rift::{RiftView, RiftWatch};
use super::toxics::{Kind, Slicer, Stream, Toxic};
use crate::fault::Fault;
use crate::matrix::MatrixWatch;

/// The stack buffer of request/response traffic, and the heap buffer of bulk streams.
const SMALL: usize = 16 * 1024;
const BUFFER: usize = 256 * 1024;
/// Bytes a pump may hold back (latency, stalled bandwidth) before it stops reading and
/// lets TCP flow control push back on the sender.
const MAX_QUEUED: usize = 4 * 1024 * 1024;

/// The toxics of one proxy, per stream, in the order they were added.
#[derive(Debug, Default)]
pub struct Chains {
    pub upstream: Vec<Toxic>,
    pub downstream: Vec<Toxic>,
}

impl Chains {
    pub fn stream(&self, stream: Stream) -> &[Toxic] {
        match stream {
            Stream::Upstream => &self.upstream,
            Stream::Downstream => &self.downstream,
        }
    }
}

pub type ChainsWatch = watch::Receiver<Arc<Chains>>;

/// A connection's place among rift's nodes: who dialed (a node name or `client`),
/// the proxy's node name, and the control plane's matrix to obey.
#[derive(Clone)]
pub struct RiftLink {
    views: RiftWatch,
    view: Arc<RiftView>,
    matrix: MatrixWatch,
    src: String,
    dst: String,
}

impl RiftLink {
    pub fn new(mut views: RiftWatch, src: String, dst: String) -> RiftLink {
        let view = views.borrow_and_update().clone();
        let mut matrix = view.matrix.clone();
        matrix.borrow_and_update();
        RiftLink {
            views,
            view,
            matrix,
            src,
            dst,
        }
    }

    pub fn src(&self) -> &str {
        &self.src
    }

    fn has_changed(&self) -> bool {
        self.views.has_changed().unwrap_or(false) || self.matrix.has_changed().unwrap_or(false)
    }

    /// Takes the newest view and matrix.
    fn refresh(&mut self) {
        // `changed()` may already have marked a new view seen: compare, do not ask.
        let latest = self.views.borrow_and_update().clone();
        if !Arc::ptr_eq(&latest, &self.view) {
            self.view = latest;
            self.matrix = self.view.matrix.clone();
        }
        self.matrix.borrow_and_update();
    }

    /// Waits for a new matrix or a rebuilt control plane. A closed channel (a control
    /// plane replaced by a rebuild) never wakes; the view channel does.
    async fn changed(&mut self) {
        // A closed channel disables its branch instead of ending the wait.
        tokio::select! {
            Ok(()) = self.views.changed() => {}
            Ok(()) = self.matrix.changed() => {}
            else => std::future::pending::<()>().await,
        }
    }

    /// The rift fault on bytes flowing client -> proxy (`forward`) or back, if any.
    fn fault(&self, forward: bool) -> Option<Fault> {
        let ids = &self.view.ids;
        let src = ids.index(&self.src)?;
        let dst = ids.index(&self.dst)?;
        let (from, to) = if forward { (src, dst) } else { (dst, src) };
        let endpoint = ids.endpoint_index(super::rift::ENDPOINT)?;
        self.matrix.borrow().fault(from, to, endpoint).cloned()
    }

    /// Whether a new connection may be dialed (`false`: reset it). Waits while the
    /// link is cut: the closest an L4 proxy gets to a dropped SYN.
    pub async fn admit(&mut self) -> bool {
        loop {
            self.refresh();
            let (forward, reverse) = (self.fault(true), self.fault(false));
            if matches!(forward, Some(Fault::Reset)) || matches!(reverse, Some(Fault::Reset)) {
                return false;
            }
            let cut = forward.as_ref().is_some_and(Fault::is_cut)
                || reverse.as_ref().is_some_and(Fault::is_cut);
            if !cut {
                return true;
            }
            self.changed().await;
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both streams finished (FIN propagated each way).
    Finished,
    /// A toxic (`limit_data`, `timeout`) or an I/O error closed the connection.
    Close(&'static str),
    /// `reset_peer`, a rift `reset` fault, or a heal after a rift `blackhole` left a
    /// hole in the stream: both sockets are reset (RST).
    Reset,
}

/// Relays between `client` and `upstream` under the proxy's toxics until the
/// connection ends. The caller closes or resets the sockets accordingly.
pub async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    chains: ChainsWatch,
    rift: Option<RiftLink>,
) -> End {
    let up = Pump::new(
        client,
        upstream,
        Stream::Upstream,
        chains.clone(),
        rift.clone(),
    )
    .run();
    let down = Pump::new(upstream, client, Stream::Downstream, chains, rift).run();
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
        };
        if end != End::Finished {
            return end;
        }
    }
    End::Finished
}

/// Makes the next close of `stream` send a RST.
pub fn set_reset_on_close(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// What the active toxics of one stream ask for, for one connection.
#[derive(Debug, Default)]
struct Effect {
    /// (latency, jitter) in ms of each active `latency` toxic; they add up.
    latency: Vec<(u64, u64)>,
    /// Bytes per second of the slowest active `bandwidth` toxic; 0 stalls.
    rate: Option<u64>,
    slicer: Option<Slicer>,
    /// (toxic id, byte limit) of each active `limit_data` toxic.
    limits: Vec<(u64, u64)>,
    slow_close_ms: u64,
    /// Timeout in ms of an active `timeout` toxic (0: never closes by itself).
    timeout_ms: Option<u64>,
    /// Timeout in ms of an active `reset_peer` toxic.
    reset_ms: Option<u64>,
    /// rift `hold`: neither read nor write until heal; nothing is lost.
    hold: bool,
    /// rift `blackhole`: read and discard; the connection is reset on heal.
    blackhole: bool,
}

impl Effect {
    fn is_pass(&self) -> bool {
        self.latency.is_empty()
            && self.rate.is_none()
            && self.slicer.is_none()
            && self.limits.is_empty()
            && self.timeout_ms.is_none()
            && self.reset_ms.is_none()
            && !self.hold
            && !self.blackhole
    }

    fn delay(&self) -> Duration {
        let mut rng = rand::rng();
        let mut total: i64 = 0;
        for &(latency, jitter) in &self.latency {
            let mut delay = latency as i64;
            if jitter > 0 {
                delay += rng.random_range(-(jitter as i64)..=jitter as i64);
            }
            total += delay.max(0);
        }
        Duration::from_millis(total.max(0) as u64)
    }
}

/// A toxicity draw of one toxic for this connection.
struct Roll {
    id: u64,
    revision: u64,
    active: bool,
}

struct Chunk {
    due: Instant,
    data: Vec<u8>,
    offset: usize,
}

struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    stream: Stream,
    watch: ChainsWatch,
    chains: Arc<Chains>,
    rift: Option<RiftLink>,
    /// A rift `blackhole` discarded bytes of this stream: reset on heal.
    gap: bool,
    effect: Effect,
    rolls: Vec<Roll>,
    /// Bytes counted against each `limit_data` toxic (by toxic id).
    counted: Vec<(u64, u64)>,
    buf: Vec<u8>,
    queue: VecDeque<Chunk>,
    queued: usize,
    last_due: Instant,
    next_send_at: Instant,
    /// Bytes left in the slice being written by `slicer`.
    slice_left: usize,
    eof_at: Option<Instant>,
    limit_reached: bool,
    timeout_at: Option<Instant>,
    reset_at: Option<Instant>,
    /// Set when a wait returned because of a new chain version (`changed()` marks it
    /// seen, so `has_changed()` would not report it again).
    refresh: bool,
}

/// Waits for the next chain version or rift matrix. If the proxy is gone its owner
/// aborts this connection, so wait forever.
async fn changed(watch: &mut ChainsWatch, rift: &mut Option<RiftLink>) {
    let rift_changed = async {
        match rift {
            Some(link) => link.changed().await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        Ok(()) = watch.changed() => {}
        _ = rift_changed => {}
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<'a> Pump<'a> {
    fn new(
        from: &'a TcpStream,
        to: &'a TcpStream,
        stream: Stream,
        mut watch: ChainsWatch,
        mut rift: Option<RiftLink>,
    ) -> Self {
        if let Some(link) = rift.as_mut() {
            link.refresh();
        }
        let chains = watch.borrow_and_update().clone();
        let now = Instant::now();
        let mut pump = Pump {
            from,
            to,
            stream,
            watch,
            chains: Arc::new(Chains::default()),
            rift,
            gap: false,
            effect: Effect::default(),
            rolls: Vec::new(),
            counted: Vec::new(),
            buf: Vec::new(),
            queue: VecDeque::new(),
            queued: 0,
            last_due: now,
            next_send_at: now,
            slice_left: 0,
            eof_at: None,
            limit_reached: false,
            timeout_at: None,
            reset_at: None,
            refresh: false,
        };
        pump.install(chains);
        pump
    }

    /// Takes a new chain version. Returns an end if the change closes the connection:
    /// removing a `timeout` toxic closes every connection it was attached to, as
    /// Toxiproxy's cleanup does.
    fn install(&mut self, chains: Arc<Chains>) -> Option<End> {
        let now = Instant::now();
        let old = std::mem::replace(&mut self.chains, chains);
        let toxics = self.chains.stream(self.stream);
        let removed_timeout = old
            .stream(self.stream)
            .iter()
            .any(|t| matches!(t.kind, Kind::Timeout(_)) && !toxics.iter().any(|n| n.id == t.id));
        if removed_timeout {
            return Some(End::Close("its timeout toxic was removed"));
        }
        let mut rolls = Vec::with_capacity(toxics.len());
        let mut effect = Effect::default();
        for toxic in toxics {
            let active = match self.rolls.iter().find(|r| r.id == toxic.id) {
                Some(r) if r.revision == toxic.revision => r.active,
                _ => toxic.toxicity >= 1.0 || rand::rng().random::<f32>() < toxic.toxicity,
            };
            rolls.push(Roll {
                id: toxic.id,
                revision: toxic.revision,
                active,
            });
            if !active {
                continue;
            }
            match &toxic.kind {
                Kind::Latency(l) => effect.latency.push((l.latency as u64, l.jitter as u64)),
                Kind::Bandwidth(b) => {
                    let rate = b.rate as u64 * 1000;
                    effect.rate = Some(effect.rate.map_or(rate, |r| r.min(rate)));
                }
                Kind::Slicer(s) => {
                    effect.slicer.get_or_insert_with(|| s.clone());
                }
                Kind::LimitData(l) => effect.limits.push((toxic.id, l.bytes as u64)),
                Kind::SlowClose(s) => effect.slow_close_ms += s.delay as u64,
                Kind::Timeout(t) => {
                    effect.timeout_ms.get_or_insert(t.timeout as u64);
                }
                Kind::ResetPeer(r) => {
                    effect.reset_ms.get_or_insert(r.timeout as u64);
                }
                Kind::Noop(_) => {}
            }
        }
        if let Some(link) = &self.rift {
            match link.fault(self.stream == Stream::Upstream) {
                None => {}
                Some(Fault::Hold) => effect.hold = true,
                Some(Fault::Reset) => return Some(End::Reset),
                Some(Fault::Blackhole) => effect.blackhole = true,
                Some(Fault::Degrade(d)) => {
                    if d.latency_ms > 0 || d.jitter_ms > 0 {
                        effect.latency.push((d.latency_ms, d.jitter_ms));
                    }
                    if d.bandwidth_bytes_per_sec > 0 {
                        let rate = d.bandwidth_bytes_per_sec;
                        effect.rate = Some(effect.rate.map_or(rate, |r| r.min(rate)));
                    }
                    effect.slow_close_ms += d.slow_close_ms;
                    if d.limit_data_bytes > 0 {
                        // Id 0 belongs to no toxic: rift's own data limit.
                        effect.limits.push((0, d.limit_data_bytes));
                    }
                }
            }
        }
        if self.gap && !effect.blackhole {
            return Some(End::Reset);
        }
        self.rolls = rolls;
        self.counted
            .retain(|(id, _)| effect.limits.iter().any(|(l, _)| l == id));
        if effect.latency.is_empty() {
            // Held bytes go out now, in order.
            for chunk in &mut self.queue {
                chunk.due = now;
            }
            self.last_due = now;
        }
        if effect.rate != self.effect.rate {
            self.next_send_at = now;
        }
        if effect.slicer.is_none() {
            self.slice_left = 0;
        }
        self.timeout_at = match effect.timeout_ms {
            Some(0) | None => None,
            Some(ms) if self.effect.timeout_ms == Some(ms) => self.timeout_at,
            Some(ms) => Some(now + Duration::from_millis(ms)),
        };
        if effect.reset_ms.is_none() {
            self.reset_at = None;
        }
        self.effect = effect;
        None
    }

    async fn run(mut self) -> End {
        loop {
            let rift_changed = self.rift.as_mut().is_some_and(|l| l.has_changed());
            if self.refresh || rift_changed || self.watch.has_changed().unwrap_or(false) {
                if let Some(link) = self.rift.as_mut() {
                    link.refresh();
                }
                self.refresh = false;
                let chains = self.watch.borrow_and_update().clone();
                if let Some(end) = self.install(chains) {
                    return end;
                }
            }
            match self.step().await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(error) => {
                    tracing::debug!(stream = self.stream.as_str(), %error, "stream failed");
                    return End::Close("an I/O error");
                }
            }
        }
    }

    /// When the front of the queue may be written, if it may be written at all.
    fn front_due(&self) -> Option<Instant> {
        let front = self.queue.front()?;
        if self.effect.rate == Some(0) {
            return None;
        }
        Some(front.due.max(self.next_send_at))
    }

    async fn step(&mut self) -> io::Result<Option<End>> {
        let now = Instant::now();
        if let Some(at) = self.reset_at
            && at <= now
        {
            return Ok(Some(End::Reset));
        }
        if let Some(at) = self.timeout_at
            && at <= now
        {
            return Ok(Some(End::Close("timeout toxic")));
        }
        if self.effect.hold {
            // Keep whatever was read; the sender's kernel buffers fill up behind us.
            changed(&mut self.watch, &mut self.rift).await;
            self.refresh = true;
            return Ok(None);
        }
        let due = self.front_due();
        if let Some(due) = due
            && due <= now
        {
            return self.write_front().await.map(|_| None);
        }
        if self.queue.is_empty() {
            if self.limit_reached {
                return Ok(Some(End::Close("limit_data reached")));
            }
            if let Some(eof_at) = self.eof_at {
                let close_at = eof_at + Duration::from_millis(self.effect.slow_close_ms);
                if close_at <= now {
                    return match SockRef::from(self.to).shutdown(Shutdown::Write) {
                        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
                        _ => Ok(Some(End::Finished)),
                    };
                }
                tokio::select! {
                    _ = changed(&mut self.watch, &mut self.rift) => self.refresh = true,
                    _ = tokio::time::sleep_until(close_at) => {}
                }
                return Ok(None);
            }
            if self.effect.is_pass() {
                return self.pass().await;
            }
        }
        let can_read = self.eof_at.is_none()
            && !self.limit_reached
            && self.reset_at.is_none()
            && self.queued < MAX_QUEUED;
        let deadline = [due, self.timeout_at, self.reset_at]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            biased;
            _ = changed(&mut self.watch, &mut self.rift) => self.refresh = true,
            _ = wait_until(deadline) => {}
            ready = self.from.readable(), if can_read => {
                ready?;
                self.read_toxic()?;
            }
        }
        Ok(None)
    }

    /// No toxic and nothing queued: read and write straight through.
    async fn pass(&mut self) -> io::Result<Option<End>> {
        tokio::select! {
            biased;
            _ = changed(&mut self.watch, &mut self.rift) => {
                self.refresh = true;
                return Ok(None);
            }
            ready = self.from.readable() => ready?,
        }
        // Request/response traffic reads into the stack, so an idle or chatty
        // connection owns no heap buffer; a read that fills it marks a bulk stream,
        // which gets a large buffer from then on.
        let mut stack = [0u8; SMALL];
        let buf: &mut [u8] = if self.buf.is_empty() {
            &mut stack
        } else {
            &mut self.buf
        };
        let n = match self.from.try_read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.eof_at = Some(Instant::now());
            return Ok(None);
        }
        // A toxic or fault published since this step began must be seen before any
        // byte moves: queue the chunk and let the next step apply it.
        let published = self.watch.has_changed().unwrap_or(false)
            || self.rift.as_ref().is_some_and(RiftLink::has_changed);
        let written = if published {
            0
        } else {
            match self.to.try_write(&buf[..n]) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            }
        };
        let rest = (written < n).then(|| buf[written..n].to_vec());
        if n == SMALL && self.buf.is_empty() {
            self.buf.resize(BUFFER, 0);
        }
        if let Some(data) = rest {
            self.push(Instant::now(), data);
        }
        Ok(None)
    }

    /// Reads one chunk under toxics: swallowed by `timeout`/`reset_peer`, cut at the
    /// `limit_data` limit, and queued for its latency otherwise.
    fn read_toxic(&mut self) -> io::Result<()> {
        // Queued chunks are copied out anyway: read into the stack unless this is a
        // bulk stream that already owns a large buffer.
        let mut stack = [0u8; SMALL];
        let buf: &mut [u8] = if self.buf.is_empty() {
            &mut stack
        } else {
            &mut self.buf
        };
        let n = match self.from.try_read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        if self.effect.blackhole {
            if n == 0 {
                self.eof_at = Some(now);
            } else {
                self.gap = true;
            }
            return Ok(());
        }
        if let Some(ms) = self.effect.reset_ms {
            // Toxiproxy resets on the first data (or end) that reaches the toxic.
            self.reset_at = Some(now + Duration::from_millis(ms));
            return Ok(());
        }
        if let Some(ms) = self.effect.timeout_ms {
            if n == 0 {
                self.timeout_at = Some(now);
            } else if ms > 0 {
                // Each chunk that arrives restarts the timer, as in Toxiproxy.
                self.timeout_at = Some(now + Duration::from_millis(ms));
            }
            return Ok(());
        }
        if n == 0 {
            self.eof_at = Some(now);
            return Ok(());
        }
        let mut take = n as u64;
        for &(id, limit) in &self.effect.limits {
            let counted = self
                .counted
                .iter()
                .find(|(c, _)| *c == id)
                .map_or(0, |c| c.1);
            take = take.min(limit.saturating_sub(counted));
        }
        if !self.effect.limits.is_empty() {
            for &(id, limit) in &self.effect.limits {
                let entry = match self.counted.iter_mut().find(|(c, _)| *c == id) {
                    Some(entry) => entry,
                    None => {
                        self.counted.push((id, 0));
                        self.counted.last_mut().expect("just pushed")
                    }
                };
                entry.1 += take;
                if entry.1 >= limit {
                    self.limit_reached = true;
                }
            }
        }
        if take > 0 {
            let data = buf[..take as usize].to_vec();
            self.push(now + self.effect.delay(), data);
        }
        Ok(())
    }

    fn push(&mut self, due: Instant, data: Vec<u8>) {
        // Jitter never reorders: a chunk is due no earlier than the one before it.
        let due = due.max(self.last_due);
        self.last_due = due;
        self.queued += data.len();
        self.queue.push_back(Chunk {
            due,
            data,
            offset: 0,
        });
    }

    /// Writes (part of) the front chunk: a `bandwidth` slice of at most 100 ms worth,
    /// or a `slicer` slice.
    async fn write_front(&mut self) -> io::Result<()> {
        let rate = self.effect.rate;
        let slicer = self.effect.slicer.clone();
        let Some(front) = self.queue.front_mut() else {
            return Ok(());
        };
        let mut allowed = front.data.len() - front.offset;
        if let Some(rate) = rate {
            allowed = allowed.min((rate / 10).max(1) as usize);
        }
        if let Some(slicer) = &slicer {
            if self.slice_left == 0 {
                self.slice_left = slicer.next_size();
            }
            allowed = allowed.min(self.slice_left);
        }
        let data = &front.data[front.offset..front.offset + allowed];
        let n = match self.to.try_write(data) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    biased;
                    _ = changed(&mut self.watch, &mut self.rift) => self.refresh = true,
                    ready = self.to.writable() => ready?,
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        front.offset += n;
        if front.offset == front.data.len() {
            self.queue.pop_front();
        }
        self.queued -= n;
        let now = Instant::now();
        if let Some(rate) = rate
            && rate > 0
        {
            let cost = Duration::from_secs_f64(n as f64 / rate as f64);
            self.next_send_at = self.next_send_at.max(now) + cost;
        }
        if let Some(slicer) = &slicer {
            self.slice_left = self.slice_left.saturating_sub(n);
            if self.slice_left == 0 {
                let pause = Duration::from_micros(slicer.delay as u64);
                self.next_send_at = self.next_send_at.max(now + pause);
            }
        }
        Ok(())
    }
}
