//! Runs one scenario against a [`Cluster`]: baseline, apply, hold, heal, settle, final
//! checks. The fault is always healed before returning, even when a step fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rift_proxy::fault::FaultRequest;

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
    let started = Instant::now();
    let started_at = crate::lab::now_rfc3339();
    let progress = Progress::new(started, options.quiet);
    let mut marks = Vec::new();
    let mut mark = |phase: &str| {
        marks.push(PhaseMark {
            phase: phase.to_string(),
            at_ms: started.elapsed().as_millis() as u64,
        })
    };

    progress.line(format!(
        "scenario {}: {} nodes of {}, waiting for a healthy cluster",
        scenario.name,
        cluster.nodes().len(),
        cluster.system()
    ));
    cluster.wait_healthy(HEALTHY_TIMEOUT).await?;
    let mut workload = match &scenario.workload {
        Some(w) => Some(cluster.workload(w, started)?),
        None => None,
    };
    let mut checkers: Vec<Box<dyn Checker>> = Vec::new();
    for spec in &scenario.checkers {
        checkers.push(cluster.checker(spec, &scenario.origin)?);
    }
    let mut ctx = ScenarioContext {
        started,
        nodes: cluster.nodes(),
        hold: scenario.timeline.hold,
        settle: scenario.timeline.settle,
        fault: None,
        baseline_leader: None,
    };

    mark("baseline");
    progress
        .wait("baseline", scenario.timeline.baseline, cluster)
        .await;
    ctx.baseline_leader = cluster.leader().await;
    phase(&mut checkers, Phase::Baseline, &ctx).await;

    let fault = resolve_fault(scenario, cluster, ctx.baseline_leader.clone()).await?;
    progress.line(format!(
        "apply {}: {} rule(s){}; majority side {:?}, minority side {:?}",
        fault.label,
        fault.rules.len(),
        if fault.bindings.is_empty() {
            String::new()
        } else {
            format!(", bindings {:?}", fault.bindings)
        },
        fault.majority,
        fault.minority
    ));
    cluster
        .nemesis()
        .apply(FaultRequest {
            label: fault.label.clone(),
            rules: fault.rules.clone(),
            duration: None,
        })
        .await?;
    let applied_ms = started.elapsed().as_millis() as u64;
    mark("fault");
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
    let heal_ms = started.elapsed().as_millis() as u64;
    let healed = cluster.nemesis().heal().await;
    mark("heal");
    healed?;
    progress.line("healed");
    if let Some(w) = workload.as_mut() {
        w.mark_phase("settle", heal_ms);
    }
    phase(&mut checkers, Phase::Healed, &ctx).await;
    progress
        .wait("settle", scenario.timeline.settle, cluster)
        .await;
    let summary = match workload.as_mut() {
        Some(w) => Some(w.stop().await),
        None => None,
    };
    mark("final");
    progress.line("final checks");
    phase(&mut checkers, Phase::Final, &ctx).await;
    mark("end");

    let verdicts: Vec<_> = checkers.iter_mut().map(|c| c.verdict()).collect();
    let status = if verdicts.iter().all(|v| v.status == Status::Pass) {
        Status::Pass
    } else {
        Status::Fail
    };
    Ok(Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        file: scenario.origin.clone(),
        system: cluster.system().to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        status,
        cluster: cluster.info(),
        fault: ctx.fault.clone(),
        phases: marks,
        verdicts,
        workload: summary,
    })
}

async fn phase(checkers: &mut [Box<dyn Checker>], phase: Phase, ctx: &ScenarioContext) {
    join_all(checkers.iter_mut().map(|c| c.on_phase(phase, ctx))).await;
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
    let (majority, minority) = quorum_sides(&nodes, &rules, cluster.consensus_endpoint());
    let shown = bindings;
    Ok(AppliedFault {
        label: scenario.fault_label(),
        bindings: shown,
        rules,
        majority,
        minority,
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
