//! Quorum availability under a majority/minority split.
//!
//! At baseline a probe key is written and seen by every member. Once the majority side
//! follows a leader, the probe key is overwritten through each majority member (must
//! succeed), then through each minority member: a Put must fail within the deadline, a
//! linearizable Get must fail, and a serializable Get must return the baseline value —
//! stale, because the minority cannot learn the majority's write. With
//! `expect_fresh_serializable = true` the checker asserts the opposite (a fresh read),
//! which real etcd violates: that is its negative test.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::{POLL_TIMEOUT, collect};
use crate::etcd::observer::{EtcdError, EtcdObserver};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumConfig {
    /// Deadline of each probe request; keep it well below the hold.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    /// Override the minority side computed from the fault.
    #[serde(default)]
    pub minority: Option<Vec<String>>,
    /// Assert serializable minority reads are fresh (they are not: negative test).
    #[serde(default)]
    pub expect_fresh_serializable: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

impl Default for QuorumConfig {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            minority: None,
            expect_fresh_serializable: false,
        }
    }
}

pub struct QuorumAvailability {
    observer: EtcdObserver,
    config: QuorumConfig,
    key: String,
    baseline_value: String,
    task: Option<JoinHandle<Verdict>>,
    verdict: Verdict,
}

impl QuorumAvailability {
    pub fn new(observer: EtcdObserver, config: QuorumConfig) -> Self {
        let id = rand::random::<u32>();
        Self {
            observer,
            config,
            key: format!("rift/probe/quorum-{id:08x}"),
            baseline_value: format!("baseline-{id:08x}"),
            task: None,
            verdict: Verdict::new("quorum-availability"),
        }
    }
}

impl Checker for QuorumAvailability {
    fn name(&self) -> String {
        "quorum-availability".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => self.baseline().await,
                Phase::FaultApplied => {
                    let Some(fault) = &ctx.fault else { return };
                    let minority = self
                        .config
                        .minority
                        .clone()
                        .unwrap_or_else(|| fault.minority.clone());
                    let majority: Vec<String> = ctx
                        .nodes
                        .iter()
                        .filter(|n| !minority.contains(n))
                        .cloned()
                        .collect();
                    let probe = Probe {
                        observer: self.observer.clone(),
                        config: self.config.clone(),
                        key: self.key.clone(),
                        baseline_value: self.baseline_value.clone(),
                        minority,
                        majority,
                        started: ctx.started,
                        budget: ctx.hold,
                    };
                    self.task = Some(tokio::spawn(probe.run()));
                }
                Phase::HoldEnd => match collect(&mut self.task, Duration::from_millis(200)).await {
                    Some(v) => self.verdict.merge(v),
                    None => self
                        .verdict
                        .fail("the probes did not finish during the hold (hold too short?)"),
                },
                Phase::Healed | Phase::Final => {}
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        if self.verdict.summary.is_empty() && self.verdict.status == crate::scenario::Status::Pass {
            self.verdict.fail("the fault was never applied");
        }
        self.verdict.clone()
    }
}

impl QuorumAvailability {
    async fn baseline(&mut self) {
        let o = &self.observer;
        let names = o.member_names();
        let mut written = false;
        for n in &names {
            if o.put(n, &self.key, &self.baseline_value, Duration::from_secs(2))
                .await
                .is_ok()
            {
                written = true;
                break;
            }
        }
        if !written {
            self.verdict.fail("could not write the baseline probe key");
            return;
        }
        // Every member must hold the baseline value before the cut, or a stale read on
        // the minority would prove nothing.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for n in &names {
            loop {
                let got = o.get(n, &self.key, true, POLL_TIMEOUT).await;
                if matches!(&got, Ok(Some(v)) if *v == self.baseline_value) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    self.verdict
                        .fail(format!("{n} never applied the baseline probe key"));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.verdict.evidence(format!(
            "baseline: {} = {} on every member",
            self.key, self.baseline_value
        ));
    }
}

struct Probe {
    observer: EtcdObserver,
    config: QuorumConfig,
    key: String,
    baseline_value: String,
    minority: Vec<String>,
    majority: Vec<String>,
    started: std::time::Instant,
    budget: Duration,
}

impl Probe {
    async fn run(self) -> Verdict {
        let mut v = Verdict::new("quorum-availability");
        let o = &self.observer;
        let t = self.config.timeout;
        let now = || self.started.elapsed().as_millis() as u64;
        if self.minority.is_empty() {
            v.fail("the fault left no minority side to probe");
            return v;
        }
        v.evidence(format!(
            "majority side {:?}, minority side {:?}",
            self.majority, self.minority
        ));
        // Wait for the majority to follow a leader on its own side.
        let deadline = std::time::Instant::now() + self.budget / 2;
        loop {
            let all = o.status_all(POLL_TIMEOUT).await;
            let on_majority = all.iter().filter(|(n, s)| {
                self.majority.contains(n)
                    && matches!(s, Ok(s) if s.leader.as_ref().is_some_and(|l| self.majority.contains(l)))
            });
            if on_majority.count() >= o.quorum() {
                v.timing("majority has a leader", now());
                break;
            }
            if std::time::Instant::now() > deadline {
                v.fail(format!(
                    "majority side had no leader of its own within {:?}: {}",
                    self.budget / 2,
                    crate::etcd::observer::describe(&all)
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut latest = None;
        for n in &self.majority {
            let value = format!("majority-{n}-{:08x}", rand::random::<u32>());
            match o.put(n, &self.key, &value, t).await {
                Ok(_) => {
                    v.evidence(format!("put through majority member {n}: ok"));
                    latest = Some(value);
                }
                Err(e) => v.fail(format!("put through majority member {n} failed: {e}")),
            }
        }
        // Minority members are probed in parallel: each waits out its deadlines.
        let mut set = tokio::task::JoinSet::new();
        for (i, n) in self.minority.iter().enumerate() {
            let p = MinorityProbe {
                observer: o.clone(),
                member: n.clone(),
                key: self.key.clone(),
                baseline_value: self.baseline_value.clone(),
                latest: latest.clone(),
                timeout: t,
                expect_fresh: self.config.expect_fresh_serializable,
            };
            set.spawn(async move { (i, p.run().await) });
        }
        let mut results = Vec::new();
        while let Some(Ok(r)) = set.join_next().await {
            results.push(r);
        }
        results.sort_by_key(|(i, _)| *i);
        for (_, sub) in results {
            v.merge_quiet(sub);
        }
        v.timing("probes done", now());
        v.pass(format!(
            "majority {:?} accepted writes; minority {:?} refused writes and linearizable reads, served {} serializable reads",
            self.majority,
            self.minority,
            if self.config.expect_fresh_serializable { "fresh" } else { "stale" }
        ));
        v
    }
}

/// The three probes through one minority member.
struct MinorityProbe {
    observer: EtcdObserver,
    member: String,
    key: String,
    baseline_value: String,
    latest: Option<String>,
    timeout: Duration,
    expect_fresh: bool,
}

impl MinorityProbe {
    async fn run(self) -> Verdict {
        let mut v = Verdict::new("quorum-availability");
        let o = &self.observer;
        let t = self.timeout;
        let n = &self.member;
        let start = std::time::Instant::now();
        match o.put(n, &format!("{}-minority", self.key), "x", t).await {
            Ok(_) => v.fail(format!("put through minority member {n} was acknowledged")),
            Err(e) => v.evidence(format!(
                "put through minority member {n} failed after {} ms: {}",
                start.elapsed().as_millis(),
                short(&e)
            )),
        }
        match o.get(n, &self.key, false, t).await {
            Ok(val) => v.fail(format!(
                "linearizable read through minority member {n} answered {val:?}"
            )),
            Err(e) => v.evidence(format!(
                "linearizable read through minority member {n} failed: {}",
                short(&e)
            )),
        }
        match o.get(n, &self.key, true, t).await {
            Ok(Some(val)) => {
                let fresh = self.latest.as_deref() == Some(val.as_str());
                let stale = val == self.baseline_value;
                v.evidence(format!(
                    "serializable read through minority member {n}: {val:?} ({})",
                    if fresh {
                        "fresh"
                    } else if stale {
                        "stale baseline value"
                    } else {
                        "unexpected"
                    }
                ));
                let latest = &self.latest;
                if self.expect_fresh && !fresh {
                    v.fail(format!(
                        "serializable read on {n} returned {val:?}, not the majority's latest write {latest:?}"
                    ));
                } else if !self.expect_fresh && !stale {
                    v.fail(format!(
                        "serializable read on {n} returned {val:?}, expected the stale baseline value"
                    ));
                }
            }
            Ok(None) => v.fail(format!(
                "serializable read on {n}: the probe key is missing"
            )),
            Err(e) => v.fail(format!("serializable read on {n} failed: {e}")),
        }
        v
    }
}

fn short(e: &EtcdError) -> String {
    match e {
        EtcdError::Timeout { after, .. } => format!("deadline {} ms exceeded", after.as_millis()),
        other => other.to_string(),
    }
}
