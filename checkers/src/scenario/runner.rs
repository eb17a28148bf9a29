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
use rift_proxy::control::ActiveFault;
use rift_proxy::fault::FaultRequest;
use tokio::sync::watch;

use super::check::{CheckerImpl, Driver, HistoryCheck, run_history_checks};
use super::nemesis::resolve_rules;
use super::progress::Progress;
use super::sides::quorum_sides;
use super::spec::Scenario;
use super::{AppliedFault, Checker, Cluster, Phase, ScenarioContext, ScenarioError, Status};
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
    cluster.wait_healthy(HEALTHY_TIMEOUT).await?;
    let mut workload = match &scenario.workload {
        Some(w) => Some(cluster.workload(w, recorder)?),
        None => None,
    };
    let mut checkers: Vec<Box<dyn Checker>> = Vec::new();
    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    let mut pending: Pending = Vec::new();
    for (at, spec) in scenario.checkers.iter().enumerate() {
        match cluster.checker(spec, &scenario.origin)? {
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

    let fault = resolve_fault(scenario, cluster, ctx.baseline_leader.clone()).await?;
    progress.line(format!(
        "apply {}: {} rule(s){}",
        fault.label,
        fault.rules.len(),
        if fault.bindings.is_empty() {
            String::new()
        } else {
            format!(", bindings {:?}", fault.bindings)
        },
    ));
    let fault = start_fault(cluster, recorder, fault).await?;
    progress.line(format!(
        "applied fault {}: majority side {:?}, minority side {:?}",
        fault.id, fault.majority, fault.minority
    ));
    let applied_ms = marks.mark("fault");
    let fault_id = fault.id;
    ctx.fault = Some(fault);
    if let Some(w) = workload.as_mut() {
        w.mark_phase("fault", applied_ms);
    }

    // From here on the fault is in place: heal whatever happens.
    let held = async {
        phase(&mut checkers, Phase::FaultApplied, &ctx).await;
        progress.wait("hold", scenario.timeline.hold, cluster).await;
        phase(&mut checkers, Phase::HoldEnd, &ctx).await;
    };
    held.await;
    // Taken before the heal: an acknowledgement after this instant may owe to the heal,
    // so it is never counted as one received during the fault.
    let heal_ms = recorder.now() / 1_000_000;
    let healed = stop_fault(cluster, recorder, fault_id).await;
    marks.mark("heal");
    healed?;
    progress.line("healed");
    if let Some(w) = workload.as_mut() {
        w.mark_phase("settle", heal_ms);
    }
    phase(&mut checkers, Phase::Healed, &ctx).await;
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

/// Applies `fault` and records the nemesis `start` with the fault as the proxy
/// returned it: its id and the directed rules it resolved and applied. The sides of
/// the cut are computed from those rules, not from the ones that were asked for.
async fn start_fault(
    cluster: &dyn Cluster,
    recorder: &Recorder,
    mut fault: AppliedFault,
) -> Result<AppliedFault, ScenarioError> {
    let invoked = recorder.now();
    let applied = cluster
        .nemesis()
        .apply(FaultRequest {
            label: fault.label.clone(),
            rules: fault.rules.clone(),
            duration: None,
        })
        .await;
    let time = recorder.now();
    let active = match applied {
        Ok(active) => active,
        Err(e) => {
            let mut op = NemesisOp::new(
                invoked,
                time,
                "start",
                serde_json::json!({"label": fault.label, "bindings": fault.bindings}),
            );
            op.error = Some(e.to_string());
            recorder.record(Entry::Nemesis(op));
            return Err(e);
        }
    };
    let (majority, minority) = quorum_sides(
        &cluster.nodes(),
        &active.rules,
        cluster.consensus_endpoint(),
    );
    fault.id = active.id;
    fault.rules = active.rules.clone();
    fault.majority = majority;
    fault.minority = minority;
    recorder.record(Entry::Nemesis(NemesisOp::new(
        invoked,
        time,
        "start",
        nemesis_value(&active, &fault),
    )));
    Ok(fault)
}

/// Heals fault `id` and records the nemesis `stop` with the fault the proxy removed.
/// Should the proxy not know the fault any more, every fault is healed instead, so
/// that nothing stays in place, and the stop records the error.
async fn stop_fault(
    cluster: &dyn Cluster,
    recorder: &Recorder,
    id: u64,
) -> Result<(), ScenarioError> {
    let invoked = recorder.now();
    let healed = cluster.nemesis().heal_fault(id).await;
    let (value, error, result) = match healed {
        Ok(active) => (
            serde_json::json!({"id": active.id, "label": active.label, "rules": active.rules}),
            None,
            Ok(()),
        ),
        Err(e) => {
            let all = cluster.nemesis().heal().await;
            let error = format!("heal of fault {id}: {e}; healed every fault instead");
            (serde_json::json!({ "id": id }), Some(error), all)
        }
    };
    let mut op = NemesisOp::new(invoked, recorder.now(), "stop", value);
    op.error = error;
    recorder.record(Entry::Nemesis(op));
    result
}

fn nemesis_value(active: &ActiveFault, fault: &AppliedFault) -> serde_json::Value {
    serde_json::json!({
        "id": active.id,
        "label": active.label,
        "rules": active.rules,
        "bindings": fault.bindings,
        "majority": fault.majority,
        "minority": fault.minority,
    })
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

/// Roles a scenario may bind: `leader`, and `follower`/`follower1`, `follower2`, ...
/// (the non-leaders in node order).
pub fn roles(nodes: &[String], leader: Option<&str>) -> BTreeMap<String, String> {
    let mut roles = BTreeMap::new();
    if let Some(l) = leader {
        roles.insert("leader".to_string(), l.to_string());
        for (i, f) in nodes.iter().filter(|n| *n != l).enumerate() {
            if i == 0 {
                roles.insert("follower".to_string(), f.clone());
            }
            roles.insert(format!("follower{}", i + 1), f.clone());
        }
    }
    roles
}

async fn resolve_fault(
    scenario: &Scenario,
    cluster: &dyn Cluster,
    baseline_leader: Option<String>,
) -> Result<AppliedFault, ScenarioError> {
    // Resolve at apply time: the leader may have changed since baseline.
    let leader = cluster.leader().await.or(baseline_leader);
    let nodes = cluster.nodes();
    let roles = roles(&nodes, leader.as_deref());
    // Roles are bindings too, so a profile whose target is `leader` needs no
    // explicit binding; the scenario's own bindings win.
    let mut bindings = roles.clone();
    for (k, v) in &scenario.fault.bindings {
        let node = if nodes.contains(v) {
            v.clone()
        } else if let Some(n) = roles.get(v) {
            n.clone()
        } else {
            return Err(ScenarioError::Field {
                origin: scenario.origin.clone(),
                field: format!("fault.bindings.{k}"),
                value: v.clone(),
                reason: format!(
                    "neither a node ({}) nor a role the cluster has now ({})",
                    nodes.join(", "),
                    roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        bindings.insert(k.clone(), node);
    }
    let topology = cluster.nemesis().topology().await?;
    let library = cluster.nemesis().local_profiles();
    let rules = resolve_rules(
        &library,
        &topology,
        scenario.fault.profile.as_deref(),
        &bindings,
        &scenario.fault.rules,
        &roles,
    )?;
    Ok(AppliedFault {
        id: 0,
        label: scenario.fault_label(),
        bindings,
        rules,
        majority: Vec::new(),
        minority: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
