//! The live capture: pnet's datalink channel on one interface (Ethernet frames; on
//! `lo` with zero MACs), TCP segments to or from the lab's ports kept, written to a
//! classic pcap as they arrive. A thread of its own, never in the relay's path.
//! Packets are stamped when read from the socket (µs), a little after the kernel saw
//! them. Needs root or CAP_NET_RAW.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use pnet::datalink::{self, Channel, Config};
use serde::Serialize;
use thiserror::Error;

use super::pcap::{LoopbackDedup, PcapError, PcapWriter, parse_tcp};

/// Bytes of each frame kept in the file: headers and the start of the payload.
pub const DEFAULT_SNAPLEN: u32 = 256;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error(
        "packet capture on {interface} needs the CAP_NET_RAW capability (or root): grant it once with \
         `sudo setcap cap_net_raw+ep {binary}`, or run as root"
    )]
    Permission {
        interface: String,
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no network interface {name:?} to capture on (available: {available})")]
    NoInterface { name: String, available: String },
    #[error("capture on {interface}: {message}")]
    Channel { interface: String, message: String },
    #[error("capture on {interface} failed: {source}")]
    Receive {
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: PcapError,
    },
    #[error("the capture thread panicked")]
    Panicked,
}

#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub interface: String,
    /// TCP segments with either port in this set are kept.
    pub ports: BTreeSet<u16>,
    pub snaplen: u32,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptureStats {
    pub interface: String,
    pub path: String,
    pub frames_seen: u64,
    pub frames_written: u64,
    /// Second copies of loopback frames, dropped (see [`LoopbackDedup`]).
    pub loopback_copies_dropped: u64,
}

/// A running capture; [`Capture::stop`] ends it and returns what it wrote.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<CaptureStats, CaptureError>>,
}

/// Opens the channel (so a missing capability is reported here, before anything
/// else starts) and captures on a thread of its own.
pub fn start(options: CaptureOptions) -> Result<Capture, CaptureError> {
    let interfaces = datalink::interfaces();
    let Some(interface) = interfaces
        .iter()
        .find(|i| i.name == options.interface)
        .cloned()
    else {
        return Err(CaptureError::NoInterface {
            name: options.interface.clone(),
            available: interfaces
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let config = Config {
        // Loopback frames reach 64 KiB; the IP length still counts a cut frame's payload.
        read_buffer_size: 65536 + 128,
        read_timeout: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let name = options.interface.clone();
    let mut rx = match datalink::channel(&interface, config) {
        Ok(Channel::Ethernet(_tx, rx)) => rx,
        Ok(_) => {
            return Err(CaptureError::Channel {
                interface: name,
                message: "not an Ethernet channel".into(),
            });
        }
        Err(source) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(CaptureError::Permission {
                interface: name,
                binary: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "rift".into()),
                source,
            });
        }
        Err(source) => {
            return Err(CaptureError::Receive {
                interface: name,
                source,
            });
        }
    };
    let path = options.path.display().to_string();
    let file = File::create(&options.path).map_err(|source| CaptureError::Create {
        path: path.clone(),
        source,
    })?;
    let write_error = |source| CaptureError::Write {
        path: path.clone(),
        source,
    };
    let mut writer = PcapWriter::new(BufWriter::new(file), options.snaplen).map_err(write_error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("rift-capture".into())
        .spawn(move || {
            let mut stats = CaptureStats {
                interface: name.clone(),
                path: path.clone(),
                frames_seen: 0,
                frames_written: 0,
                loopback_copies_dropped: 0,
            };
            let mut dedup = interface.is_loopback().then(LoopbackDedup::default);
            let mut flushed = Instant::now();
            let write_error = |source| CaptureError::Write {
                path: path.clone(),
                source,
            };
            while !stopping.load(Ordering::Relaxed) {
                match rx.next() {
                    Ok(frame) => {
                        let ts_us = unix_us();
                        stats.frames_seen += 1;
                        let keep = parse_tcp(ts_us, frame).is_some_and(|s| {
                            options.ports.contains(&s.src.port())
                                || options.ports.contains(&s.dst.port())
                        });
                        if keep && dedup.as_mut().is_some_and(|d| d.is_copy(ts_us, frame)) {
                            stats.loopback_copies_dropped += 1;
                        } else if keep {
                            writer.write_frame(ts_us, frame).map_err(write_error)?;
                            stats.frames_written += 1;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(CaptureError::Receive {
                            interface: name,
                            source,
                        });
                    }
                }
                // A capture cut short by a crash still leaves a readable file.
                if flushed.elapsed() > Duration::from_secs(1) {
                    writer.flush().map_err(write_error)?;
                    flushed = Instant::now();
                }
            }
            writer.flush().map_err(write_error)?;
            Ok(stats)
        })
        .map_err(|source| CaptureError::Receive {
            interface: options.interface.clone(),
            source,
        })?;
    Ok(Capture { stop, thread })
}

impl Capture {
    /// Stops within the read timeout (100 ms) and returns the counts.
    pub fn stop(self) -> Result<CaptureStats, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| CaptureError::Panicked)?
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The interface that carries traffic to `ip` on this host: `lo` for loopback
/// addresses, else the first interface holding an address in the same network.
pub fn interface_for(ip: std::net::IpAddr) -> Option<String> {
    let interfaces = datalink::interfaces();
    if ip.is_loopback() {
        return interfaces
            .iter()
            .find(|i| i.is_loopback())
            .map(|i| i.name.clone());
    }
    interfaces
        .iter()
        .find(|i| i.ips.iter().any(|net| net.contains(ip)))
        .map(|i| i.name.clone())
}

/// Reads a capture file back into TCP segments.
pub fn read_segments(path: &Path) -> Result<Vec<super::pcap::Segment>, std::io::Error> {
    let bytes = std::fs::read(path)?;
    let records = super::pcap::read_pcap(&bytes, &path.display().to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(records
        .iter()
        .filter_map(|r| parse_tcp(r.ts_us, &r.data))
        .collect())
}
