//! Majority leader: during the fault some leader is followed by a quorum (the side
//! with a majority keeps or elects one), and after the heal every member follows the
//! same leader. Fails on a fault that leaves no quorum anywhere.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::{POLL_INTERVAL, POLL_TIMEOUT, collect};
use crate::etcd::observer::{EtcdObserver, describe, majority_leader_of};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MajorityLeaderConfig {
    /// After the heal, all members must follow one leader within this long.
    #[serde(default = "default_converge", with = "crate::scenario::spec::dur")]
    pub converge_within: Duration,
}

fn default_converge() -> Duration {
    Duration::from_secs(10)
}

impl Default for MajorityLeaderConfig {
    fn default() -> Self {
        Self {
            converge_within: default_converge(),
        }
    }
}

pub struct MajorityLeader {
    observer: EtcdObserver,
    config: MajorityLeaderConfig,
    task: Option<JoinHandle<Option<(String, u64, u64)>>>,
    verdict: Verdict,
    done: bool,
}

impl MajorityLeader {
    pub fn new(observer: EtcdObserver, config: MajorityLeaderConfig) -> Self {
        Self {
            observer,
            config,
            task: None,
            verdict: Verdict::new("majority-leader"),
            done: false,
        }
    }
}

impl Checker for MajorityLeader {
    fn name(&self) -> String {
        "majority-leader".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::FaultApplied => {
                    let observer = self.observer.clone();
                    let started = ctx.started;
                    // Poll from a little after the fault: right at the cut the old
                    // leader is still followed, which says nothing about the fault.
                    let grace = ctx.hold / 2;
                    self.task = Some(tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        loop {
                            let all = observer.status_all(POLL_TIMEOUT).await;
                            if let Some((l, t)) = majority_leader_of(&all, observer.quorum()) {
                                return Some((l, t, started.elapsed().as_millis() as u64));
                            }
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }));
                }
                Phase::HoldEnd => {
                    match collect(&mut self.task, Duration::from_millis(500))
                        .await
                        .flatten()
                    {
                        Some((l, t, at)) => {
                            self.verdict.timing(format!("{l} leads a majority"), at);
                            self.verdict.evidence(format!(
                                "during the fault {l} was followed by a quorum (applied term {t})"
                            ));
                        }
                        None => {
                            let all = self.observer.status_all(POLL_TIMEOUT).await;
                            self.verdict.fail(format!(
                                "no leader followed by a quorum in the second half of the hold: {}",
                                describe(&all)
                            ));
                        }
                    }
                }
                Phase::Final => {
                    self.done = true;
                    let start = Instant::now();
                    loop {
                        let all = self.observer.status_all(POLL_TIMEOUT).await;
                        if let Some((l, t)) = majority_leader_of(&all, all.len()) {
                            self.verdict
                                .timing("all members follow one leader", ctx.now_ms());
                            self.verdict.evidence(format!(
                                "after heal all members follow {l} (applied term {t})"
                            ));
                            break;
                        }
                        if start.elapsed() > self.config.converge_within {
                            self.verdict.fail(format!(
                                "members still disagree {:?} after settle: {}",
                                self.config.converge_within,
                                describe(&all)
                            ));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Phase::Baseline | Phase::Healed => {}
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        if !self.done {
            self.verdict
                .fail("the scenario ended before the final observation");
        }
        self.verdict
            .pass("a majority kept a leader during the fault; one leader for all after heal");
        self.verdict.clone()
    }
}
