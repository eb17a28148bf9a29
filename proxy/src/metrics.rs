//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics`.
//!
//! Names and labels (bounded: node names, endpoint names, fixed words):
//! - `rift_connections_active{src,dst,endpoint}` gauge, `rift_connections_total{src,dst,endpoint}`
//! - `rift_bytes_total{src,dst,direction}`: src/dst are the dialer and target node;
//!   `forward` bytes flow src to dst, `reverse` dst to src. Counted per chunk, live.
//! - `rift_link_state{src,dst}`: 0 pass, 1 hold, 2 reset, 3 blackhole, 4 degraded
//!   (strongest over endpoints) for bytes flowing src to dst.
//! - `rift_faults_applied_total{profile}`, `rift_resets_total{reason}`
//! - `rift_connections_refused_total{dst,endpoint}`: reset on accept because the
//!   listener was at its connection cap (`rift proxy --max-connections`).
//! - `rift_relay_delay_seconds`: time a chunk spent inside rift (read to write done).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::matrix::{Identities, LinkMatrix};
use crate::relay::{Link, RelayMetrics};

/// Microsecond-resolution buckets, up to the seconds a held chunk can wait.
const DELAY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process; later calls return the same handle.
/// `None` if another recorder was installed first (metrics then go there).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("rift_relay_delay_seconds".into()),
                    DELAY_BUCKETS,
                )
                .expect("delay buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Prefix("rift_cluster_switch_".into()),
                    DELAY_BUCKETS,
                )
                .expect("delay buckets are not empty");
            let handle = builder.install_recorder().ok()?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("rift-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// The per-connection handles for one accepted connection.
pub fn for_connection(ids: &Identities, link: Link) -> (RelayMetrics, metrics::Gauge) {
    let src = ids.name(link.src).to_string();
    let dst = ids.name(link.dst).to_string();
    let endpoint = ids
        .endpoint_names()
        .get(link.endpoint)
        .cloned()
        .unwrap_or_default();
    let labels = [
        ("src", src.clone()),
        ("dst", dst.clone()),
        ("endpoint", endpoint),
    ];
    metrics::counter!("rift_connections_total", &labels).increment(1);
    let active = metrics::gauge!("rift_connections_active", &labels);
    active.increment(1.0);
    let relay = RelayMetrics {
        bytes_forward: metrics::counter!("rift_bytes_total", "src" => src.clone(), "dst" => dst.clone(), "direction" => "forward"),
        bytes_reverse: metrics::counter!("rift_bytes_total", "src" => src, "dst" => dst, "direction" => "reverse"),
        delay: metrics::histogram!("rift_relay_delay_seconds"),
    };
    (relay, active)
}

pub fn connection_reset(reason: &'static str) {
    metrics::counter!("rift_resets_total", "reason" => reason).increment(1);
}

pub fn connection_refused(dst: &str, endpoint: &str) {
    metrics::counter!("rift_connections_refused_total", "dst" => dst.to_string(), "endpoint" => endpoint.to_string()).increment(1);
}

pub fn fault_applied(profile: &str) {
    metrics::counter!("rift_faults_applied_total", "profile" => profile.to_string()).increment(1);
}

/// Publishes `rift_link_state` for every directed pair of identities.
pub fn publish_link_states(ids: &Identities, matrix: &LinkMatrix) {
    for src in 0..ids.len() {
        for dst in 0..ids.len() {
            if src == dst {
                continue;
            }
            metrics::gauge!("rift_link_state", "src" => ids.name(src).to_string(), "dst" => ids.name(dst).to_string())
                .set(f64::from(matrix.link_state(src, dst)));
        }
    }
}
