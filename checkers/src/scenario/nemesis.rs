//! The nemesis: applies and heals faults through rift, and nothing else. It talks to
//! an in-process proxy (`Local`) or to a running `rift proxy` over its HTTP API
//! (`Remote`, for `--attach`).

use rift_proxy::client::ApiClient;
use rift_proxy::control::{ActiveFault, ConnectionGroup, Control};
use rift_proxy::fault::FaultRequest;
use rift_proxy::profile::{Bindings, ProfileLibrary};
use rift_proxy::topology::Topology;

use super::ScenarioError;

#[derive(Clone)]
pub enum Nemesis {
    Local(Control),
    Remote(ApiClient),
}

impl Nemesis {
    pub async fn topology(&self) -> Result<Topology, ScenarioError> {
        match self {
            Nemesis::Local(c) => Ok(c.topology().clone()),
            Nemesis::Remote(c) => c
                .topology()
                .await
                .map_err(|e| ScenarioError::Nemesis(format!("GET {}/topology: {e}", c.url()))),
        }
    }

    /// The profiles the proxy knows (built-in plus its profile directory).
    pub fn local_profiles(&self) -> ProfileLibrary {
        match self {
            Nemesis::Local(c) => c.profiles().clone(),
            Nemesis::Remote(_) => ProfileLibrary::builtin(),
        }
    }

    /// Applies `request`; the answer is the fault as the proxy resolved and applied it
    /// (its id and rules), which is what the history records.
    pub async fn apply(&self, request: FaultRequest) -> Result<ActiveFault, ScenarioError> {
        match self {
            Nemesis::Local(c) => c
                .apply(request)
                .map_err(|e| ScenarioError::Nemesis(e.to_string())),
            Nemesis::Remote(c) => c
                .apply(&request)
                .await
                .map_err(|e| ScenarioError::Nemesis(with_causes(&e))),
        }
    }

    /// Heals one fault; the answer is the fault the proxy removed.
    pub async fn heal_fault(&self, id: u64) -> Result<ActiveFault, ScenarioError> {
        match self {
            Nemesis::Local(c) => c
                .heal_fault(id)
                .map_err(|e| ScenarioError::Nemesis(e.to_string())),
            Nemesis::Remote(c) => c
                .heal_fault(id)
                .await
                .map_err(|e| ScenarioError::Nemesis(with_causes(&e))),
        }
    }

    /// The bytes rift has delivered on each (src, dst, endpoint) of its open connections.
    pub async fn traffic(&self) -> Result<Vec<ConnectionGroup>, ScenarioError> {
        match self {
            Nemesis::Local(c) => Ok(c.traffic()),
            Nemesis::Remote(c) => c
                .status()
                .await
                .map(|s| s.connections)
                .map_err(|e| ScenarioError::Nemesis(with_causes(&e))),
        }
    }

    pub async fn heal(&self) -> Result<(), ScenarioError> {
        match self {
            Nemesis::Local(c) => {
                c.heal();
                Ok(())
            }
            Nemesis::Remote(c) => c
                .heal()
                .await
                .map(|_| ())
                .map_err(|e| ScenarioError::Nemesis(with_causes(&e))),
        }
    }
}

/// An API client error with the causes below it ("connection refused"), which its own
/// message leaves to the error chain.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Resolves the scenario's fault into rules for `topology`: a profile with bindings
/// (roles already replaced by node names), or inline rules whose `from`/`to` may be
/// roles.
pub fn resolve_rules(
    library: &ProfileLibrary,
    topology: &Topology,
    profile: Option<&str>,
    bindings: &Bindings,
    inline: &[rift_proxy::fault::LinkRule],
    roles: &Bindings,
) -> Result<Vec<rift_proxy::fault::LinkRule>, ScenarioError> {
    match profile {
        Some(name) => {
            let p = library
                .get(name)
                .map_err(|e| ScenarioError::Nemesis(e.to_string()))?;
            let r = p
                .resolve(topology, bindings)
                .map_err(|e| ScenarioError::Nemesis(e.to_string()))?;
            Ok(r.rules)
        }
        None => {
            let names = topology.node_names();
            let mut rules = inline.to_vec();
            for r in &mut rules {
                for end in [&mut r.from, &mut r.to] {
                    if let Some(n) = roles.get(end.as_str()) {
                        *end = n.clone();
                    }
                    if !names.contains(end) && end != rift_proxy::topology::CLIENT {
                        return Err(ScenarioError::Nemesis(format!(
                            "fault.rules: {end:?} is neither a node ({}) nor a known role",
                            names.join(", ")
                        )));
                    }
                }
            }
            Ok(rules)
        }
    }
}
