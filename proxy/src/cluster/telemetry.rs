//! The cluster's metrics, rendered by the controller's `/metrics`:
//! - `rift_cluster_version`: the controller's newest matrix version.
//! - `rift_cluster_agent_up{agent}` (1 answered the last request, else 0) and
//!   `rift_cluster_agent_version{agent}` (the version it confirmed; -1 none).
//! - `rift_cluster_switch_skew_seconds` (histogram, µs buckets): first to last agent
//!   switching, per change, on the agents' clocks; `rift_cluster_switch_window_seconds`
//!   the clock-free upper bound (see [`super::skew`]).
//! - `rift_cluster_sync_failures_total{agent,phase}`: prepare or commit requests that
//!   failed.

pub fn version(version: u64) {
    metrics::gauge!("rift_cluster_version").set(version as f64);
}

pub fn agent(agent: &str, up: bool, version: Option<u64>) {
    metrics::gauge!("rift_cluster_agent_up", "agent" => agent.to_string())
        .set(f64::from(u8::from(up)));
    metrics::gauge!("rift_cluster_agent_version", "agent" => agent.to_string())
        .set(version.map_or(-1.0, |v| v as f64));
}

pub fn switch(skew_seconds: f64, window_seconds: f64) {
    metrics::histogram!("rift_cluster_switch_skew_seconds").record(skew_seconds);
    metrics::histogram!("rift_cluster_switch_window_seconds").record(window_seconds);
}

pub fn sync_failure(agent: &str, phase: &'static str) {
    metrics::counter!("rift_cluster_sync_failures_total", "agent" => agent.to_string(), "phase" => phase)
        .increment(1);
}
