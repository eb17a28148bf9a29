//! Sub-commands of the `rift` binary, one module per area.

pub mod cap_map;
pub mod capture;
pub mod cluster;
pub mod control;
pub mod history;
pub mod lab;
pub mod matrix;
pub mod proxy;
pub mod scenario;
pub mod target;
pub mod toxiproxy;
pub mod watch;

/// Logs go to stderr (stdout is for results and JSON); `RUST_LOG` overrides the level.
/// The CQL driver logs every connection it opens at info: only its warnings are shown.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The ZooKeeper client warns on every failed reconnect, which a partition makes
        // the normal case for the clients of a cut server: its errors still show.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,zookeeper_client=error,scylla=warn")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
