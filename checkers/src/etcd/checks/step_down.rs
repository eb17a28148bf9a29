//! Leader step-down: the leader at the end of baseline, once cut off, stops calling
//! itself leader (etcd's CheckQuorum), and the other members elect a new leader whose
//! applied term is higher than the baseline term. Reports the time from the fault to
//! each. A fault that does not cut the leader off (wrong node, no cut) makes it FAIL.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::{POLL_INTERVAL, POLL_TIMEOUT, collect};
use crate::etcd::observer::{EtcdObserver, majority_leader_of};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StepDownConfig {
    /// Both events must happen this soon after the fault (default: the hold).
    #[serde(default, with = "opt_dur")]
    pub within: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
struct Observed {
    stepped_down_ms: Option<u64>,
    new_leader: Option<(String, u64, u64)>,
    last_view: String,
}

pub struct StepDown {
    observer: EtcdObserver,
    config: StepDownConfig,
    old_leader: Option<(String, u64)>,
    applied_ms: u64,
    task: Option<JoinHandle<Observed>>,
    verdict: Verdict,
}

impl StepDown {
    pub fn new(observer: EtcdObserver, config: StepDownConfig) -> Self {
        Self {
            observer,
            config,
            old_leader: None,
            applied_ms: 0,
            task: None,
            verdict: Verdict::new("leader-step-down"),
        }
    }
}

impl Checker for StepDown {
    fn name(&self) -> String {
        "leader-step-down".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => {
                    self.old_leader = self.observer.majority_leader(POLL_TIMEOUT * 3).await;
                    match &self.old_leader {
                        Some((l, t)) => self
                            .verdict
                            .evidence(format!("baseline leader {l} at applied term {t}")),
                        None => self
                            .verdict
                            .fail("no leader agreed by a majority at baseline"),
                    }
                }
                Phase::FaultApplied => {
                    self.applied_ms = ctx.now_ms();
                    self.verdict.timing("fault applied", self.applied_ms);
                    // The leader the fault was aimed at is the one right now (the cut
                    // has not been noticed yet); an election between baseline and apply
                    // would otherwise be mistaken for the step-down.
                    if let Some(now) = self.observer.majority_leader(POLL_TIMEOUT).await
                        && self.old_leader.as_ref() != Some(&now)
                    {
                        self.verdict.evidence(format!(
                            "leader at apply time: {} at applied term {}",
                            now.0, now.1
                        ));
                        self.old_leader = Some(now);
                    }
                    let Some((leader, term)) = self.old_leader.clone() else {
                        return;
                    };
                    if let Some(f) = &ctx.fault {
                        let cut = f.minority.contains(&leader);
                        self.verdict.evidence(format!(
                            "fault {}: {leader} is {} the minority side",
                            f.label,
                            if cut { "on" } else { "NOT on" }
                        ));
                    }
                    let observer = self.observer.clone();
                    let started = ctx.started;
                    let quorum = observer.quorum();
                    self.task = Some(tokio::spawn(async move {
                        let mut o = Observed::default();
                        loop {
                            let all = observer.status_all(POLL_TIMEOUT).await;
                            let now = started.elapsed().as_millis() as u64;
                            if o.stepped_down_ms.is_none()
                                && let Some((_, Ok(s))) = all.iter().find(|(n, _)| *n == leader)
                                && s.leader_id != s.member_id
                            {
                                o.stepped_down_ms = Some(now);
                            }
                            if o.new_leader.is_none()
                                && let Some((l, t)) = majority_leader_of(&all, quorum)
                                && l != leader
                                && t > term
                            {
                                o.new_leader = Some((l, t, now));
                            }
                            o.last_view = crate::etcd::observer::describe(&all);
                            if o.stepped_down_ms.is_some() && o.new_leader.is_some() {
                                return o;
                            }
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }));
                }
                Phase::HoldEnd => {
                    let got = collect(&mut self.task, Duration::ZERO).await;
                    self.judge(got, ctx);
                }
                Phase::Healed => {}
                Phase::Final => match self.observer.majority_leader(POLL_TIMEOUT * 3).await {
                    Some((l, t)) => self
                        .verdict
                        .evidence(format!("after settle: leader {l}, applied term {t}")),
                    None => self.verdict.evidence("after settle: no agreed leader"),
                },
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        self.verdict.clone()
    }
}

impl StepDown {
    fn judge(&mut self, got: Option<Observed>, ctx: &ScenarioContext) {
        let Some((leader, term)) = self.old_leader.clone() else {
            return;
        };
        let within = self.config.within.unwrap_or(ctx.hold).as_millis() as u64;
        // The poller returns only when both happened; otherwise it was still running.
        let o = got.unwrap_or_default();
        let v = &mut self.verdict;
        match o.stepped_down_ms {
            Some(at) => {
                v.timing(format!("{leader} stepped down"), at);
                let after = at - self.applied_ms;
                v.evidence(format!(
                    "{leader} stopped acting as leader {after} ms after the fault"
                ));
                if after > within {
                    v.fail(format!(
                        "{leader} stepped down after {after} ms, later than {within} ms"
                    ));
                }
            }
            None => v.fail(format!("{leader} never stepped down during the hold")),
        }
        match &o.new_leader {
            Some((l, t, at)) => {
                v.timing(format!("{l} elected"), *at);
                let after = at - self.applied_ms;
                v.evidence(format!(
                    "majority elected {l} at applied term {t} (> {term}) {after} ms after the fault"
                ));
                if after > within {
                    v.fail(format!(
                        "new leader after {after} ms, later than {within} ms"
                    ));
                }
            }
            None => v.fail(format!(
                "no new leader with a term above {term} during the hold"
            )),
        }
        if !o.last_view.is_empty() {
            v.evidence(format!("last view: {}", o.last_view));
        }
        if let (Some(sd), Some((l, _, nl))) = (o.stepped_down_ms, &o.new_leader) {
            v.pass(format!(
                "{leader} stepped down after {} ms; {l} elected after {} ms",
                sd - self.applied_ms,
                nl - self.applied_ms
            ));
        }
    }
}

/// Optional humantime durations in checker settings.
pub mod opt_dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            humantime::parse_duration(&s)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
        })
        .transpose()
    }
}
