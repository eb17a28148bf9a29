//! Leader stability: how much a fault (and its heal) disturbed leadership.
//!
//! Elections are judged by the applied term (a completed election commits an entry of
//! the new term, so the applied term rises; Status cannot show campaigns that never
//! won, see the observer notes) and by the leader a majority follows, polled from the
//! fault to the end of settle. Each member's `etcd_server_leader_changes_seen_total`
//! is reported too; a follower that merely lost its leader and found it again counts
//! one there although no election happened, so it is evidence, not the judged number.
//! The scenario states the expected bounds (e.g. 0 with pre-vote, >= 1 without).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::POLL_TIMEOUT;
use crate::etcd::observer::{EtcdObserver, MemberMetrics, majority_leader_of};
use crate::scenario::{BoxFuture, Checker, Phase, ScenarioContext, Verdict};

/// How long the final observation waits for a majority to agree on a leader.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StabilityConfig {
    pub max_term_increase: Option<u64>,
    pub min_term_increase: Option<u64>,
    pub max_leader_changes: Option<u64>,
    pub min_leader_changes: Option<u64>,
}

/// One observed leader (agreed by a majority) with the time it was first seen.
#[derive(Debug, Clone)]
struct Seen {
    at_ms: u64,
    leader: Option<String>,
    term: u64,
}

pub struct LeaderStability {
    observer: EtcdObserver,
    config: StabilityConfig,
    baseline: Option<(String, u64)>,
    metrics: BTreeMap<&'static str, BTreeMap<String, MemberMetrics>>,
    terms: BTreeMap<&'static str, u64>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<Vec<Seen>>>,
    verdict: Verdict,
    finished: bool,
    applied_ms: u64,
    healed_ms: Option<u64>,
}

impl LeaderStability {
    pub fn new(observer: EtcdObserver, config: StabilityConfig) -> Self {
        Self {
            observer,
            config,
            baseline: None,
            metrics: BTreeMap::new(),
            terms: BTreeMap::new(),
            stop: None,
            task: None,
            verdict: Verdict::new("leader-stability"),
            finished: false,
            applied_ms: 0,
            healed_ms: None,
        }
    }

    async fn snapshot(&mut self, at: &'static str) {
        let mut m = BTreeMap::new();
        for n in self.observer.member_names() {
            match self.observer.metrics(&n).await {
                Ok(x) => {
                    m.insert(n, x);
                }
                Err(e) => self
                    .verdict
                    .evidence(format!("{at}: metrics of {n} unavailable: {e}")),
            }
        }
        let all = self.observer.status_all(POLL_TIMEOUT).await;
        let term = all
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok().map(|s| s.applied_term))
            .max()
            .unwrap_or(0);
        self.terms.insert(at, term);
        self.metrics.insert(at, m);
    }

    fn metric_deltas(&self, from: &str, to: &str) -> String {
        let (Some(a), Some(b)) = (self.metrics.get(from), self.metrics.get(to)) else {
            return "n/a".into();
        };
        b.iter()
            .map(|(n, x)| {
                let before = a.get(n).map(|y| y.leader_changes_seen).unwrap_or(0);
                format!("{n} +{}", x.leader_changes_seen.saturating_sub(before))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Checker for LeaderStability {
    fn name(&self) -> String {
        "leader-stability".into()
    }

    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match phase {
                Phase::Baseline => {
                    self.baseline = self.observer.majority_leader(POLL_TIMEOUT * 3).await;
                    self.snapshot("baseline").await;
                    match &self.baseline {
                        Some((l, t)) => self
                            .verdict
                            .evidence(format!("baseline leader {l}, applied term {t}")),
                        None => self
                            .verdict
                            .fail("no leader agreed by a majority at baseline"),
                    }
                }
                Phase::FaultApplied => {
                    self.applied_ms = ctx.now_ms();
                    let (tx, mut rx) = watch::channel(false);
                    self.stop = Some(tx);
                    let observer = self.observer.clone();
                    let started = ctx.started;
                    let first = self.baseline.clone();
                    self.task = Some(tokio::spawn(async move {
                        let mut seen = vec![Seen {
                            at_ms: started.elapsed().as_millis() as u64,
                            leader: first.as_ref().map(|f| f.0.clone()),
                            term: first.map(|f| f.1).unwrap_or(0),
                        }];
                        loop {
                            let all = observer.status_all(POLL_TIMEOUT).await;
                            let now = majority_leader_of(&all, observer.quorum());
                            let last = seen.last().expect("seeded");
                            let (leader, term) = match now {
                                Some((l, t)) => (Some(l), t),
                                None => (None, last.term),
                            };
                            if leader != last.leader || term != last.term {
                                seen.push(Seen {
                                    at_ms: started.elapsed().as_millis() as u64,
                                    leader,
                                    term,
                                });
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                                _ = rx.changed() => return seen,
                            }
                        }
                    }));
                }
                Phase::HoldEnd => self.snapshot("hold-end").await,
                Phase::Healed => self.healed_ms = Some(ctx.now_ms()),
                Phase::Final => {
                    // Without pre-vote the heal itself triggers an election that can
                    // outlast a short settle; the final term and leader are only
                    // meaningful once a majority agrees on a leader again.
                    let waited = std::time::Instant::now();
                    let settled = self.observer.wait_for_leader(SETTLE_LIMIT, None).await;
                    let settled_ms = ctx.now_ms();
                    match &settled {
                        Ok((l, _)) if waited.elapsed() > Duration::from_millis(200) => {
                            self.verdict.evidence(format!(
                                "waited {} ms after settle for an agreed leader ({l})",
                                waited.elapsed().as_millis()
                            ))
                        }
                        Ok(_) => {}
                        Err(e) => self.verdict.evidence(format!("after settle: {e}")),
                    }
                    self.snapshot("final").await;
                    if let Some(s) = self.stop.take() {
                        let _ = s.send(true);
                    }
                    let mut seen = match self.task.take() {
                        Some(t) => t.await.unwrap_or_default(),
                        None => vec![],
                    };
                    // The poller may be stopped before its next round (one round can
                    // take a status timeout while members elect): the settled leader
                    // is the last observation either way.
                    if let Ok((leader, term)) = settled
                        && seen
                            .last()
                            .is_none_or(|s| s.leader.as_deref() != Some(&leader) || s.term != term)
                    {
                        seen.push(Seen {
                            at_ms: settled_ms,
                            leader: Some(leader),
                            term,
                        });
                    }
                    self.judge(&seen);
                }
            }
        })
    }

    fn verdict(&mut self) -> Verdict {
        if !self.finished {
            self.verdict
                .fail("the scenario ended before the final observation");
        }
        self.verdict.clone()
    }
}

impl LeaderStability {
    fn judge(&mut self, seen: &[Seen]) {
        self.finished = true;
        let base = self.terms.get("baseline").copied().unwrap_or(0);
        let hold = self.terms.get("hold-end").copied().unwrap_or(base);
        let fin = self.terms.get("final").copied().unwrap_or(hold);
        let term_increase = fin.saturating_sub(base);
        // Leader changes: the agreed leader became a different node, or the same node
        // won a later term; gaps without an agreed leader are not counted themselves.
        let healed = self.healed_ms.unwrap_or(u64::MAX);
        let (mut during, mut after) = (0u64, 0u64);
        let mut prev: Option<(String, u64)> = None;
        for s in seen {
            if let Some(l) = &s.leader {
                if let Some((pl, pt)) = &prev
                    && (pl != l || s.term > *pt)
                {
                    if s.at_ms < healed {
                        during += 1;
                    } else {
                        after += 1;
                    }
                }
                prev = Some((l.clone(), s.term));
            }
        }
        let changes = during + after;
        let deltas_fault = self.metric_deltas("baseline", "hold-end");
        let deltas_heal = self.metric_deltas("hold-end", "final");
        let v = &mut self.verdict;
        v.evidence(format!(
            "applied term: baseline {base}, end of hold {hold}, after settle {fin}"
        ));
        v.evidence(format!(
            "leader changes: {during} during the fault, {after} after the heal"
        ));
        v.evidence(format!(
            "leader_changes_seen during the fault: {deltas_fault}"
        ));
        v.evidence(format!("leader_changes_seen after the heal: {deltas_heal}"));
        for s in seen {
            v.evidence(format!(
                "{:+} ms after the fault: leader {} (applied term {})",
                s.at_ms as i64 - self.applied_ms as i64,
                s.leader.as_deref().unwrap_or("none agreed"),
                s.term
            ));
        }
        for s in seen.iter().skip(1) {
            if let Some(l) = &s.leader {
                v.timing(format!("leader {l} term {}", s.term), s.at_ms);
            }
        }
        let c = self.config.clone();
        let check = |v: &mut Verdict, what: &str, got: u64, min: Option<u64>, max: Option<u64>| {
            if let Some(max) = max
                && got > max
            {
                v.fail(format!("{what} {got} > expected at most {max}"));
            }
            if let Some(min) = min
                && got < min
            {
                v.fail(format!("{what} {got} < expected at least {min}"));
            }
        };
        check(
            v,
            "term increase",
            term_increase,
            c.min_term_increase,
            c.max_term_increase,
        );
        check(
            v,
            "leader changes",
            changes,
            c.min_leader_changes,
            c.max_leader_changes,
        );
        v.pass(format!(
            "term +{} during the fault, +{} after the heal; leader changes {during} during, {after} after (within expected bounds)",
            hold.saturating_sub(base),
            fin.saturating_sub(hold)
        ));
    }
}
