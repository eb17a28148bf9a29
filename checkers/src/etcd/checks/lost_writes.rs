//! No lost writes: after heal and settle, every Put the workload saw acknowledged is
//! read back (linearizably) with the value that was written.

use std::time::Duration;

use crate::etcd::observer::EtcdObserver;
use crate::etcd::workload::SharedHistory;
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

/// How many missing keys are listed in the evidence.
const SHOWN: usize = 10;

pub struct NoLostWrites {
    observer: EtcdObserver,
    history: SharedHistory,
    verdict: Verdict,
    checked: bool,
}

impl NoLostWrites {
    pub fn new(observer: EtcdObserver, history: SharedHistory) -> Self {
        Self {
            observer,
            history,
            verdict: Verdict::new("no-lost-writes"),
            checked: false,
        }
    }

    /// The verdict so far (after [`NoLostWrites::check`]).
    pub fn verdict_now(&self) -> Verdict {
        self.verdict.clone()
    }

    /// Reads everything back and judges. Call after the workload stopped.
    pub async fn check(&mut self, now_ms: u64) {
        self.checked = true;
        let (acked, prefix) = {
            let h = self.history.lock().expect("history lock");
            let acked: Vec<_> = h.acknowledged().cloned().collect();
            (acked, h.run_prefix.clone())
        };
        if acked.is_empty() {
            self.verdict
                .fail("the workload had no acknowledged write to check (is it running?)");
            return;
        }
        let mut stored = None;
        let mut errors = Vec::new();
        for n in self.observer.member_names() {
            match self
                .observer
                .get_prefix(&n, &prefix, Duration::from_secs(3))
                .await
            {
                Ok(m) => {
                    self.verdict
                        .evidence(format!("read back {} keys through {n}", m.len()));
                    stored = Some(m);
                    break;
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let Some(stored) = stored else {
            self.verdict.fail(format!(
                "could not read back through any member: {}",
                errors.join("; ")
            ));
            return;
        };
        let mut lost = Vec::new();
        for p in &acked {
            match stored.get(&p.key) {
                Some(v) if *v == p.value => {}
                Some(v) => lost.push(format!(
                    "{} (acknowledged by {} at {} ms in {}) holds {v:?}, not {:?}",
                    p.key, p.member, p.end_ms, p.phase, p.value
                )),
                None => lost.push(format!(
                    "{} (acknowledged by {} at {} ms in {}) is missing",
                    p.key, p.member, p.end_ms, p.phase
                )),
            }
        }
        self.verdict.timing("read back", now_ms);
        if lost.is_empty() {
            self.verdict.pass(format!(
                "all {} acknowledged writes present after heal",
                acked.len()
            ));
        } else {
            self.verdict.fail(format!(
                "{} of {} acknowledged writes lost",
                lost.len(),
                acked.len()
            ));
            for l in lost.iter().take(SHOWN) {
                self.verdict.evidence(format!("lost: {l}"));
            }
        }
    }
}

impl Checker for NoLostWrites {
    fn name(&self) -> String {
        "no-lost-writes".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if phase == Phase::Final {
                self.check(ctx.now_ms()).await;
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        if !self.checked {
            self.verdict
                .fail("the scenario ended before the final read-back");
        }
        self.verdict.clone()
    }
}
