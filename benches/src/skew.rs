//! Switch skew across agents: a `rift controller` and three `rift agent` processes on one
//! host (each on its own loopback address, as `rift lab` and the multi-host tests place
//! them), then fault changes applied and healed through the controller's API, as a user
//! would. The controller measures every change (first to last agent publishing the new
//! matrix, on the agents' clocks, which are one clock here); the harness reads its
//! summary from `GET /status`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Agents on one host, one node each.
const AGENTS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct SwitchSkew {
    pub agents: usize,
    /// Changes the controller confirmed on every agent (applies and heals).
    pub changes: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// How the figures were taken, resolution included.
    pub method: String,
}

/// Kills the processes when the measurement ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port(ip: &str) -> Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))
        .with_context(|| format!("binding {ip}:0"))?
        .local_addr()?
        .port())
}

fn agent_ip(i: usize) -> String {
    format!("127.0.1.{}", i + 1)
}

/// The controller's topology: one agent per node, each node's peer endpoint on its
/// agent's address. The upstreams are never dialed: no connection is relayed.
fn topology(controller_port: u16) -> Result<String> {
    let mut text = format!("[api]\nlisten = \"127.0.0.1:{controller_port}\"\n\n");
    for i in 0..AGENTS {
        let ip = agent_ip(i);
        text.push_str(&format!(
            "[[agent]]\nname = \"h{n}\"\napi = \"{ip}:{port}\"\nnodes = [\"n{n}\"]\n\n",
            n = i + 1,
            port = free_port(&ip)?,
        ));
    }
    for i in 0..AGENTS {
        let ip = agent_ip(i);
        text.push_str(&format!(
            "[[node]]\nname = \"n{n}\"\nsource_ips = [\"{ip}\"]\n[[node.endpoint]]\nname = \"peer\"\n\
             listen = \"{ip}:0\"\nupstream = \"127.0.0.1:9\"\n\n",
            n = i + 1,
        ));
    }
    Ok(text)
}

/// Applies and heals `changes / 2` faults through a controller driving three agents and
/// returns the controller's skew summary.
pub async fn measure(rift: &Path, workdir: &Path, changes: usize) -> Result<SwitchSkew> {
    std::fs::create_dir_all(workdir)?;
    let port = free_port("127.0.0.1")?;
    let topo = workdir.join("controller.toml");
    std::fs::write(&topo, topology(port)?)?;
    let url = format!("http://127.0.0.1:{port}");
    let log = |name: &str| -> Result<Stdio> {
        Ok(std::fs::File::create(workdir.join(format!("{name}.log")))?.into())
    };
    let mut procs = Processes(vec![]);
    procs.0.push(
        Command::new(rift)
            .arg("controller")
            .arg("--topology")
            .arg(&topo)
            .stdout(Stdio::null())
            .stderr(log("controller")?)
            .spawn()
            .with_context(|| format!("starting {} controller", rift.display()))?,
    );
    for i in 0..AGENTS {
        procs.0.push(
            Command::new(rift)
                .args([
                    "agent",
                    "--name",
                    &format!("h{}", i + 1),
                    "--controller",
                    &url,
                ])
                .stdout(Stdio::null())
                .stderr(log(&format!("agent-h{}", i + 1))?)
                .spawn()
                .with_context(|| format!("starting {} agent", rift.display()))?,
        );
    }
    let http = reqwest::Client::new();
    wait_converged(&http, &url, workdir).await?;
    let rule = |from: &str, to: &str| serde_json::json!({"from": from, "to": to, "fault": {"kind": "hold"}});
    for round in 0..changes.div_ceil(2) {
        let (a, b) = (
            format!("n{}", round % AGENTS + 1),
            format!("n{}", (round + 1) % AGENTS + 1),
        );
        post(
            &http,
            &url,
            "/faults",
            serde_json::json!({"label": "skew", "rules": [rule(&a, &b), rule(&b, &a)]}),
        )
        .await?;
        post(&http, &url, "/heal", serde_json::json!({})).await?;
    }
    let status = status(&http, &url).await?;
    let skew = &status["cluster"]["skew"];
    let num = |f: &str| {
        skew[f]
            .as_f64()
            .with_context(|| format!("controller status: cluster.skew.{f} missing in {skew}"))
    };
    Ok(SwitchSkew {
        agents: AGENTS,
        changes: skew["changes"].as_u64().unwrap_or(0) as usize,
        p50_us: num("p50_us")?,
        p99_us: num("p99_us")?,
        max_us: num("max_us")?,
        method: format!(
            "controller + {AGENTS} agents as separate rift processes on one host; each change \
             POSTed to the controller and confirmed by every agent; skew = first to last agent \
             publishing the new matrix, agents' clocks (one host: one clock), ns resolution"
        ),
    })
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<()> {
    let resp = http.post(format!("{url}{path}")).json(&body).send().await?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!(
            "POST {path}: {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn status(http: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    Ok(http
        .get(format!("{url}/status"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn wait_converged(http: &reqwest::Client, url: &str, workdir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Every agent up and holding a version: an agent that is still fetching the
        // matrix has no API yet, and a change sent then waits for its retry.
        if let Ok(s) = status(http, url).await
            && s["cluster"]["converged"] == true
            && s["cluster"]["agents"].as_array().is_some_and(|agents| {
                agents.len() == AGENTS
                    && agents
                        .iter()
                        .all(|a| a["up"] == true && a["version"].is_u64())
            })
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the controller and its {AGENTS} agents did not converge within 30 s (logs in {})",
                workdir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
