//! A recording: the live capture plus what the judgement needs from the proxy — the
//! socket map of its connections and its fault events — polled from the control API
//! while the capture runs, and written next to `capture.pcap` in one directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rift_proxy::client::ApiClient;
use rift_proxy::control::ConnectionSockets;
use serde_json::Value;
use thiserror::Error;

use super::files;
use super::live::{self, Capture, CaptureError, CaptureOptions, CaptureStats};

/// Status polls: connections that open and close between two polls stay listed in
/// the proxy's closed ring (4096 deep), so nothing is missed at this pace.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("reading the proxy at {api}: {source}")]
    Api {
        api: String,
        #[source]
        source: rift_proxy::client::ClientError,
    },
    #[error("topology endpoint {node}/{endpoint}: upstream {upstream:?} has no port")]
    Upstream {
        node: String,
        endpoint: String,
        upstream: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub api: String,
    pub dir: PathBuf,
    /// Default: the interface carrying the first listener's address.
    pub interface: Option<String>,
    pub snaplen: u32,
}

/// A running recording; poll it with [`Recording::poll`] and end it with [`Recording::finish`].
pub struct Recording {
    client: ApiClient,
    api: String,
    dir: PathBuf,
    capture: Capture,
    sockets: Vec<ConnectionSockets>,
    events: Vec<Value>,
    last_seq: u64,
    ports: BTreeSet<u16>,
}

impl Recording {
    /// Reads the topology for the lab's ports (every listener and upstream), opens the
    /// capture (failing here without CAP_NET_RAW), and takes the first snapshot.
    pub async fn start(options: RecordOptions) -> Result<Recording, RecordError> {
        let client = ApiClient::new(&options.api);
        let api_error = |source| RecordError::Api {
            api: options.api.clone(),
            source,
        };
        let topology = client.topology().await.map_err(api_error)?;
        let mut ports = BTreeSet::new();
        let mut first_ip = None;
        for node in &topology.nodes {
            for endpoint in &node.endpoints {
                ports.insert(endpoint.listen.port());
                first_ip.get_or_insert(endpoint.listen.ip());
                let port = endpoint
                    .upstream
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .ok_or_else(|| RecordError::Upstream {
                        node: node.name.clone(),
                        endpoint: endpoint.name.clone(),
                        upstream: endpoint.upstream.clone(),
                    })?;
                ports.insert(port);
            }
        }
        let interface = options
            .interface
            .clone()
            .or_else(|| first_ip.and_then(live::interface_for))
            .unwrap_or_else(|| "lo".to_string());
        std::fs::create_dir_all(&options.dir).map_err(|source| RecordError::Write {
            path: options.dir.display().to_string(),
            source,
        })?;
        let capture = live::start(CaptureOptions {
            interface,
            ports: ports.clone(),
            snaplen: options.snaplen,
            path: options.dir.join(files::PCAP),
        })?;
        let mut recording = Recording {
            client,
            api: options.api,
            dir: options.dir,
            capture,
            sockets: Vec::new(),
            events: Vec::new(),
            last_seq: 0,
            ports,
        };
        recording.poll().await?;
        recording.keep_open_faults_only();
        Ok(recording)
    }

    pub fn ports(&self) -> &BTreeSet<u16> {
        &self.ports
    }

    pub fn poll_interval() -> Duration {
        POLL
    }

    /// Of the events from before the capture, keeps only the applies of faults still
    /// active: a window that closed before the first packet cannot be judged.
    fn keep_open_faults_only(&mut self) {
        let open: Vec<u64> = super::judge::windows_from_events(&self.events)
            .iter()
            .filter(|w| w.healed_unix_ms.is_none())
            .map(|w| w.id)
            .collect();
        self.events.retain(|e| {
            e["event"] == "apply" && e["id"].as_u64().is_some_and(|id| open.contains(&id))
        });
    }

    /// Merges the proxy's current socket map and new events.
    pub async fn poll(&mut self) -> Result<(), RecordError> {
        let api_error = |source| RecordError::Api {
            api: self.api.clone(),
            source,
        };
        let status = self.client.status().await.map_err(api_error)?;
        for socket in status.sockets {
            match self.sockets.iter_mut().find(|s| {
                s.client == socket.client
                    && s.listener == socket.listener
                    && s.opened_unix_ms == socket.opened_unix_ms
            }) {
                Some(known) => *known = socket,
                None => self.sockets.push(socket),
            }
        }
        let events =
            self.client
                .events(self.last_seq)
                .await
                .map_err(|source| RecordError::Api {
                    api: self.api.clone(),
                    source,
                })?;
        for event in events {
            self.last_seq = self.last_seq.max(event["seq"].as_u64().unwrap_or(0));
            self.events.push(event);
        }
        Ok(())
    }

    /// Polls until `duration` passed (or forever when None) or `stop` resolves.
    pub async fn run(
        &mut self,
        duration: Option<Duration>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), RecordError> {
        let deadline = duration.map(|d| tokio::time::Instant::now() + d);
        tokio::pin!(stop);
        loop {
            let tick = tokio::time::sleep(POLL);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tick => {}
            }
            self.poll().await?;
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(());
            }
        }
    }

    /// A last poll, stops the capture, writes the socket map and events.
    pub async fn finish(mut self) -> Result<CaptureStats, RecordError> {
        let polled = self.poll().await;
        let stats = self.capture.stop()?;
        polled?;
        write_files(&self.dir, &self.sockets, &self.events)?;
        Ok(stats)
    }
}

fn write_files(
    dir: &Path,
    sockets: &[ConnectionSockets],
    events: &[Value],
) -> Result<(), RecordError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| RecordError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write(
        files::SOCKETS,
        serde_json::to_string_pretty(sockets).expect("sockets serialise"),
    )?;
    write(
        files::EVENTS,
        events.iter().map(|e| format!("{e}\n")).collect(),
    )
}
