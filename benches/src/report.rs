//! The results of a run and how they are shown: raw figures, ratios against the direct
//! connection, rift against each peer, and the project's targets with an honest met/not
//! met. Written as JSON (for machines) and markdown (for docs/benchmarks.md).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::kafka::KafkaProduce;
use crate::many::PartitionTiming;
use crate::sys::Machine;

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub loadavg_at_end: String,
    pub mode: String,
    pub unix_time: u64,
    pub targets: Vec<TargetStatus>,
    pub latency: Vec<LatencyRow>,
    pub throughput: Vec<ThroughputRow>,
    pub idle: Vec<IdleRow>,
    pub partition: Outcome<PartitionTiming>,
    /// A toxic applied through the Toxiproxy API (rift toxiproxy mode and Toxiproxy).
    pub toxic: Vec<crate::toxibench::ToxicRow>,
    pub kafka_produce: Outcome<KafkaProduce>,
    /// Controller-to-agents switch skew (multi-host rift on one host).
    pub switch_skew: Outcome<crate::skew::SwitchSkew>,
    pub goals: Vec<Goal>,
}

/// How a skip reason starts when the target was installed but would not run.
pub const START_FAILED: &str = "failed to start";

#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub version: String,
    /// `None` when the target ran; otherwise why it was skipped.
    pub skipped: Option<String>,
}

/// A measurement that either ran or was skipped/failed for a stated reason.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum Outcome<T> {
    Ok(T),
    Skipped { reason: String },
    Failed { error: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LatencyRow {
    pub workload: String,
    pub target: String,
    pub result: Outcome<Percentiles>,
    /// Open loop only: how late the sender thread fell behind its schedule at worst.
    /// That lateness is part of the recorded latency, for every target alike.
    pub sender_lag_max_us: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ThroughputRow {
    pub target: String,
    pub bytes_per_round: u64,
    /// One figure per round, MiB/s.
    pub rounds_mib_s: Vec<f64>,
    pub error: Option<String>,
}

impl ThroughputRow {
    pub fn median(&self) -> Option<f64> {
        let mut v = self.rounds_mib_s.clone();
        if v.is_empty() || self.error.is_some() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

#[derive(Debug, Serialize)]
pub struct IdleRow {
    pub target: String,
    pub result: Outcome<IdleMemory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleMemory {
    pub connections: usize,
    /// `VmRSS` of the proxy process, or `tree PSS` for a proxy that forks per connection.
    pub measure: String,
    pub before_kib: u64,
    pub after_kib: u64,
    pub per_connection_kib: f64,
}

#[derive(Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    /// `None` when the figures needed were not measured.
    pub met: Option<bool>,
}

impl Report {
    pub fn latency(&self, workload: &str, target: &str) -> Option<&Percentiles> {
        self.latency
            .iter()
            .find(|r| r.workload == workload && r.target == target)
            .and_then(|r| match &r.result {
                Outcome::Ok(p) => Some(p),
                _ => None,
            })
    }

    pub fn throughput(&self, target: &str) -> Option<f64> {
        self.throughput
            .iter()
            .find(|r| r.target == target)
            .and_then(ThroughputRow::median)
    }

    pub fn idle(&self, target: &str) -> Option<&IdleMemory> {
        self.idle
            .iter()
            .find(|r| r.target == target)
            .and_then(|r| match &r.result {
                Outcome::Ok(m) => Some(m),
                _ => None,
            })
    }

    /// Added latency of `target` over the direct connection at p50 and p99 (µs).
    pub fn added(&self, workload: &str, target: &str) -> Option<(f64, f64)> {
        let d = self.latency(workload, "direct")?;
        let t = self.latency(workload, target)?;
        Some((t.p50_us - d.p50_us, t.p99_us - d.p99_us))
    }

    /// What went wrong in this run (as opposed to what was slow): a target that was
    /// installed but failed to start, a workload that errored, a partition that did not
    /// stop every connection or lost held bytes. The smoke run fails on any of these.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            if let Some(reason) = t.skipped.as_deref().filter(|r| r.starts_with(START_FAILED)) {
                out.push(format!("{}: {reason}", t.target));
            }
        }
        for r in &self.latency {
            if let Outcome::Failed { error } = &r.result {
                out.push(format!("{} via {}: {error}", r.workload, r.target));
            }
        }
        for r in &self.throughput {
            if let Some(error) = &r.error {
                out.push(format!("bulk via {}: {error}", r.target));
            }
        }
        for r in &self.idle {
            if let Outcome::Failed { error } = &r.result {
                out.push(format!("idle connections via {}: {error}", r.target));
            }
        }
        if let Outcome::Failed { error } = &self.kafka_produce {
            out.push(format!("Kafka produce: {error}"));
        }
        if let Outcome::Failed { error } = &self.switch_skew {
            out.push(format!("switch skew: {error}"));
        }
        match &self.partition {
            Outcome::Failed { error } => out.push(format!("partition: {error}")),
            Outcome::Ok(p) if p.still_moving > 0 => out.push(format!(
                "partition: {} of {} connections still moved bytes after the cut",
                p.still_moving, p.connections
            )),
            Outcome::Ok(p) if p.resumed_after_heal < p.connections => out.push(format!(
                "partition: only {} of {} held connections were answered after heal",
                p.resumed_after_heal, p.connections
            )),
            _ => {}
        }
        out.extend(crate::toxibench::failures(self));
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# rift-bench results\n\nMode: {}.\n", self.mode);
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}), kernel {}, {} MiB RAM; load average {} at start, {} at end. All traffic on 127.0.0.1.\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.mem_total_kib / 1024,
            m.loadavg_at_start,
            self.loadavg_at_end
        );
        md.push_str("## Targets\n\n| target | version | status |\n|---|---|---|\n");
        for t in &self.targets {
            let status = t
                .skipped
                .as_deref()
                .map_or("ran".to_string(), |r| format!("skipped: {r}"));
            let _ = writeln!(md, "| {} | {} | {} |", t.target, t.version, status);
        }
        self.latency_markdown(&mut md);
        self.throughput_markdown(&mut md);
        self.idle_markdown(&mut md);
        md.push_str("\n## Partition applied to live connections (rift only)\n\n");
        match &self.partition {
            Outcome::Ok(p) => {
                let apply = if p.apply_us > 0.0 {
                    format!("{:.0} µs", p.apply_us)
                } else {
                    "0 (no echo arrived after the call began)".into()
                };
                let _ = writeln!(
                    md,
                    "| connections | apply time (API call to last byte moved) | API call returned | resolution | still moving | resumed after heal |\n|---|---|---|---|---|---|\n| {} | {apply} | {:.0} µs | {:.1} µs ({} echoes in the 100 ms before) | {} | {} |",
                    p.connections,
                    p.api_call_us,
                    p.resolution_us,
                    p.echoes_before_cut,
                    p.still_moving,
                    p.resumed_after_heal
                );
                if let Some(why) = &p.capped_by {
                    let _ = writeln!(
                        md,
                        "\nConnections capped by {why}: a proxy holds two per connection."
                    );
                }
                md.push_str("\nPeers: n/a (they have no partition control).\n");
            }
            other => {
                let _ = writeln!(md, "{}", outcome_text(other));
            }
        }
        crate::toxibench::markdown(self, &mut md);
        md.push_str("\n## Kafka produce latency (acks=all, 3 brokers, min.insync.replicas 2)\n\n");
        match &self.kafka_produce {
            Outcome::Ok(k) => {
                md.push_str("| cluster | records | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---|---|---|---|---|\n");
                for (name, p) in [("direct", &k.direct), ("through rift", &k.through_rift)] {
                    let _ = writeln!(
                        md,
                        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                        p.samples, p.p50_us, p.p99_us, p.p999_us, p.max_us
                    );
                }
                let _ = writeln!(
                    md,
                    "\nAdded by rift: p50 {:+.0} µs, p99 {:+.0} µs (p50 ratio {:.2}).",
                    k.through_rift.p50_us - k.direct.p50_us,
                    k.through_rift.p99_us - k.direct.p99_us,
                    k.through_rift.p50_us / k.direct.p50_us
                );
            }
            other => {
                let _ = writeln!(md, "{}", outcome_text(other));
            }
        }
        md.push_str("\n## Switch skew across agents (controller + 3 agents, one host)\n\n");
        match &self.switch_skew {
            Outcome::Ok(k) => {
                let _ = writeln!(
                    md,
                    "| changes | p50 µs | p99 µs | max µs |\n|---|---|---|---|\n| {} | {:.0} | {:.0} | {:.0} |\n\n{}.",
                    k.changes, k.p50_us, k.p99_us, k.max_us, k.method
                );
            }
            other => {
                let _ = writeln!(md, "{}", outcome_text(other));
            }
        }
        md.push_str("\n## Targets for rift\n\n| goal | measured | met |\n|---|---|---|\n");
        for g in &self.goals {
            let met = match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {} |", g.goal, g.measured, met);
        }
        md
    }

    fn latency_markdown(&self, md: &mut String) {
        let mut workloads: Vec<&str> = Vec::new();
        for r in &self.latency {
            if !workloads.contains(&r.workload.as_str()) {
                workloads.push(&r.workload);
            }
        }
        for w in workloads {
            let _ = writeln!(
                md,
                "\n## {w}\n\n| target | samples | p50 µs | p99 µs | p99.9 µs | max µs | added p50 µs | added p99 µs | added p99.9 µs | p50 / direct |\n|---|---|---|---|---|---|---|---|---|---|"
            );
            let direct = self.latency(w, "direct");
            for r in self.latency.iter().filter(|r| r.workload == w) {
                match &r.result {
                    Outcome::Ok(p) => {
                        let (a50, a99, a999, ratio) = match direct {
                            Some(d) => (
                                format!("{:.1}", p.p50_us - d.p50_us),
                                format!("{:.1}", p.p99_us - d.p99_us),
                                format!("{:.1}", p.p999_us - d.p999_us),
                                format!("{:.2}", p.p50_us / d.p50_us),
                            ),
                            None => ("-".into(), "-".into(), "-".into(), "-".into()),
                        };
                        let lag = r
                            .sender_lag_max_us
                            .map_or(String::new(), |l| format!(" (sender lag ≤ {l:.0} µs)"));
                        let _ = writeln!(
                            md,
                            "| {}{lag} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {a50} | {a99} | {a999} | {ratio} |",
                            r.target, p.samples, p.p50_us, p.p99_us, p.p999_us, p.max_us
                        );
                    }
                    other => {
                        let _ = writeln!(md, "| {} | {} |||||||||", r.target, outcome_text(other));
                    }
                }
            }
        }
    }

    fn throughput_markdown(&self, md: &mut String) {
        md.push_str("\n## Single-stream bulk throughput\n\n| target | rounds MiB/s | median MiB/s | / direct |\n|---|---|---|---|\n");
        let direct = self.throughput("direct");
        for r in &self.throughput {
            if let Some(e) = &r.error {
                let _ = writeln!(md, "| {} | failed: {e} | | |", r.target);
                continue;
            }
            let rounds: Vec<String> = r.rounds_mib_s.iter().map(|v| format!("{v:.0}")).collect();
            let med = r.median().unwrap_or(0.0);
            let ratio = direct.map_or("-".into(), |d| format!("{:.2}", med / d));
            let _ = writeln!(
                md,
                "| {} | {} | {med:.0} | {ratio} |",
                r.target,
                rounds.join(", ")
            );
        }
    }

    fn idle_markdown(&self, md: &mut String) {
        md.push_str("\n## Idle connections: proxy memory\n\n| target | connections | measure | before KiB | after KiB | KiB per connection |\n|---|---|---|---|---|---|\n");
        for r in &self.idle {
            match &r.result {
                Outcome::Ok(m) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {:.1} |",
                        r.target,
                        m.connections,
                        m.measure,
                        m.before_kib,
                        m.after_kib,
                        m.per_connection_kib
                    );
                }
                other => {
                    let _ = writeln!(md, "| {} | {} |||||", r.target, outcome_text(other));
                }
            }
        }
    }
}

fn outcome_text<T>(o: &Outcome<T>) -> String {
    match o {
        Outcome::Ok(_) => "ok".into(),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Failed { error } => format!("failed: {error}"),
    }
}
