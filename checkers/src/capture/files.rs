//! The files of a recording directory and the judgement over them, so a capture can
//! be re-judged later (`rift capture check DIR`) from what it left on disk.

use std::path::Path;

use rift_proxy::control::ConnectionSockets;
use serde_json::Value;
use thiserror::Error;

use super::judge::{NoCrossing, Settings, judge, windows_from_events};
use super::pcap::{PcapError, parse_tcp, read_pcap};

/// The packets (classic pcap, Ethernet).
pub const PCAP: &str = "capture.pcap";
/// The proxy's connections with their socket addresses, JSON array.
pub const SOCKETS: &str = "capture-sockets.json";
/// The proxy's events while capturing, JSON lines.
pub const EVENTS: &str = "capture-events.jsonl";

#[derive(Debug, Error)]
pub enum FilesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error(transparent)]
    Pcap(#[from] PcapError),
}

/// Reads a recording directory and judges it.
pub fn judge_dir(dir: &Path, settings: Settings) -> Result<NoCrossing, FilesError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| FilesError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let pcap_path = dir.join(PCAP).display().to_string();
    let segments: Vec<_> = read_pcap(&read(PCAP)?, &pcap_path)?
        .iter()
        .filter_map(|r| parse_tcp(r.ts_us, &r.data))
        .collect();
    let sockets_path = dir.join(SOCKETS).display().to_string();
    let sockets: Vec<ConnectionSockets> =
        serde_json::from_slice(&read(SOCKETS)?).map_err(|e| FilesError::Parse {
            path: sockets_path,
            message: e.to_string(),
        })?;
    let events_path = dir.join(EVENTS).display().to_string();
    let text = String::from_utf8_lossy(&read(EVENTS)?).into_owned();
    let mut events = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let event: Value = serde_json::from_str(line).map_err(|e| FilesError::Parse {
            path: format!("{events_path} line {}", n + 1),
            message: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(judge(
        &segments,
        &sockets,
        &windows_from_events(&events),
        settings,
    ))
}
