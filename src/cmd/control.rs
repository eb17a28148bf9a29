//! Commands that drive a running proxy through its control API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rift_proxy::client::ApiClient;
use rift_proxy::control::{ActiveFault, Status};
use rift_proxy::fault::Fault;
use rift_proxy::profile::{Bindings, Profile, ProfileLibrary};

use super::target::{self, ApiTarget};

#[derive(Args, Clone)]
pub struct ApiArgs {
    /// URL of the proxy's control API [default: the running lab's (see `rift lab up`),
    /// else http://127.0.0.1:7070].
    #[arg(long, env = "RIFT_API", global = true)]
    api: Option<String>,
    /// Print machine-readable JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Say which control API is used and why (flag, RIFT_API, running lab or default).
    #[arg(long, short, global = true)]
    verbose: bool,
}

impl ApiArgs {
    fn target(&self) -> ApiTarget {
        let target = target::resolve(self.api.as_deref());
        target.report(self.verbose);
        target
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(&self.target().url)
    }
}

#[derive(Args, Clone)]
pub struct CutArgs {
    /// hold (default: bytes wait, nothing lost), reset (RST, like REJECT) or blackhole (discard).
    #[arg(long, default_value = "hold", value_parser = parse_fault)]
    fault: Fault,
    /// Limit the cut to these endpoints (repeatable), e.g. --endpoint replication.
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Heal automatically after this long, e.g. 30s or 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    Fault::from_cli_name(text)
        .ok_or_else(|| format!("{text:?} is not a fault; use hold, reset or blackhole"))
}

#[derive(Args)]
#[command(after_help = "Example: rift partition --groups n1,n2 n3,n4,n5 --duration 30s")]
pub struct PartitionArgs {
    /// Comma-separated groups; every node must be in one group. `client` may be placed too.
    #[arg(long, num_args = 2.., required = true, value_delimiter = ' ')]
    groups: Vec<String>,
    #[command(flatten)]
    cut: CutArgs,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct IsolateArgs {
    /// The node to cut from every other node.
    node: String,
    #[command(flatten)]
    cut: CutArgs,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  rift apply split\n  rift apply leader-isolation --set leader=etcd2 --duration 20s\n  rift apply ./my-profile.toml"
)]
pub struct ApplyArgs {
    /// A profile name (see `rift profiles`) or a path to a profile TOML file.
    profile: String,
    /// Bind a name used by the profile, e.g. --set leader=etcd2 or --set target=n3 (repeatable).
    #[arg(long = "set", value_parser = parse_binding)]
    bindings: Vec<(String, String)>,
    /// Heal automatically after this long, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_binding(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected NAME=NODE, e.g. leader=etcd2")),
    }
}

#[derive(Args)]
pub struct HealArgs {
    /// Heal only this fault (ids are shown by `rift status`).
    #[arg(long)]
    id: Option<u64>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct ProfilesArgs {
    /// Also list the profiles of this directory (without a running proxy).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct SourcesArgs {
    /// The node these sources belong to.
    node: String,
    /// A process id whose connections come from NODE (repeatable).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// A source IP address of NODE (repeatable).
    #[arg(long = "ip")]
    ips: Vec<std::net::IpAddr>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    #[command(flatten)]
    api: ApiArgs,
}

fn print_applied(api: &ApiArgs, fault: &ActiveFault) -> anyhow::Result<ExitCode> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(fault)?);
    } else {
        let expires = fault
            .expires_at
            .as_deref()
            .map(|e| format!(", heals at {e}"))
            .unwrap_or_default();
        println!(
            "applied fault {} ({}): {}{expires}",
            fault.id, fault.label, fault.summary
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn partition(args: PartitionArgs) -> anyhow::Result<ExitCode> {
    let groups: Vec<Vec<String>> = args
        .groups
        .iter()
        .map(|g| {
            g.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    let fault = args
        .api
        .client()
        .partition(
            groups,
            Some(args.cut.fault),
            args.cut.endpoints,
            args.cut.duration,
        )
        .await?;
    print_applied(&args.api, &fault)
}

pub async fn isolate(args: IsolateArgs) -> anyhow::Result<ExitCode> {
    let fault = args
        .api
        .client()
        .isolate(
            &args.node,
            Some(args.cut.fault),
            args.cut.endpoints,
            args.cut.duration,
        )
        .await?;
    print_applied(&args.api, &fault)
}

fn looks_like_path(profile: &str) -> bool {
    profile.ends_with(".toml") || profile.contains('/')
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let bindings: Bindings = args.bindings.into_iter().collect();
    let client = args.api.client();
    let fault = if looks_like_path(&args.profile) {
        let path = Path::new(&args.profile);
        // Parse locally first so a bad file is reported with its path.
        let profile = Profile::load(path)?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        client
            .apply_profile_toml(&profile.name, &text, &bindings, args.duration)
            .await?
    } else {
        client
            .apply_profile(&args.profile, &bindings, args.duration)
            .await?
    };
    print_applied(&args.api, &fault)
}

pub async fn heal(args: HealArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client();
    match args.id {
        Some(id) => {
            let fault = client.heal_fault(id).await?;
            if args.api.json {
                println!("{}", serde_json::json!({"healed": [fault.id]}));
            } else {
                println!("healed fault {} ({})", fault.id, fault.label);
            }
        }
        None => {
            let healed = client.heal().await?;
            if args.api.json {
                println!("{}", serde_json::json!({"healed": healed}));
            } else {
                println!("healed {healed} fault(s); every link passes");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let target = args.api.target();
    let status = ApiClient::new(&target.url).status().await?;
    if args.api.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&target.url, &status));
    }
    Ok(ExitCode::SUCCESS)
}

const STATE_NAMES: [&str; 5] = ["pass", "hold", "reset", "blackhole", "degraded"];

/// A plain-text table, one section per concern.
pub fn render_status(api: &str, status: &Status) -> String {
    let mut out = format!(
        "rift at {api}: {} nodes ({}), endpoints {}, matrix version {}\n",
        status.nodes.len(),
        status.nodes.join(", "),
        status.endpoints.join(", "),
        status.version
    );
    if status.faults.is_empty() {
        out.push_str("\nno active faults: every link passes\n");
    } else {
        let rows = status
            .faults
            .iter()
            .map(|f| {
                vec![
                    f.id.to_string(),
                    f.label.clone(),
                    f.summary.clone(),
                    f.applied_at.clone(),
                    f.expires_at.clone().unwrap_or("-".into()),
                ]
            })
            .collect();
        out.push_str(&table(
            "FAULTS",
            &["ID", "LABEL", "SUMMARY", "APPLIED", "HEALS"],
            rows,
        ));
        let rows = status
            .links
            .iter()
            .map(|l| {
                let eps = l
                    .faults
                    .iter()
                    .map(|(ep, f)| format!("{ep}={}", f.name()))
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![
                    l.from.clone(),
                    l.to.clone(),
                    STATE_NAMES
                        .get(l.state as usize)
                        .unwrap_or(&"?")
                        .to_string(),
                    eps,
                ]
            })
            .collect();
        out.push_str(&table(
            "CUT OR DEGRADED LINKS (bytes flowing FROM -> TO)",
            &["FROM", "TO", "STATE", "ENDPOINTS"],
            rows,
        ));
    }
    let rows = status
        .connections
        .iter()
        .map(|c| {
            vec![
                c.src.clone(),
                c.dst.clone(),
                c.endpoint.clone(),
                c.active.to_string(),
                c.bytes_forward.to_string(),
                c.bytes_reverse.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        "OPEN CONNECTIONS",
        &[
            "SRC",
            "DST",
            "ENDPOINT",
            "OPEN",
            "BYTES SRC->DST",
            "BYTES DST->SRC",
        ],
        rows,
    ));
    let rows = status
        .sources
        .iter()
        .map(|s| {
            let ips = s
                .ips
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let pids = s
                .pids
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",");
            vec![
                s.node.clone(),
                if ips.is_empty() { "-".into() } else { ips },
                if pids.is_empty() { "-".into() } else { pids },
            ]
        })
        .collect();
    out.push_str(&table("SOURCES", &["NODE", "IPS", "PIDS"], rows));
    if let Some(cluster) = &status.cluster {
        out.push_str(&super::cluster::render(cluster));
    }
    out
}

fn table(title: &str, header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!("\n{title}\n");
    if rows.is_empty() {
        out.push_str("  (none)\n");
        return out;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(header.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub async fn profiles(args: ProfilesArgs) -> anyhow::Result<ExitCode> {
    let mut library = ProfileLibrary::builtin();
    if let Some(dir) = &args.dir {
        library = library.with_dir(dir)?;
    }
    if args.api.json {
        let list: Vec<_> = library.list().map(|p| serde_json::json!({"name": p.name, "kind": p.kind, "description": p.description})).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let width = library.list().map(|p| p.name.len()).max().unwrap_or(0);
        for p in library.list() {
            println!("{:<width$}  {}", p.name, p.description);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sources(args: SourcesArgs) -> anyhow::Result<ExitCode> {
    if args.pids.is_empty() && args.ips.is_empty() {
        bail!("give at least one --pid or --ip for node {}", args.node);
    }
    args.api
        .client()
        .register_source(&args.node, &args.pids, &args.ips)
        .await?;
    println!("registered sources of {}", args.node);
    Ok(ExitCode::SUCCESS)
}

pub async fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    for event in args.api.client().events(args.after).await? {
        println!("{event}");
    }
    Ok(ExitCode::SUCCESS)
}
