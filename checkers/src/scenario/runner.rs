//! Runs one scenario against a [`Cluster`]: baseline, apply, hold, heal, settle, final
//! checks. The fault is always healed before returning, even when a step fails.
//!
//! The runner owns the run's one history ([`Recorder`]): it records the phase marks
//! and the nemesis operations (with the rules as the proxy returned them), runs the
//! poller that records observations of every node, and hands the recorder to the
//! workload, which records client operations.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rift_history::{Entry, NemesisOp, PhaseMark as HistoryPhase, Recorder};
use tokio::sync::watch;

pub use super::apply::roles;
use super::apply::{resolve_fault, start_fault, stop_fault};
use super::check::{CheckerImpl, Driver, HistoryCheck, run_history_checks};
use super::progress::Progress;
use super::schedule::Step;
use super::spec::{ActionSpec, Scenario};
use super::{Checker, Cluster, Phase, ScenarioContext, ScenarioError, Status, Workload};
use crate::report::{PhaseMark, Report};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// No progress lines (tests).
    pub quiet: bool,
}

/// How long the cluster may take to be healthy before baseline.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

#[tracing::instrument(name = "scenario", skip_all, fields(name = %scenario.name, system = cluster.system()))]
pub async fn run(
    scenario: &Scenario,
    cluster: &dyn Cluster,
    options: &RunOptions,
) -> Result<Report, ScenarioError> {
    let recorder = Recorder::new(Instant::now());
    let (stop, stopped) = watch::channel(false);
    let timeline = async {
        let result = timeline(scenario, cluster, options, &recorder).await;
        let _ = stop.send(true);
        result
    };
    let (result, ()) = tokio::join!(timeline, super::poller::run(cluster, &recorder, stopped));
    let (mut report, checks) = result?;
    let history = std::sync::Arc::new(recorder.snapshot());
    // Checks that judge the history run last, off the async runtime; their verdicts
    // take their place in the scenario's checker order.
    let (positions, checks): (Vec<usize>, Vec<_>) = checks.into_iter().unzip();
    let judged = run_history_checks(checks, history.clone()).await;
    for (at, verdict) in positions.into_iter().zip(judged) {
        report
            .verdicts
            .insert(at.min(report.verdicts.len()), verdict);
    }
    report.status = Status::combine(report.verdicts.iter().map(|v| v.status));
    report.history = std::sync::Arc::try_unwrap(history).unwrap_or_else(|h| (*h).clone());
    Ok(report)
}

/// History checks with their position among the scenario's checkers.
type Pending = Vec<(usize, Box<dyn HistoryCheck>)>;

/// Phase marks, in the report (milliseconds) and in the history (nanoseconds), taken
/// from the same instant.
struct Marks<'a> {
    recorder: &'a Recorder,
    marks: Vec<PhaseMark>,
}

impl Marks<'_> {
    fn mark(&mut self, phase: &str) -> u64 {
        let time = self.recorder.now();
        self.recorder.record(Entry::Phase(HistoryPhase {
            index: 0,
            time,
            phase: phase.to_string(),
        }));
        let at_ms = time / 1_000_000;
        self.marks.push(PhaseMark {
            phase: phase.to_string(),
            at_ms,
        });
        at_ms
    }
}

async fn timeline(
    scenario: &Scenario,
    cluster: &dyn Cluster,
    options: &RunOptions,
    recorder: &Recorder,
) -> Result<(Report, Pending), ScenarioError> {
    let started = recorder.started();
    let started_at = crate::lab::now_rfc3339();
    let progress = Progress::new(started, options.quiet);
    let mut marks = Marks {
        recorder,
        marks: Vec::new(),
    };

    progress.line(format!(
        "scenario {}: {} nodes of {}, waiting for a healthy cluster",
        scenario.name,
        cluster.nodes().len(),
        cluster.system()
    ));
    check_actions(scenario, cluster)?;
    cluster.wait_healthy(HEALTHY_TIMEOUT).await?;
    let mut workload = match &scenario.workload {
        Some(w) => Some(cluster.workload(w, recorder)?),
        None => None,
    };
    let mut checkers: Vec<Box<dyn Checker>> = Vec::new();
    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    let mut pending: Pending = Vec::new();
    for (at, spec) in scenario.checkers.iter().enumerate() {
        // Judged by the caller from the run's packet capture, once it is written.
        if spec.kind == crate::capture::scenario::KIND {
            continue;
        }
        // Checks that any system can use are built here; the rest by the system.
        let built = if spec.kind == super::cut_effect::KIND {
            CheckerImpl::History(Box::new(super::cut_effect::CutTookEffect::from_settings(
                &spec.settings,
                &spec.origin,
            )?))
        } else {
            cluster.checker(spec, &scenario.origin)?
        };
        match built {
            CheckerImpl::Live(c) => checkers.push(c),
            CheckerImpl::History(c) => pending.push((at, c)),
            CheckerImpl::Driven { driver, check } => {
                drivers.push(driver);
                pending.push((at, check));
            }
        }
    }
    let mut checkers = Participants { checkers, drivers };
    let mut ctx = ScenarioContext {
        started,
        nodes: cluster.nodes(),
        hold: scenario.timeline.hold,
        settle: scenario.timeline.settle,
        fault: None,
        baseline_leader: None,
        recorder: recorder.clone(),
    };

    marks.mark("baseline");
    progress
        .wait("baseline", scenario.timeline.baseline, cluster)
        .await;
    ctx.baseline_leader = cluster.leader().await;
    phase(&mut checkers, Phase::Baseline, &ctx).await;

    let steps = scenario.schedule();
    let mut run = Schedule {
        scenario,
        cluster,
        recorder,
        progress: &progress,
        active: BTreeMap::new(),
    };
    let ran = run
        .run(&steps, &mut checkers, &mut ctx, &mut marks, &mut workload)
        .await;
    // A final heal always comes before the settle and the final reads: every step
    // healed its own fault, so this only acts after an error (and then says so).
    let healed = run.heal_all().await;
    ran?;
    healed?;
    progress.line("healed");
    progress
        .wait("settle", scenario.timeline.settle, cluster)
        .await;
    // Marked before the workload stops: its final reads belong to the final phase.
    marks.mark("final");
    let summary = match workload.as_mut() {
        Some(w) => Some(w.stop().await),
        None => None,
    };
    progress.line("final checks");
    phase(&mut checkers, Phase::Final, &ctx).await;
    marks.mark("end");

    let verdicts: Vec<_> = checkers.checkers.iter_mut().map(|c| c.verdict()).collect();
    let status = Status::combine(verdicts.iter().map(|v| v.status));
    let report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        file: scenario.origin.clone(),
        system: cluster.system().to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        status,
        cluster: cluster.info(),
        fault: ctx.fault.clone(),
        phases: marks.marks,
        verdicts,
        workload: summary,
        history: Default::default(),
    };
    Ok((report, pending))
}

/// Every `[[action]]` must name an action the cluster offers, checked before anything
/// runs.
fn check_actions(scenario: &Scenario, cluster: &dyn Cluster) -> Result<(), ScenarioError> {
    for (i, a) in scenario.actions.iter().enumerate() {
        if !cluster.actions().contains(&a.name.as_str()) {
            let known = cluster.actions();
            return Err(ScenarioError::Field {
                origin: scenario.origin.clone(),
                field: format!("action[{}].name", i + 1),
                value: a.name.clone(),
                reason: format!(
                    "{} clusters offer {}",
                    cluster.system(),
                    if known.is_empty() {
                        "no actions".to_string()
                    } else {
                        format!("the actions {}", known.join(", "))
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Carries out `[[action]]` `action` and records it as a nemesis operation named after
/// it, with what the cluster answered (or its error).
async fn act(
    cluster: &dyn Cluster,
    recorder: &Recorder,
    action: &ActionSpec,
) -> Result<serde_json::Value, ScenarioError> {
    let invoked = recorder.now();
    let result = cluster.act(&action.name, recorder).await;
    let time = recorder.now();
    let mut op = NemesisOp::new(
        invoked,
        time,
        &action.name,
        result.as_ref().cloned().unwrap_or(serde_json::Value::Null),
    );
    op.error = result.as_ref().err().map(|e| e.to_string());
    recorder.record(Entry::Nemesis(op));
    result
}

/// Runs a schedule of faults: applies each step at its time after the baseline and
/// heals it `hold` later, records both in the history, and calls the phases around
/// each (FaultApplied after an apply; HoldEnd before and Healed after a heal).
struct Schedule<'a> {
    scenario: &'a Scenario,
    cluster: &'a dyn Cluster,
    recorder: &'a Recorder,
    progress: &'a Progress,
    /// Step index -> the proxy's id of its fault, while it is in place.
    active: BTreeMap<usize, u64>,
}

/// One instant of a schedule: a step's fault applied or healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    // Heals sort before applies at the same instant: a step that starts as another
    // ends follows it rather than overlapping it.
    Heal(usize),
    Apply(usize),
    // A cluster action at the instant a fault applies acts under that fault.
    Action(usize),
}

/// The events of `steps` and `actions` in time order.
fn events(steps: &[Step], actions: &[ActionSpec]) -> Vec<(Duration, Event)> {
    let mut events: Vec<(Duration, Event)> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| [(s.at, Event::Apply(i)), (s.end(), Event::Heal(i))])
        .collect();
    events.extend(
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| (a.at, Event::Action(i))),
    );
    events.sort();
    events
}

impl Schedule<'_> {
    async fn run(
        &mut self,
        steps: &[Step],
        checkers: &mut Participants,
        ctx: &mut ScenarioContext,
        marks: &mut Marks<'_>,
        workload: &mut Option<Box<dyn Workload>>,
    ) -> Result<(), ScenarioError> {
        let begin = Instant::now();
        for (at, event) in events(steps, &self.scenario.actions) {
            let now = begin.elapsed();
            if at > now {
                let what = if self.active.is_empty() {
                    "wait"
                } else {
                    "hold"
                };
                self.progress.wait(what, at - now, self.cluster).await;
            }
            match event {
                Event::Apply(i) => {
                    let step = &steps[i];
                    let name = if steps.len() == 1 {
                        "fault".to_string()
                    } else {
                        format!("step[{}]", i + 1)
                    };
                    let fault = resolve_fault(
                        self.scenario,
                        &step.fault,
                        &name,
                        self.cluster,
                        ctx.baseline_leader.clone(),
                    )
                    .await?;
                    self.progress.line(format!(
                        "apply {} ({name}, held {:?}): {} rule(s){}",
                        fault.label,
                        step.hold,
                        fault.rules.len(),
                        if fault.bindings.is_empty() {
                            String::new()
                        } else {
                            format!(", bindings {:?}", fault.bindings)
                        },
                    ));
                    let fault = start_fault(self.cluster, self.recorder, fault).await?;
                    self.progress.line(format!(
                        "applied fault {}: majority side {:?}, minority side {:?}",
                        fault.id, fault.majority, fault.minority
                    ));
                    self.active.insert(i, fault.id);
                    ctx.hold = step.hold;
                    let applied_ms = marks.mark("fault");
                    ctx.fault = Some(fault);
                    if let Some(w) = workload.as_mut() {
                        w.mark_phase("fault", applied_ms);
                    }
                    phase(checkers, Phase::FaultApplied, ctx).await;
                }
                Event::Action(i) => {
                    let action = &self.scenario.actions[i];
                    self.progress.line(format!("action {}", action.name));
                    let done = act(self.cluster, self.recorder, action).await?;
                    self.progress.line(format!("{}: {done}", action.name));
                }
                Event::Heal(i) => {
                    let Some(id) = self.active.remove(&i) else {
                        continue;
                    };
                    phase(checkers, Phase::HoldEnd, ctx).await;
                    // Taken before the heal: an acknowledgement after this instant may
                    // owe to the heal, so it never counts as one received during the fault.
                    let heal_ms = self.recorder.now() / 1_000_000;
                    let healed = stop_fault(self.cluster, self.recorder, id).await;
                    marks.mark("heal");
                    healed?;
                    if let Some(w) = workload.as_mut() {
                        w.mark_phase("settle", heal_ms);
                    }
                    phase(checkers, Phase::Healed, ctx).await;
                }
            }
        }
        Ok(())
    }

    /// Heals every fault still in place (after an error), recorded as one nemesis
    /// `stop` without an id, which closes every open window.
    async fn heal_all(&mut self) -> Result<(), ScenarioError> {
        if self.active.is_empty() {
            return Ok(());
        }
        let invoked = self.recorder.now();
        let healed = self.cluster.nemesis().heal().await;
        let ids: Vec<u64> = std::mem::take(&mut self.active).into_values().collect();
        let mut op = NemesisOp::new(
            invoked,
            self.recorder.now(),
            "stop",
            serde_json::json!({ "all": true, "ids": ids }),
        );
        op.error = healed.as_ref().err().map(|e| e.to_string());
        self.recorder.record(Entry::Nemesis(op));
        healed
    }
}

/// Everything called at each phase: live checkers and the drivers of history checks.
struct Participants {
    checkers: Vec<Box<dyn Checker>>,
    drivers: Vec<Box<dyn Driver>>,
}

async fn phase(all: &mut Participants, phase: Phase, ctx: &ScenarioContext) {
    let checkers = join_all(all.checkers.iter_mut().map(|c| c.on_phase(phase, ctx)));
    let drivers = join_all(all.drivers.iter_mut().map(|d| d.on_phase(phase, ctx)));
    tokio::join!(checkers, drivers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_join_the_schedule_after_applies_and_heals_at_the_same_instant() {
        let step = Step {
            at: Duration::from_secs(0),
            hold: Duration::from_secs(4),
            fault: Default::default(),
        };
        let action = |secs| ActionSpec {
            at: Duration::from_secs(secs),
            name: "promote".into(),
        };
        let e = events(&[step], &[action(4), action(0), action(2)]);
        let kinds: Vec<Event> = e.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds,
            [
                Event::Apply(0),
                Event::Action(1),
                Event::Action(2),
                Event::Heal(0),
                Event::Action(0)
            ]
        );
    }

    #[test]
    fn roles_follow_node_order() {
        let nodes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = roles(&nodes, Some("b"));
        assert_eq!(r["leader"], "b");
        assert_eq!(r["follower"], "a");
        assert_eq!(r["follower2"], "c");
        assert!(roles(&nodes, None).is_empty());
    }
}
