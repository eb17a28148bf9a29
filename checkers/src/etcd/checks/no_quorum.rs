//! No quorum anywhere (two-vs-two on 4 members): during the whole hold every member is
//! sent Puts back to back, and none may be acknowledged — each must fail at its
//! deadline; after the heal and settle every member accepts a write again. Probing for
//! the whole hold (not once) matters: right after a cut even a side that will keep a
//! quorum fails writes until it has elected a leader. A fault that leaves some side
//! with a quorum therefore makes it FAIL.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{POLL_TIMEOUT, collect};
use crate::etcd::observer::EtcdObserver;
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuorumConfig {
    /// Deadline of each Put.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    /// How long after settle each member may take to accept a write again.
    #[serde(default = "default_recover", with = "crate::scenario::spec::dur")]
    pub recover_within: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_recover() -> Duration {
    Duration::from_secs(10)
}

impl Default for NoQuorumConfig {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            recover_within: default_recover(),
        }
    }
}

pub struct NoQuorum {
    observer: EtcdObserver,
    config: NoQuorumConfig,
    task: Option<JoinHandle<Verdict>>,
    stop: Option<watch::Sender<bool>>,
    verdict: Verdict,
    probed: bool,
}

impl NoQuorum {
    pub fn new(observer: EtcdObserver, config: NoQuorumConfig) -> Self {
        Self {
            observer,
            config,
            task: None,
            stop: None,
            verdict: Verdict::new("no-quorum"),
            probed: false,
        }
    }
}

impl Checker for NoQuorum {
    fn name(&self) -> String {
        "no-quorum".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => {}
                Phase::FaultApplied => {
                    if let Some(f) = &ctx.fault {
                        self.verdict.evidence(format!(
                            "sides by reachability: majority-capable {:?}, minority {:?}",
                            f.majority, f.minority
                        ));
                    }
                    let (tx, rx) = watch::channel(false);
                    self.stop = Some(tx);
                    let observer = self.observer.clone();
                    let cfg = self.config.clone();
                    let started = ctx.started;
                    self.task = Some(tokio::spawn(probe_all(observer, cfg, started, rx)));
                }
                Phase::HoldEnd => {
                    self.probed = true;
                    if let Some(stop) = self.stop.take() {
                        let _ = stop.send(true);
                    }
                    // Probes in flight finish within their deadline.
                    let grace = self.config.timeout + Duration::from_millis(500);
                    match collect(&mut self.task, grace).await {
                        Some(v) => {
                            self.verdict.merge(v);
                        }
                        None => self
                            .verdict
                            .fail("the probes did not finish during the hold"),
                    }
                }
                Phase::Healed => {}
                Phase::Final => self.after_heal(ctx).await,
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        if !self.probed {
            self.verdict.fail("the fault was never applied");
        }
        self.verdict
            .pass("no member acknowledged a write during the fault; all accept writes after heal");
        self.verdict.clone()
    }
}

impl NoQuorum {
    async fn after_heal(&mut self, ctx: &ScenarioContext) {
        for n in self.observer.member_names() {
            let start = std::time::Instant::now();
            let key = format!("rift/probe/no-quorum/after/{n}");
            loop {
                match self.observer.put(&n, &key, "y", self.config.timeout).await {
                    Ok(_) => {
                        self.verdict.evidence(format!(
                            "after heal: put through {n} ok (waited {} ms)",
                            start.elapsed().as_millis()
                        ));
                        break;
                    }
                    Err(e) if start.elapsed() > self.config.recover_within => {
                        self.verdict.fail(format!(
                            "after heal: {n} still refuses writes after {:?}: {e}",
                            self.config.recover_within
                        ));
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        self.verdict
            .timing("writes accepted everywhere after heal", ctx.now_ms());
    }
}

/// Puts through every member, back to back, until `stop`.
async fn probe_all(
    observer: EtcdObserver,
    cfg: NoQuorumConfig,
    started: std::time::Instant,
    stop: watch::Receiver<bool>,
) -> Verdict {
    let mut v = Verdict::new("no-quorum");
    let mut set = tokio::task::JoinSet::new();
    for n in observer.member_names() {
        let o = observer.clone();
        let t = cfg.timeout;
        let stop = stop.clone();
        set.spawn(async move {
            let mut refused = 0u32;
            let mut acked = Vec::new();
            let mut first_error = None;
            let mut seq = 0u32;
            while !*stop.borrow() {
                seq += 1;
                let key = format!("rift/probe/no-quorum/{n}/{seq}");
                match o.put(&n, &key, "x", t).await {
                    Ok(rev) => {
                        acked.push((started.elapsed().as_millis() as u64, rev));
                        // Do not hammer a member that accepts writes.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        refused += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (n, refused, acked, first_error)
        });
    }
    let mut results = Vec::new();
    while let Some(Ok(r)) = set.join_next().await {
        results.push(r);
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (n, refused, acked, first_error) in results {
        v.evidence(format!(
            "{n}: {refused} Puts refused during the hold (first: {})",
            first_error.as_deref().unwrap_or("none")
        ));
        if let Some((at, rev)) = acked.first() {
            v.timing(format!("{n} acknowledged a write"), *at);
            v.fail(format!(
                "{n} acknowledged {} write(s) during the fault (first at revision {rev})",
                acked.len()
            ));
        }
    }
    let leaders: Vec<String> = observer
        .status_all(POLL_TIMEOUT)
        .await
        .into_iter()
        .filter_map(|(n, s)| s.ok().filter(|s| s.leader_id == s.member_id).map(|_| n))
        .collect();
    v.evidence(format!(
        "members acting as leader at the end of the hold: {leaders:?}"
    ));
    v
}
