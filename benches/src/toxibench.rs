//! rift in Toxiproxy mode (`rift toxiproxy`) against Toxiproxy itself: the added
//! latency goal (at most half of Toxiproxy's) and how long a toxic takes to reach
//! every live connection. The toxic is `bandwidth` with rate 0 on the downstream
//! stream (a stall that keeps every byte), added and then removed through the
//! Toxiproxy API, exactly as a client library would.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::goals::{PING_1K, PING_64};
use crate::many::{Cutter, PartitionTiming};
use crate::report::{Goal, Outcome, Report};

/// The proxy name the harness creates on both Toxiproxy servers.
pub const PROXY: &str = "bench";
const TOXIC: &str = "bench_stall";
/// Longest a toxic may take to reach every live connection (µs).
const APPLY_US_MAX: f64 = 10_000.0;

/// Adds and removes a stalling toxic through a Toxiproxy API (rift's or Toxiproxy's).
pub struct ToxicApi {
    url: String,
    http: reqwest::Client,
}

impl ToxicApi {
    pub fn new(url: String) -> Self {
        Self {
            url,
            http: reqwest::Client::new(),
        }
    }
}

impl Cutter for ToxicApi {
    async fn cut(&self) -> Result<()> {
        let body = serde_json::json!({"name": TOXIC, "type": "bandwidth", "stream": "downstream", "attributes": {"rate": 0}});
        let resp = self
            .http
            .post(format!("{}/proxies/{PROXY}/toxics", self.url))
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!(
                "adding the toxic: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn heal(&self) -> Result<()> {
        let resp = self
            .http
            .delete(format!("{}/proxies/{PROXY}/toxics/{TOXIC}", self.url))
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!(
                "removing the toxic: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// A toxic applied to live connections through one target.
#[derive(Debug, Serialize)]
pub struct ToxicRow {
    pub target: String,
    pub result: Outcome<PartitionTiming>,
}

pub fn goals(r: &Report) -> Vec<Goal> {
    let mut goals = Vec::new();
    for w in [PING_64, PING_1K] {
        let goal =
            format!("{w}: rift toxiproxy mode's added p50 and p99 at most half of Toxiproxy's");
        goals.push(match (r.added(w, "rift-toxiproxy"), r.added(w, "toxiproxy")) {
            (Some((r50, r99)), Some((p50, p99))) => Goal {
                goal,
                measured: format!("rift-toxiproxy +{r50:.1} / +{r99:.1} µs, toxiproxy +{p50:.1} / +{p99:.1} µs"),
                met: Some(r50 <= 0.5 * p50 && r99 <= 0.5 * p99),
            },
            _ => Goal {
                goal,
                measured: "-".into(),
                met: None,
            },
        });
    }
    let goal = "toxic applied to 10,000 live connections in ≤ 10 ms (rift toxiproxy mode)";
    let row = r.toxic.iter().find(|row| row.target == "rift-toxiproxy");
    goals.push(match row.map(|row| &row.result) {
        Some(Outcome::Ok(t)) => Goal {
            goal: goal.into(),
            measured: format!(
                "{:.0} µs over {} connections{} ({} still moving, {} resumed after removal)",
                t.apply_us,
                t.connections,
                t.capped_by
                    .as_deref()
                    .map_or(String::new(), |why| format!(", capped by {why}")),
                t.still_moving,
                t.resumed_after_heal
            ),
            met: Some(
                (t.connections >= 10_000 || t.capped_by.is_some())
                    && t.apply_us <= APPLY_US_MAX
                    && t.still_moving == 0
                    && t.resumed_after_heal == t.connections,
            ),
        },
        _ => Goal {
            goal: goal.into(),
            measured: "-".into(),
            met: None,
        },
    });
    goals
}

pub fn failures(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for row in &r.toxic {
        match &row.result {
            Outcome::Failed { error } => out.push(format!("toxic via {}: {error}", row.target)),
            Outcome::Ok(t) if t.still_moving > 0 => out.push(format!(
                "toxic via {}: {} of {} connections still moved bytes after the toxic",
                row.target, t.still_moving, t.connections
            )),
            Outcome::Ok(t) if t.resumed_after_heal < t.connections => out.push(format!(
                "toxic via {}: only {} of {} stalled connections were answered after removal",
                row.target, t.resumed_after_heal, t.connections
            )),
            _ => {}
        }
    }
    out
}

pub fn markdown(r: &Report, md: &mut String) {
    if r.toxic.is_empty() {
        return;
    }
    md.push_str(
        "\n## Toxic applied to live connections (Toxiproxy API: bandwidth rate 0, downstream)\n\n",
    );
    md.push_str("| target | connections | apply time (API call to last byte moved) | API call returned | resolution | still moving | resumed after removal |\n|---|---|---|---|---|---|---|\n");
    for row in &r.toxic {
        match &row.result {
            Outcome::Ok(t) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} µs | {:.0} µs | {:.1} µs | {} | {} |",
                    row.target,
                    t.connections,
                    t.apply_us,
                    t.api_call_us,
                    t.resolution_us,
                    t.still_moving,
                    t.resumed_after_heal
                );
            }
            Outcome::Skipped { reason } => {
                let _ = writeln!(md, "| {} | skipped: {reason} | | | | | |", row.target);
            }
            Outcome::Failed { error } => {
                let _ = writeln!(md, "| {} | failed: {error} | | | | | |", row.target);
            }
        }
    }
}

#[cfg(test)]
impl Report {
    pub fn with_toxic_rows_for_tests(toxic: Vec<ToxicRow>) -> Report {
        Report {
            machine: crate::sys::Machine::describe(),
            loadavg_at_end: String::new(),
            mode: "test".into(),
            unix_time: 0,
            targets: vec![],
            latency: vec![],
            throughput: vec![],
            idle: vec![],
            partition: Outcome::Skipped {
                reason: "test".into(),
            },
            toxic,
            kafka_produce: Outcome::Skipped {
                reason: "test".into(),
            },
            switch_skew: Outcome::Skipped {
                reason: "test".into(),
            },
            goals: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(apply_us: f64, still_moving: usize) -> PartitionTiming {
        PartitionTiming {
            connections: 10_000,
            apply_us,
            api_call_us: 500.0,
            resolution_us: 100.0,
            echoes_before_cut: 1000,
            still_moving,
            resumed_after_heal: 10_000,
            capped_by: None,
        }
    }

    #[test]
    fn toxic_goal_is_met_only_when_fast_and_complete() {
        let goal = |t: PartitionTiming| {
            let row = ToxicRow {
                target: "rift-toxiproxy".into(),
                result: Outcome::Ok(t),
            };
            let g = goals(&Report::with_toxic_rows_for_tests(vec![row]));
            g.last().unwrap().met
        };
        assert_eq!(goal(timing(2_000.0, 0)), Some(true));
        assert_eq!(goal(timing(20_000.0, 0)), Some(false));
        assert_eq!(goal(timing(2_000.0, 5)), Some(false));
        let g = goals(&Report::with_toxic_rows_for_tests(vec![]));
        assert!(g.iter().all(|g| g.met.is_none()), "{g:?}");
    }
}
