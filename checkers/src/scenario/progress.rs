//! Progress lines while a scenario waits: one line per phase start, then a line about
//! every second with elapsed/remaining time and what the cluster looks like.

use std::io::Write;
use std::time::{Duration, Instant};

use super::Cluster;

pub struct Progress {
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(started: Instant, quiet: bool) -> Self {
        Self { started, quiet }
    }

    pub fn line(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let t = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{t:7.1}s] {}", msg.as_ref());
    }

    /// Sleeps `total`, printing a line every `every` with the cluster's status.
    pub async fn wait(&self, phase: &str, total: Duration, cluster: &dyn Cluster) {
        let begin = Instant::now();
        let every = Duration::from_secs(1);
        self.line(format!("{phase}: {:.1}s", total.as_secs_f64()));
        loop {
            let elapsed = begin.elapsed();
            if elapsed >= total {
                return;
            }
            let step = every.min(total - elapsed);
            tokio::time::sleep(step).await;
            let elapsed = begin.elapsed().min(total);
            if !self.quiet && elapsed < total {
                let status = tokio::time::timeout(Duration::from_millis(400), cluster.describe())
                    .await
                    .unwrap_or_else(|_| "(status timed out)".into());
                self.line(format!(
                    "{phase}: {:.1}s elapsed, {:.1}s remaining | {status}",
                    elapsed.as_secs_f64(),
                    (total - elapsed).as_secs_f64()
                ));
            }
        }
    }
}
