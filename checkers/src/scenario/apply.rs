//! Applying and healing one fault through the nemesis, each recorded in the history
//! as the proxy answered it, and resolving a step's roles and profile into rules.

use std::collections::BTreeMap;

use rift_history::{Entry, NemesisOp, Recorder};
use rift_proxy::control::ActiveFault;
use rift_proxy::fault::FaultRequest;

use super::nemesis::resolve_rules;
use super::sides::quorum_sides;
use super::spec::{FaultSpec, Scenario};
use super::{AppliedFault, Cluster, ScenarioError};

/// Applies `fault` and records the nemesis `start` with the fault as the proxy
/// returned it: its id and the directed rules it resolved and applied. The sides of
/// the cut are computed from those rules, not from the ones that were asked for.
pub(super) async fn start_fault(
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
pub(super) async fn stop_fault(
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

pub(super) async fn resolve_fault(
    scenario: &Scenario,
    step: &FaultSpec,
    at: &str,
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
    let library = cluster.nemesis().local_profiles();
    // Values a profile takes at apply time (wan's `delay = "20ms"`) are no nodes.
    let takes = |k: &str| {
        step.profile
            .as_deref()
            .and_then(|p| library.get(p).ok())
            .is_some_and(|p| p.takes_parameter(k))
    };
    for (k, v) in &step.bindings {
        let node = if takes(k) || nodes.contains(v) {
            v.clone()
        } else if let Some(n) = roles.get(v) {
            n.clone()
        } else {
            return Err(ScenarioError::Field {
                origin: scenario.origin.clone(),
                field: format!("{at}.bindings.{k}"),
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
    let rules = resolve_rules(
        &library,
        &topology,
        step.profile.as_deref(),
        &bindings,
        &step.rules,
        &roles,
    )?;
    Ok(AppliedFault {
        id: 0,
        label: step.label_or_default(),
        bindings,
        rules,
        majority: Vec::new(),
        minority: Vec::new(),
    })
}
