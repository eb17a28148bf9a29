//! `rift toxiproxy`: serves Toxiproxy 2.12's HTTP API, so scripts, client libraries
//! and images that start `toxiproxy-server` can start rift instead. Besides rift's own
//! `--host`/`--port`/`--config`, toxiproxy-server's single-dash flags (`-host`,
//! `-port`, `-config`, also as `-host=...`) are accepted; see [`toxiproxy_server_args`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rift_proxy::toxiproxy::{Toxiproxy, api};

#[derive(Args)]
#[command(
    after_help = "Drop-in for toxiproxy-server: `rift toxiproxy -host 0.0.0.0 -port 8474 -config proxies.json` \
works too. Proxies are created at run time through the API (POST /proxies, /populate)."
)]
pub struct ToxiproxyArgs {
    /// Host the API listens on (toxiproxy-server's -host).
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Port the API listens on (toxiproxy-server's -port).
    #[arg(long, default_value_t = 8474)]
    port: u16,
    /// JSON file of proxies to create at start, as for POST /populate (toxiproxy-server's -config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also serve rift's own control API here (e.g. 127.0.0.1:7070): every proxy becomes a
    /// rift node with endpoint `toxiproxy`, so `rift partition`, `rift isolate`, `rift
    /// apply` and scenarios cut links across the proxies.
    #[arg(long)]
    rift_api: Option<std::net::SocketAddr>,
    /// File holding the bearer token rift's API requires (else RIFT_TOKEN); needed when
    /// --rift-api is not on loopback.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// The single-dash long flags of toxiproxy-server that rift accepts.
const SINGLE_DASH: [&str; 3] = ["host", "port", "config"];

/// Rewrites toxiproxy-server's Go-style flags (`-host x`, `-host=x`) to clap's
/// (`--host x`) when the command is `rift toxiproxy`, or when the binary is invoked
/// under the name `toxiproxy-server` (e.g. a symlink in an image).
pub fn toxiproxy_server_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let invoked_as_server = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "toxiproxy-server");
    if invoked_as_server {
        args.insert(1, "toxiproxy".into());
    }
    if args.get(1).and_then(|a| a.to_str()) != Some("toxiproxy") {
        return args;
    }
    let tail = args.split_off(2);
    for arg in tail {
        let flag = arg
            .to_str()
            .and_then(|a| a.strip_prefix('-'))
            .filter(|f| !f.starts_with('-'));
        let rewritten = flag.and_then(|f| {
            let name = f.split_once('=').map_or(f, |(n, _)| n);
            SINGLE_DASH
                .contains(&name)
                .then(|| OsString::from(format!("--{f}")))
        });
        args.push(rewritten.unwrap_or(arg));
    }
    args
}

pub async fn run(args: ToxiproxyArgs) -> anyhow::Result<ExitCode> {
    let mut rift_api = None;
    let toxiproxy = match args.rift_api {
        Some(address) => {
            let token = rift_proxy::auth::load_token(args.token_file.as_deref())?;
            rift_proxy::auth::check_listen(address, token.as_deref())?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for rift's control API"))?;
            let bridge = rift_proxy::toxiproxy::rift::Bridge::new(token);
            rift_api = Some((listener, bridge.router()));
            Toxiproxy::with_rift(bridge)
        }
        None => Toxiproxy::new(),
    };
    if let Some((listener, router)) = rift_api {
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        eprintln!(
            "rift control API on http://{bound}: every proxy is a node (endpoint `toxiproxy`)"
        );
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "rift control API stopped");
            }
        });
    }
    if let Some(config) = &args.config {
        let count = toxiproxy
            .populate_file(config)
            .await
            .map_err(anyhow::Error::msg)
            .context("populating proxies from -config")?;
        tracing::info!(proxies = count, config = %config.display(), "populated proxies from file");
    }
    let address = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} for the Toxiproxy API"))?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(address);
    eprintln!("rift toxiproxy API on http://{bound} (Ctrl-C to stop)");
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    api::serve(listener, toxiproxy.clone(), shutdown)
        .await
        .context("serving the Toxiproxy API")?;
    toxiproxy.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn go_style_flags_become_clap_flags_for_toxiproxy_only() {
        assert_eq!(
            toxiproxy_server_args(args(&[
                "rift",
                "toxiproxy",
                "-host",
                "0.0.0.0",
                "-port=9",
                "-config",
                "c.json"
            ])),
            args(&[
                "rift",
                "toxiproxy",
                "--host",
                "0.0.0.0",
                "--port=9",
                "--config",
                "c.json"
            ])
        );
        assert_eq!(
            toxiproxy_server_args(args(&["/usr/bin/toxiproxy-server", "-host=0.0.0.0"])),
            args(&["/usr/bin/toxiproxy-server", "toxiproxy", "--host=0.0.0.0"])
        );
        // Other commands and other single-dash flags are left alone.
        assert_eq!(
            toxiproxy_server_args(args(&["rift", "proxy", "-host", "x"])),
            args(&["rift", "proxy", "-host", "x"])
        );
        assert_eq!(
            toxiproxy_server_args(args(&["rift", "toxiproxy", "-h", "--port", "1"])),
            args(&["rift", "toxiproxy", "-h", "--port", "1"])
        );
    }
}
