//! The upstream that every bench target forwards to.
//!
//! Each target gets its own echo server on its own thread and single-threaded runtime, so
//! the server side costs the same for every target and one target's leftover connections
//! (TIME_WAIT, idle sockets) never land on another's listener. The first byte of a
//! connection picks what the server does with it, which lets every workload share one
//! listener while the proxies in between see nothing but plain TCP.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echo every byte back until the client closes.
pub const MODE_ECHO: u8 = b'E';
/// Read an 8-byte big-endian length, swallow that many bytes, answer one [`SINK_ACK`] byte.
pub const MODE_SINK: u8 = b'S';
/// The byte a sink connection answers once the whole stream has arrived.
pub const SINK_ACK: u8 = b'K';

/// Large enough that bulk throughput is bounded by the path under test, not this loop.
const BUF_SIZE: usize = 256 * 1024;

/// A running in-process echo server (for tests); stops when dropped.
#[cfg(test)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl EchoServer {
    /// Binds 127.0.0.1 on a free port and serves on a dedicated thread.
    pub fn start() -> io::Result<Self> {
        let std_listener = bind_loopback()?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("echo-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("echo server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("echo listener");
                    tokio::select! {
                        _ = accept_loop(listener) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds 127.0.0.1 on a free port with a deep accept queue: the standard library's
/// backlog of 128 overflows when a proxy dials a burst of connections, and each
/// overflow costs the client a 1 s SYN retransmission that would be blamed on the proxy.
fn bind_loopback() -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The echo server as its own process (`rift-bench --serve-echo`): the proxies hold two
/// descriptors per connection and the harness one, so with 10,000 connections the echo
/// side must not share the harness's descriptor limit. Prints its address on stdout and
/// exits when its stdin closes, so it never outlives the harness.
pub fn serve_process() -> io::Result<()> {
    let std_listener = bind_loopback()?;
    println!("{}", std_listener.local_addr()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(std_listener)?;
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        tokio::select! {
            _ = accept_loop(listener) => {}
            _ = async { while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
        }
        Ok(())
    })
}

/// A running `--serve-echo` child; killed when dropped.
pub struct EchoProcess {
    addr: SocketAddr,
    child: std::process::Child,
}

impl EchoProcess {
    pub fn spawn() -> io::Result<Self> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("--serve-echo")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = line.trim().parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("echo process printed {line:?}: {e}"),
            )
        })?;
        Ok(Self { addr, child })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    // A client that goes away mid-stream is normal at the end of a workload.
                    let _ = serve(stream).await;
                });
            }
            // Running out of descriptors during the 10,000-connection runs must not kill
            // the server: back off and let the workload report the failed connects.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mode = stream.read_u8().await?;
    match mode {
        MODE_ECHO => {
            // Idle connections are the common case in the memory workload: start small.
            let mut buf = vec![0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                stream.write_all(&buf[..n]).await?;
                if n == buf.len() && buf.len() < BUF_SIZE {
                    buf.resize(buf.len() * 4, 0);
                }
            }
        }
        MODE_SINK => {
            let mut remaining = stream.read_u64().await?;
            let mut buf = vec![0u8; BUF_SIZE];
            while remaining > 0 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                remaining = remaining.saturating_sub(n as u64);
            }
            stream.write_all(&[SINK_ACK]).await
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown echo mode byte {other:#04x}"),
        )),
    }
}
