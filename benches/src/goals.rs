//! rift's performance targets, judged from a finished report, and the rift-versus-peer
//! comparison table. A target whose figures were not measured is "not measured", never
//! assumed met.

use std::fmt::Write as _;

use crate::report::{Goal, Outcome, Report};

pub const PING_64: &str = "ping-pong 64 B";
pub const PING_1K: &str = "ping-pong 1 KiB";
pub const CONNECT: &str = "connect + first echoed byte";

/// Most memory an idle proxied connection may cost rift (KiB).
const IDLE_KIB_MAX: f64 = 16.0;
/// Longest a partition may take to reach every live connection (µs).
const APPLY_US_MAX: f64 = 10_000.0;

pub fn evaluate(r: &Report) -> Vec<Goal> {
    let mut goals = Vec::new();
    for w in [PING_64, PING_1K] {
        goals.push(latency_goal(
            r,
            w,
            "haproxy",
            1.0,
            "no higher than HAProxy's",
        ));
        goals.push(latency_goal(
            r,
            w,
            "toxiproxy",
            0.5,
            "at most half of Toxiproxy's",
        ));
    }
    goals.push(match (r.throughput("rift"), r.throughput("haproxy")) {
        (Some(ri), Some(h)) => Goal {
            goal: "single-stream throughput at least HAProxy's".into(),
            measured: format!("rift {ri:.0} MiB/s, haproxy {h:.0} MiB/s"),
            met: Some(ri >= h),
        },
        _ => not_measured("single-stream throughput at least HAProxy's"),
    });
    goals.push(match r.idle("rift") {
        Some(m) => Goal {
            goal: format!("idle connection ≤ {IDLE_KIB_MAX} KiB each"),
            measured: format!(
                "{:.1} KiB per connection over {}",
                m.per_connection_kib, m.connections
            ),
            met: Some(m.per_connection_kib <= IDLE_KIB_MAX),
        },
        None => not_measured(&format!("idle connection ≤ {IDLE_KIB_MAX} KiB each")),
    });
    let apply_goal = "partition applied to 10,000 live connections in ≤ 10 ms";
    goals.push(match &r.partition {
        Outcome::Ok(p) => Goal {
            goal: apply_goal.into(),
            measured: format!(
                "{:.0} µs over {} connections{} ({} still moving, {} resumed after heal)",
                p.apply_us,
                p.connections,
                p.capped_by
                    .as_deref()
                    .map_or(String::new(), |why| format!(", capped by {why}")),
                p.still_moving,
                p.resumed_after_heal
            ),
            // Fewer connections than asked only counts when the machine's descriptor
            // limit forced it, and the report says so.
            met: Some(
                (p.connections >= 10_000 || p.capped_by.is_some())
                    && p.apply_us <= APPLY_US_MAX
                    && p.still_moving == 0
                    && p.resumed_after_heal == p.connections,
            ),
        },
        _ => not_measured(apply_goal),
    });
    goals
}

fn not_measured(goal: &str) -> Goal {
    Goal {
        goal: goal.into(),
        measured: "-".into(),
        met: None,
    }
}

fn latency_goal(r: &Report, workload: &str, peer: &str, factor: f64, wording: &str) -> Goal {
    let goal = format!("{workload}: rift's added p50 and p99 {wording}");
    match (r.added(workload, "rift"), r.added(workload, peer)) {
        (Some((r50, r99)), Some((p50, p99))) => Goal {
            goal,
            measured: format!("rift +{r50:.1} / +{r99:.1} µs, {peer} +{p50:.1} / +{p99:.1} µs"),
            met: Some(r50 <= factor * p50 && r99 <= factor * p99),
        },
        _ => not_measured(&goal),
    }
}

/// rift's figure divided by each peer's: below 1 means rift costs less (latency, memory),
/// above 1 means rift moves more (throughput).
pub fn rift_vs_peers_markdown(r: &Report) -> String {
    let mut md = String::from(
        "\n## rift against each peer (rift / peer)\n\n| peer | added p50 64 B | added p99 64 B | added p50 1 KiB | added p99 1 KiB | throughput | memory per idle connection |\n|---|---|---|---|---|---|---|\n",
    );
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b.abs() > f64::EPSILON => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    for peer in ["haproxy", "socat", "toxiproxy"] {
        if r.targets
            .iter()
            .all(|t| t.target != peer || t.skipped.is_some())
        {
            continue;
        }
        let a64 = (r.added(PING_64, "rift"), r.added(PING_64, peer));
        let a1k = (r.added(PING_1K, "rift"), r.added(PING_1K, peer));
        let _ = writeln!(
            md,
            "| {peer} | {} | {} | {} | {} | {} | {} |",
            ratio(a64.0.map(|x| x.0), a64.1.map(|x| x.0)),
            ratio(a64.0.map(|x| x.1), a64.1.map(|x| x.1)),
            ratio(a1k.0.map(|x| x.0), a1k.1.map(|x| x.0)),
            ratio(a1k.0.map(|x| x.1), a1k.1.map(|x| x.1)),
            ratio(r.throughput("rift"), r.throughput(peer)),
            ratio(
                r.idle("rift").map(|m| m.per_connection_kib),
                r.idle(peer).map(|m| m.per_connection_kib)
            ),
        );
    }
    md
}
