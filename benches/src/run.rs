//! One benchmark run: start the targets, run every workload interleaved across them,
//! and collect the figures into a [`Report`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::blocking;
use crate::echo::EchoProcess;
use crate::goals::{self, CONNECT, PING_1K, PING_64};
use crate::many;
use crate::report::{
    IdleMemory, IdleRow, LatencyRow, Outcome, Percentiles, Report, START_FAILED, TargetStatus,
    ThroughputRow,
};
use crate::sys::{self, Machine};
use crate::targets::{self, Binaries, Kind, StartError, Target};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: &'static str,
    pub rounds: u32,
    pub ping_iterations: u64,
    pub ping_warmup: u64,
    pub connects: u64,
    pub open_loop_rate: u64,
    pub open_loop_duration: Duration,
    pub bulk_bytes: u64,
    pub idle_conns: usize,
    pub partition_conns: usize,
    pub partition_period: Duration,
    /// Timed acks=all sends per Kafka cluster; 0 when --kafka was not given.
    pub kafka_records: u64,
    /// Fault changes (applies and heals) driven through a controller and its agents.
    pub skew_changes: usize,
}

impl Plan {
    pub fn new(args: &crate::Args) -> Self {
        let mut plan = if args.quick {
            Plan {
                mode: "quick",
                rounds: 1,
                ping_iterations: 500,
                ping_warmup: 50,
                connects: 100,
                open_loop_rate: 1000,
                open_loop_duration: Duration::from_millis(500),
                bulk_bytes: 32 << 20,
                idle_conns: 200,
                partition_conns: 200,
                partition_period: Duration::from_millis(200),
                kafka_records: 200,
                skew_changes: 20,
            }
        } else {
            Plan {
                mode: "full",
                // Many short rounds rather than a few long ones: other load on the
                // machine comes in bursts, and short interleaved slices spread each burst
                // over every target instead of landing on one.
                rounds: 15,
                ping_iterations: 4_000,
                ping_warmup: 1_000,
                connects: 400,
                open_loop_rate: 5_000,
                open_loop_duration: Duration::from_secs(1),
                bulk_bytes: 256 << 20,
                idle_conns: 10_000,
                partition_conns: 10_000,
                partition_period: Duration::from_secs(1),
                kafka_records: 2_000,
                skew_changes: 400,
            }
        };
        if !args.kafka {
            plan.kafka_records = 0;
        }
        if let Some(r) = args.rounds {
            plan.rounds = r.max(1);
        }
        if let Some(n) = args.idle_conns {
            plan.idle_conns = n;
        }
        if let Some(n) = args.partition_conns {
            plan.partition_conns = n;
        }
        plan
    }
}

struct Running {
    target: Target,
    // Kept alive for as long as the target runs; dropped after it.
    _echo: EchoProcess,
}

/// The workloads whose figure is a latency histogram, run one after the other on each
/// target in every round.
#[derive(Debug, Clone, Copy)]
enum Latency {
    Ping64,
    Ping1K,
    OpenLoop,
    Connect,
}

impl Latency {
    const ALL: [Latency; 4] = [
        Latency::Ping64,
        Latency::Ping1K,
        Latency::OpenLoop,
        Latency::Connect,
    ];

    fn name(self, plan: &Plan) -> String {
        match self {
            Latency::Ping64 => PING_64.into(),
            Latency::Ping1K => PING_1K.into(),
            Latency::OpenLoop => format!("open-loop 64 B at {} req/s", plan.open_loop_rate),
            Latency::Connect => CONNECT.into(),
        }
    }

    /// Whether the client sends on a schedule it can fall behind (open loop).
    fn on_schedule(self) -> bool {
        matches!(self, Latency::OpenLoop)
    }

    /// One round: the histogram, and how late an on-schedule sender fell behind.
    fn run(self, addr: SocketAddr, plan: &Plan) -> Result<(Histogram<u64>, Duration)> {
        let no_lag = |h| (h, Duration::ZERO);
        match self {
            Latency::Ping64 => {
                blocking::ping_pong(addr, 64, plan.ping_iterations, plan.ping_warmup).map(no_lag)
            }
            Latency::Ping1K => {
                blocking::ping_pong(addr, 1024, plan.ping_iterations, plan.ping_warmup).map(no_lag)
            }
            Latency::OpenLoop => {
                blocking::open_loop(addr, 64, plan.open_loop_rate, plan.open_loop_duration)
                    .map(|o| (o.hist, o.max_send_lag))
            }
            Latency::Connect => blocking::connect_first_byte(addr, plan.connects).map(no_lag),
        }
    }
}

/// Adds one round to a target's histogram; the first error sticks.
fn merge(acc: &mut Result<Histogram<u64>, String>, round: Result<Histogram<u64>>) {
    *acc = match (std::mem::replace(acc, Err(String::new())), round) {
        (Ok(mut total), Ok(h)) => total.add(&h).map(|()| total).map_err(|e| e.to_string()),
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(format!("{e:#}")),
    };
}

/// A progress line on stderr for each step.
struct Progress {
    step: usize,
    total: usize,
    started: Instant,
}

impl Progress {
    fn tick(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "rift-bench [{:>3}/{}] {:>6.1}s {what}",
            self.step,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub fn run(
    rt: &Runtime,
    plan: &Plan,
    kinds: &[Kind],
    bins: &Binaries,
    out: Option<&Path>,
) -> Result<Report> {
    let machine = Machine::describe();
    let limit = rift_proxy::sys::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    // A proxy holds two descriptors per connection, under the same per-process limit.
    let max_conns = (limit.saturating_sub(200) / 2) as usize;
    let mut plan = plan.clone();
    let mut capped_by = None;
    for (what, n) in [
        ("idle", &mut plan.idle_conns),
        ("partition", &mut plan.partition_conns),
    ] {
        if *n > max_conns {
            eprintln!(
                "rift-bench: {what} connections capped at {max_conns} (RLIMIT_NOFILE hard limit {limit}; a proxy holds two descriptors per connection)"
            );
            *n = max_conns;
            capped_by = Some(format!(
                "the RLIMIT_NOFILE hard limit of {limit} descriptors per process"
            ));
        }
    }
    if plan.idle_conns == 0 || plan.partition_conns == 0 {
        bail!("RLIMIT_NOFILE hard limit {limit} leaves no room for the connection workloads");
    }
    let plan = &plan;
    let workdir = match out {
        Some(dir) => dir.join("work"),
        None => std::env::temp_dir().join(format!("rift-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;

    let mut statuses = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    for &kind in kinds {
        let echo = EchoProcess::spawn().context("starting an echo server process")?;
        let dir = workdir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        match rt.block_on(targets::start(kind, echo.addr(), bins, &dir, limit)) {
            Ok(target) => {
                eprintln!("rift-bench: {kind} ready on {}", target.addr);
                statuses.push(TargetStatus {
                    target: kind.name().into(),
                    version: target.version.clone(),
                    skipped: None,
                });
                running.push(Running {
                    target,
                    _echo: echo,
                });
            }
            Err(StartError::Missing(reason)) => {
                eprintln!("rift-bench: skipping {kind}: {reason}");
                statuses.push(TargetStatus {
                    target: kind.name().into(),
                    version: "-".into(),
                    skipped: Some(reason),
                });
            }
            Err(StartError::Failed(e)) => {
                let reason = format!("{START_FAILED}: {e:#} (logs in {})", dir.display());
                eprintln!("rift-bench: skipping {kind}: {reason}");
                statuses.push(TargetStatus {
                    target: kind.name().into(),
                    version: "-".into(),
                    skipped: Some(reason),
                });
            }
        }
    }

    let n = running.len();
    let proxies = running
        .iter()
        .filter(|r| r.target.kind != Kind::Direct)
        .count();
    let has_rift = running.iter().any(|r| r.target.kind == Kind::Rift);
    let mut progress = Progress {
        step: 0,
        total: proxies
            + plan.rounds as usize * 5 * n
            + usize::from(has_rift)
            + running
                .iter()
                .filter(|r| matches!(r.target.kind, Kind::RiftToxiproxy | Kind::Toxiproxy))
                .count()
            + usize::from(plan.kafka_records > 0)
            + usize::from(has_rift),
        started: Instant::now(),
    };

    // Memory first, while every proxy process is fresh: buffers kept from earlier
    // workloads would make the per-connection cost look smaller than it is.
    let mut idle = Vec::new();
    for r in running.iter_mut().filter(|r| r.target.kind != Kind::Direct) {
        progress.tick(&format!(
            "idle connections x{}: {}",
            plan.idle_conns, r.target.kind
        ));
        let result = match rt.block_on(idle_memory(&r.target, plan.idle_conns)) {
            Ok(m) => Outcome::Ok(m),
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
            },
        };
        idle.push(IdleRow {
            target: r.target.kind.name().into(),
            result,
        });
    }

    let mut hists: Vec<Vec<Result<Histogram<u64>, String>>> = Latency::ALL
        .iter()
        .map(|_| (0..n).map(|_| Ok(blocking::new_histogram())).collect())
        .collect();
    let mut send_lag = vec![Duration::ZERO; n];
    let mut bulk: Vec<ThroughputRow> = running
        .iter()
        .map(|r| ThroughputRow {
            target: r.target.kind.name().into(),
            bytes_per_round: plan.bulk_bytes,
            rounds_mib_s: vec![],
            error: None,
        })
        .collect();

    for round in 0..plan.rounds {
        // Rotate the order each round so no target always runs first (or after the bulk).
        let order: Vec<usize> = (0..n).map(|i| (i + round as usize) % n).collect();
        for (w, workload) in Latency::ALL.iter().enumerate() {
            for &i in &order {
                let target = &mut running[i].target;
                progress.tick(&format!(
                    "{}: {} (round {}/{})",
                    workload.name(plan),
                    target.kind,
                    round + 1,
                    plan.rounds
                ));
                if hists[w][i].is_err() {
                    continue;
                }
                let measured = workload
                    .run(target.addr, plan)
                    .and_then(|m| target.check_alive().map(|()| m))
                    .map(|(h, lag)| {
                        send_lag[i] = send_lag[i].max(lag);
                        h
                    });
                merge(&mut hists[w][i], measured);
            }
        }
        for &i in &order {
            let target = &mut running[i].target;
            progress.tick(&format!(
                "bulk {} MiB: {} (round {}/{})",
                plan.bulk_bytes >> 20,
                target.kind,
                round + 1,
                plan.rounds
            ));
            if bulk[i].error.is_some() {
                continue;
            }
            match crate::blocking::bulk(target.addr, plan.bulk_bytes)
                .and_then(|d| target.check_alive().map(|()| d))
            {
                Ok(d) => bulk[i]
                    .rounds_mib_s
                    .push(plan.bulk_bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()),
                Err(e) => bulk[i].error = Some(format!("{e:#}")),
            }
        }
    }

    let mut latency = Vec::new();
    for (w, workload) in Latency::ALL.iter().enumerate() {
        for (i, r) in running.iter().enumerate() {
            let result = match &hists[w][i] {
                Ok(h) => Outcome::Ok(Percentiles::of(h)),
                Err(e) => Outcome::Failed { error: e.clone() },
            };
            // Only the open-loop sender runs on a schedule it can fall behind.
            let sender_lag_max_us = workload
                .on_schedule()
                .then(|| send_lag[i].as_secs_f64() * 1e6);
            latency.push(LatencyRow {
                workload: workload.name(plan),
                target: r.target.kind.name().into(),
                result,
                sender_lag_max_us,
            });
        }
    }

    let partition = match running.iter().find(|r| r.target.kind == Kind::Rift) {
        Some(r) => {
            progress.tick(&format!(
                "partition applied to {} live connections: rift",
                plan.partition_conns
            ));
            let cutter = crate::riftapi::RiftApi::new(r.target.api_url.clone().unwrap_or_default());
            match rt.block_on(many::partition_apply(
                r.target.addr,
                plan.partition_conns,
                plan.partition_period,
                &cutter,
            )) {
                Ok(t) => Outcome::Ok(many::PartitionTiming {
                    capped_by: capped_by.clone(),
                    ..t
                }),
                Err(e) => Outcome::Failed {
                    error: format!("{e:#}"),
                },
            }
        }
        None => Outcome::Skipped {
            reason: "rift did not run".into(),
        },
    };

    let mut toxic = Vec::new();
    for r in running
        .iter()
        .filter(|r| matches!(r.target.kind, Kind::RiftToxiproxy | Kind::Toxiproxy))
    {
        progress.tick(&format!(
            "toxic applied to {} live connections: {}",
            plan.partition_conns, r.target.kind
        ));
        let api = crate::toxibench::ToxicApi::new(r.target.api_url.clone().unwrap_or_default());
        let result = match rt.block_on(many::partition_apply(
            r.target.addr,
            plan.partition_conns,
            plan.partition_period,
            &api,
        )) {
            Ok(t) => Outcome::Ok(many::PartitionTiming {
                capped_by: capped_by.clone(),
                ..t
            }),
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
            },
        };
        toxic.push(crate::toxibench::ToxicRow {
            target: r.target.kind.name().into(),
            result,
        });
    }

    let kafka_produce = if plan.kafka_records == 0 {
        Outcome::Skipped {
            reason: "not requested (--kafka; needs Java and the Kafka jars from scripts/setup.sh)"
                .into(),
        }
    } else {
        progress.tick(&format!(
            "Kafka produce acks=all x{}: direct, then through rift",
            plan.kafka_records
        ));
        // rift runs inside this process for the lab: give it the same two worker
        // threads a standalone rift would have, not the harness's single thread.
        let kafka_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building the Kafka runtime")?;
        match kafka_rt.block_on(crate::kafka::produce_latency(plan.kafka_records, 100)) {
            Ok(k) => Outcome::Ok(k),
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
            },
        }
    };
    let switch_skew = if !has_rift {
        Outcome::Skipped {
            reason: "rift is not among the targets".into(),
        }
    } else {
        progress.tick(&format!(
            "switch skew: {} changes through a controller and 3 agents",
            plan.skew_changes
        ));
        match rt.block_on(crate::skew::measure(
            &bins.rift,
            &workdir.join("skew"),
            plan.skew_changes,
        )) {
            Ok(s) => Outcome::Ok(s),
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
            },
        }
    };
    let mut report = Report {
        machine,
        loadavg_at_end: sys::loadavg(),
        mode: if cfg!(debug_assertions) {
            // A debug harness is built by `cargo test`; its figures only prove it runs.
            format!(
                "{} (debug build: figures are not representative)",
                plan.mode
            )
        } else {
            plan.mode.into()
        },
        unix_time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        targets: statuses,
        latency,
        throughput: bulk,
        idle,
        partition,
        toxic,
        kafka_produce,
        switch_skew,
        goals: vec![],
    };
    report.goals = goals::evaluate(&report);
    report.goals.extend(crate::toxibench::goals(&report));
    report.goals.push(goals::skew_goal(&report));
    drop(running);
    if out.is_none() && report.failures().is_empty() {
        // Without --out the proxies' configs and logs only matter when something failed.
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(report)
}

async fn idle_memory(target: &Target, n: usize) -> Result<IdleMemory> {
    let pid = target
        .pid()
        .ok_or_else(|| anyhow!("{} has no process to measure", target.kind))?;
    let (measure, read): (&str, fn(u32) -> std::io::Result<u64>) = if target.forks() {
        ("tree PSS", sys::tree_pss_kib)
    } else {
        ("VmRSS", sys::vm_rss_kib)
    };
    let before = read(pid)?;
    let conns = many::open_echo_connections(target.addr, n).await?;
    // Let the proxy finish any lazy per-connection setup before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = read(pid)?;
    drop(conns);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(IdleMemory {
        connections: n,
        measure: measure.into(),
        before_kib: before,
        after_kib: after,
        per_connection_kib: after.saturating_sub(before) as f64 / n as f64,
    })
}
