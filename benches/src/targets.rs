//! The things a workload can be pointed at: a direct connection to the echo server, or
//! one of the proxies in front of it (rift, HAProxy, socat, Toxiproxy), each started as
//! its own process with a generated configuration and no faults.
//!
//! A peer that is not installed is reported as skipped with the reason; it is never
//! replaced by something else.

use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Direct,
    Rift,
    Haproxy,
    Socat,
    Toxiproxy,
    /// rift serving the Toxiproxy API (`rift toxiproxy`), with a proxy and no toxic.
    RiftToxiproxy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Direct,
        Kind::Rift,
        Kind::Haproxy,
        Kind::Socat,
        Kind::Toxiproxy,
        Kind::RiftToxiproxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Rift => "rift",
            Kind::Haproxy => "haproxy",
            Kind::Socat => "socat",
            Kind::Toxiproxy => "toxiproxy",
            Kind::RiftToxiproxy => "rift-toxiproxy",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where each peer's executable lives.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub rift: PathBuf,
    pub haproxy: String,
    pub socat: String,
    pub toxiproxy: String,
}

/// The node name and endpoint rift's generated topology uses for the echo server.
pub const RIFT_NODE: &str = "echo";

/// A started target. Dropping it kills the proxy process.
pub struct Target {
    pub kind: Kind,
    /// Where workloads connect.
    pub addr: SocketAddr,
    /// The proxy process, whose memory the idle workload measures.
    child: Option<Child>,
    /// rift's control API (partition workload), or a Toxiproxy API (toxic workload).
    pub api_url: Option<String>,
    pub version: String,
}

impl Target {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the proxy forks a process per connection, so memory is a process tree.
    pub fn forks(&self) -> bool {
        self.kind == Kind::Socat
    }

    /// Fails if the proxy process has exited (a crash mid-run must not be measured as
    /// a slow proxy).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited during the run: {status}", self.kind);
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why a target did not take part in the run.
#[derive(Debug)]
pub enum StartError {
    /// Not installed: the message says how to install it.
    Missing(String),
    /// Installed but failed to start or to pass bytes.
    Failed(anyhow::Error),
}

/// Starts `kind` in front of `upstream`; `fd_limit` is the descriptor limit the proxy
/// inherits (HAProxy refuses to start if its connection limit does not fit in it).
pub async fn start(
    kind: Kind,
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
    fd_limit: u64,
) -> Result<Target, StartError> {
    let target = match kind {
        Kind::Direct => Ok(Target {
            kind,
            addr: upstream,
            child: None,
            api_url: None,
            version: "-".into(),
        }),
        Kind::Rift => start_rift(upstream, bins, workdir).await,
        Kind::Haproxy => start_haproxy(upstream, bins, workdir, fd_limit),
        Kind::Socat => start_socat(upstream, bins, workdir),
        Kind::Toxiproxy => start_toxiproxy(upstream, bins, workdir).await,
        Kind::RiftToxiproxy => start_rift_toxiproxy(upstream, bins, workdir).await,
    }?;
    wait_for_listener(target.addr, Duration::from_secs(10))
        .with_context(|| format!("{kind} did not start listening on {}", target.addr))
        .map_err(StartError::Failed)?;
    Ok(target)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn require(name: &str, hint: &str) -> Result<PathBuf, StartError> {
    find_program(name).ok_or_else(|| StartError::Missing(format!("{name} not found: {hint}")))
}

fn log_file(workdir: &Path, name: &str) -> Result<Stdio, StartError> {
    let file = fs::File::create(workdir.join(format!("{name}.log")))
        .with_context(|| format!("creating {name}.log in {}", workdir.display()))
        .map_err(StartError::Failed)?;
    Ok(Stdio::from(file))
}

fn spawn(cmd: &mut Command, what: &str, workdir: &Path) -> Result<Child, StartError> {
    let stdout = log_file(workdir, what)?;
    let stderr = log_file(workdir, &format!("{what}.err"))?;
    // A harness killed mid-run (a CI timeout) must not leave proxies holding ports.
    rift_proxy::sys::kill_child_when_parent_dies(cmd);
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawning {what}"))
        .map_err(StartError::Failed)
}

fn version_of(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8(text).ok()
        })
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

async fn start_rift(
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
) -> Result<Target, StartError> {
    if !bins.rift.is_file() {
        return Err(StartError::Missing(format!(
            "{} not found: build it with `cargo build --release --bin rift`",
            bins.rift.display()
        )));
    }
    let listen = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let api = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let topology = format!(
        "# Generated by rift-bench: one node whose endpoint forwards to the echo server.\n\
         [api]\nlisten = \"{api}\"\n\n[[node]]\nname = \"{RIFT_NODE}\"\n\n\
         [[node.endpoint]]\nname = \"echo\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\n"
    );
    let path = workdir.join("rift-topology.toml");
    fs::write(&path, topology)
        .with_context(|| format!("writing {}", path.display()))
        .map_err(StartError::Failed)?;
    let child = spawn(
        Command::new(&bins.rift)
            .arg("proxy")
            .arg("--topology")
            .arg(&path)
            .env("RUST_LOG", "warn"),
        "rift",
        workdir,
    )?;
    let api_url = format!("http://{api}");
    let target = Target {
        kind: Kind::Rift,
        addr: listen,
        child: Some(child),
        api_url: Some(api_url.clone()),
        version: format!(
            "{} ({})",
            version_of(&bins.rift, "--version"),
            bins.rift.display()
        ),
    };
    wait_http(&format!("{api_url}/status"), Duration::from_secs(10))
        .await
        .map_err(StartError::Failed)?;
    Ok(target)
}

fn start_haproxy(
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
    fd_limit: u64,
) -> Result<Target, StartError> {
    let program = require(
        &bins.haproxy,
        "install it with scripts/setup.sh (Debian package haproxy)",
    )?;
    let listen = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    // Plain TCP mode, long timeouts so idle connections survive, and the highest
    // connection limit the descriptor limit allows (two per connection plus a few), since
    // HAProxy's default is far below the 10,000-connection workloads.
    let maxconn = fd_limit.saturating_sub(100) / 2;
    let config = format!(
        "global\n    maxconn {maxconn}\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\n\
         frontend bench\n    bind {listen}\n    maxconn {maxconn}\n    default_backend echo\n\n\
         backend echo\n    server echo {upstream}\n"
    );
    let path = workdir.join("haproxy.cfg");
    fs::write(&path, config)
        .with_context(|| format!("writing {}", path.display()))
        .map_err(StartError::Failed)?;
    let child = spawn(
        Command::new(&program).arg("-db").arg("-f").arg(&path),
        "haproxy",
        workdir,
    )?;
    Ok(Target {
        kind: Kind::Haproxy,
        addr: listen,
        child: Some(child),
        api_url: None,
        version: version_of(&program, "-v"),
    })
}

fn start_socat(
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
) -> Result<Target, StartError> {
    let program = require(
        &bins.socat,
        "install it with scripts/setup.sh (Debian package socat)",
    )?;
    let listen = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let child = spawn(
        Command::new(&program)
            .arg(format!(
                "TCP-LISTEN:{},bind={},fork,reuseaddr,nodelay,backlog=4096",
                listen.port(),
                listen.ip()
            ))
            .arg(format!("TCP:{upstream},nodelay")),
        "socat",
        workdir,
    )?;
    Ok(Target {
        kind: Kind::Socat,
        addr: listen,
        child: Some(child),
        api_url: None,
        version: socat_version(&program),
    })
}

/// `socat -V` starts with a credits line; the version is on the line that says so.
fn socat_version(program: &Path) -> String {
    Command::new(program)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("socat version"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn start_toxiproxy(
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
) -> Result<Target, StartError> {
    let program = require(
        &bins.toxiproxy,
        "install it with scripts/setup.sh (builds Toxiproxy with go install)",
    )?;
    let listen = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let api = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let child = spawn(
        Command::new(&program)
            .arg("-host")
            .arg(api.ip().to_string())
            .arg("-port")
            .arg(api.port().to_string())
            // Toxiproxy logs every connection at info level; that would be measured too.
            .env("LOG_LEVEL", "error"),
        "toxiproxy",
        workdir,
    )?;
    let target = Target {
        kind: Kind::Toxiproxy,
        addr: listen,
        child: Some(child),
        api_url: Some(format!("http://{api}")),
        version: version_of(&program, "-version"),
    };
    create_toxiproxy_proxy(target, api, upstream).await
}

/// `rift toxiproxy`, started with toxiproxy-server's own flags.
async fn start_rift_toxiproxy(
    upstream: SocketAddr,
    bins: &Binaries,
    workdir: &Path,
) -> Result<Target, StartError> {
    if !bins.rift.is_file() {
        return Err(StartError::Missing(format!(
            "{} not found: build it with `cargo build --release --bin rift`",
            bins.rift.display()
        )));
    }
    let listen = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let api = sys::free_addr().map_err(|e| StartError::Failed(e.into()))?;
    let child = spawn(
        Command::new(&bins.rift)
            .arg("toxiproxy")
            .arg("-host")
            .arg(api.ip().to_string())
            .arg("-port")
            .arg(api.port().to_string())
            .env("RUST_LOG", "warn"),
        "rift-toxiproxy",
        workdir,
    )?;
    let target = Target {
        kind: Kind::RiftToxiproxy,
        addr: listen,
        child: Some(child),
        api_url: Some(format!("http://{api}")),
        version: format!(
            "{} toxiproxy ({})",
            version_of(&bins.rift, "--version"),
            bins.rift.display()
        ),
    };
    create_toxiproxy_proxy(target, api, upstream).await
}

/// Creates the pass-through proxy (no toxics) on a Toxiproxy API, rift's or Toxiproxy's.
async fn create_toxiproxy_proxy(
    target: Target,
    api: SocketAddr,
    upstream: SocketAddr,
) -> Result<Target, StartError> {
    let listen = target.addr;
    let base = format!("http://{api}");
    wait_http(&format!("{base}/version"), Duration::from_secs(10))
        .await
        .map_err(StartError::Failed)?;
    let body = serde_json::json!({
        "name": crate::toxibench::PROXY,
        "listen": listen.to_string(),
        "upstream": upstream.to_string(),
        "enabled": true,
    });
    let resp = reqwest::Client::new()
        .post(format!("{base}/proxies"))
        .json(&body)
        .send()
        .await
        .context("creating the Toxiproxy proxy")
        .map_err(StartError::Failed)?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(StartError::Failed(anyhow!(
            "Toxiproxy POST /proxies: {status}: {text}"
        )));
    }
    Ok(target)
}

fn wait_for_listener(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

async fn wait_http(url: &str, timeout: Duration) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        match client
            .get(url)
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if Instant::now() >= deadline => bail!("GET {url}: {}", resp.status()),
            Err(e) if Instant::now() >= deadline => return Err(anyhow!("GET {url}: {e}")),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
