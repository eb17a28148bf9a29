//! The control plane of a `rift agent`: it holds no faults of its own but the faults
//! its controller distributes, as a versioned change in two steps. [`Control::prepare_replica`]
//! checks and compiles a version while the old one stays in force; [`Control::commit_replica`]
//! then only swaps the compiled matrix in, so switching costs one channel send.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::{ActiveFault, Control, ControlError};
use crate::matrix::LinkMatrix;
use crate::metrics;

/// A version compiled and ready to switch to.
#[derive(Debug)]
pub struct PreparedVersion {
    pub version: u64,
    faults: Vec<ActiveFault>,
    matrix: LinkMatrix,
}

impl Control {
    /// The version in force and its faults, read together.
    pub fn snapshot(&self) -> (u64, Vec<ActiveFault>) {
        let state = super::sync::lock(&self.inner.state);
        (
            state.version,
            state.active.iter().map(|(f, _)| f.clone()).collect(),
        )
    }

    /// Checks every rule of `faults` against this proxy's identities and compiles them
    /// as `version`. Nothing changes until [`Control::commit_replica`].
    pub fn prepare_replica(
        &self,
        version: u64,
        faults: Vec<ActiveFault>,
    ) -> Result<PreparedVersion, ControlError> {
        for fault in &faults {
            LinkMatrix::validate(&self.inner.ids, &fault.rules).map_err(|e| {
                ControlError::Invalid(format!("fault {} ({}): {e}", fault.id, fault.label))
            })?;
        }
        let matrix = self.compile(version, faults.iter().map(|f| f.rules.as_slice()))?;
        Ok(PreparedVersion {
            version,
            faults,
            matrix,
        })
    }

    /// Puts a prepared version in force, replacing every fault (a replica has no expiry
    /// timers: its controller expires faults and distributes the result). Returns the
    /// wall-clock time the new matrix was published to the relays.
    pub fn commit_replica(&self, prepared: PreparedVersion) -> SystemTime {
        let mut state = super::sync::lock(&self.inner.state);
        for (_, expiry) in state.active.drain(..) {
            if let Some(handle) = expiry {
                handle.abort();
            }
        }
        let previous = state.version;
        state.active = prepared.faults.into_iter().map(|f| (f, None)).collect();
        state.version = prepared.version;
        self.inner.matrix.send_replace(Arc::new(prepared.matrix));
        let switched_at = SystemTime::now();
        let ids: Vec<u64> = state.active.iter().map(|(f, _)| f.id).collect();
        let matrix = self.matrix();
        drop(state);
        metrics::publish_link_states(&self.inner.ids, &matrix);
        self.inner.events.record(
            "switch",
            json!({"from_version": previous, "version": prepared.version, "faults": ids}),
        );
        switched_at
    }
}
