//! No quorum anywhere (two-vs-two on 4 members): during the fault no member may
//! acknowledge a write — each Put must fail within the deadline — and after the heal
//! and settle every member accepts a write again. A fault that leaves some side with a
//! quorum makes it FAIL.

use std::time::Duration;

use serde::Deserialize;
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
    /// Wait this long after the fault before probing, so a leader that has not yet
    /// noticed the cut is given the chance to (wrongly) accept a write.
    #[serde(default = "default_settle_in", with = "crate::scenario::spec::dur")]
    pub settle_in: Duration,
    /// How long after settle each member may take to accept a write again.
    #[serde(default = "default_recover", with = "crate::scenario::spec::dur")]
    pub recover_within: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_settle_in() -> Duration {
    Duration::from_millis(200)
}
fn default_recover() -> Duration {
    Duration::from_secs(10)
}

impl Default for NoQuorumConfig {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            settle_in: default_settle_in(),
            recover_within: default_recover(),
        }
    }
}

pub struct NoQuorum {
    observer: EtcdObserver,
    config: NoQuorumConfig,
    task: Option<JoinHandle<Verdict>>,
    verdict: Verdict,
    probed: bool,
}

impl NoQuorum {
    pub fn new(observer: EtcdObserver, config: NoQuorumConfig) -> Self {
        Self {
            observer,
            config,
            task: None,
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
                    let observer = self.observer.clone();
                    let cfg = self.config.clone();
                    let started = ctx.started;
                    self.task = Some(tokio::spawn(async move {
                        let mut v = Verdict::new("no-quorum");
                        tokio::time::sleep(cfg.settle_in).await;
                        let mut set = tokio::task::JoinSet::new();
                        for n in observer.member_names() {
                            let o = observer.clone();
                            let t = cfg.timeout;
                            set.spawn(async move {
                                let key = format!("rift/probe/no-quorum/{n}");
                                (n.clone(), o.put(&n, &key, "x", t).await)
                            });
                        }
                        let mut results = Vec::new();
                        while let Some(Ok(r)) = set.join_next().await {
                            results.push(r);
                        }
                        results.sort_by(|a, b| a.0.cmp(&b.0));
                        for (n, r) in results {
                            match r {
                                Ok(rev) => v.fail(format!(
                                    "{n} acknowledged a write (revision {rev}) during the fault"
                                )),
                                Err(e) => v.evidence(format!("put through {n} refused: {e}")),
                            }
                        }
                        let leaders: Vec<String> = observer
                            .status_all(POLL_TIMEOUT)
                            .await
                            .into_iter()
                            .filter_map(|(n, s)| {
                                s.ok().filter(|s| s.leader_id == s.member_id).map(|_| n)
                            })
                            .collect();
                        v.evidence(format!(
                            "members acting as leader at end of probe: {leaders:?}"
                        ));
                        v.timing(
                            "no-quorum probes done",
                            started.elapsed().as_millis() as u64,
                        );
                        v
                    }));
                }
                Phase::HoldEnd => {
                    self.probed = true;
                    match collect(&mut self.task, Duration::from_millis(200)).await {
                        Some(v) => {
                            self.verdict.timings.extend(v.timings);
                            self.verdict.evidence.extend(v.evidence);
                            if v.status == crate::scenario::Status::Fail {
                                self.verdict.fail(v.summary);
                            }
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
