//! The state file: the active faults of a `rift proxy`, rewritten after every change
//! so that a proxy restarted after a crash, a `kill -9` or an upgrade puts the same
//! faults back in force (expiries kept) instead of silently healing a partition in the
//! middle of an experiment. Healing everything removes the file.
//!
//! The file is replaced atomically (written beside it, then renamed), so a crash at any
//! moment leaves either the old or the new list, never half of one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActiveFault, Control, ControlError, State};
use crate::matrix::LinkMatrix;

/// Format of the state file; a file of another format is refused, not guessed at.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is not a rift state file ({reason}); move it away to start without its faults"
    )]
    Invalid { path: String, reason: String },
    #[error(
        "the state file {path} holds fault {id} ({label}), which does not fit this topology: {reason}; heal it with the topology it was applied to, or move the file away to start without its faults"
    )]
    Fault {
        path: String,
        id: u64,
        label: String,
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    /// What the proxy was started with, for whoever opens the file.
    #[serde(default)]
    command: Vec<String>,
    faults: Vec<ActiveFault>,
}

/// Where a proxy keeps its state, and the command line recorded in the file.
#[derive(Debug, Clone)]
pub struct StatePath {
    pub path: PathBuf,
    pub command: Vec<String>,
}

impl StatePath {
    /// `.rift/proxy/<hash of the command line>.json` under `dir`: a proxy restarted with
    /// the same command line in the same directory finds its faults without being told
    /// where they are, and two proxies started differently never share a file. FNV-1a
    /// rather than std's hasher, whose output may change between Rust releases (the
    /// name must survive an upgrade of rift).
    pub fn for_command(dir: &Path, command: &[String]) -> StatePath {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for arg in command {
            for byte in arg.bytes().chain([0]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        StatePath {
            path: dir.join(".rift/proxy").join(format!("{hash:016x}.json")),
            command: command.to_vec(),
        }
    }
}

/// What [`Control::restore`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Restored {
    /// Faults back in force.
    pub active: Vec<u64>,
    /// Faults whose expiry passed while the proxy was down.
    pub expired: Vec<u64>,
}

pub(super) fn save(state_path: &StatePath, faults: &[&ActiveFault]) -> std::io::Result<()> {
    let path = &state_path.path;
    if faults.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&json!({
        "format": FORMAT,
        "command": state_path.command,
        "faults": faults,
    }))
    .map_err(std::io::Error::other)?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

fn load(path: &Path) -> Result<Vec<ActiveFault>, PersistError> {
    let shown = || path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PersistError::Read {
                path: shown(),
                source,
            });
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| PersistError::Invalid {
        path: shown(),
        reason: e.to_string(),
    })?;
    if file.format != FORMAT {
        return Err(PersistError::Invalid {
            path: shown(),
            reason: format!("format {} (this rift reads {FORMAT})", file.format),
        });
    }
    Ok(file.faults)
}

impl Control {
    /// Puts back the faults of `state_path` (those whose expiry has not passed, with
    /// their ids, labels and expiry times) and keeps the file up to date from then on.
    /// Call it before the proxy accepts connections. Nothing is changed if any fault in
    /// the file does not fit the topology.
    pub fn restore(&self, state_path: StatePath) -> Result<Restored, PersistError> {
        let shown = state_path.path.display().to_string();
        let faults = load(&state_path.path)?;
        let now = SystemTime::now();
        let mut keep = Vec::new();
        let mut restored = Restored::default();
        for fault in faults {
            let bad = |reason: String| PersistError::Fault {
                path: shown.clone(),
                id: fault.id,
                label: fault.label.clone(),
                reason,
            };
            LinkMatrix::validate(&self.inner.ids, &fault.rules).map_err(|e| bad(e.to_string()))?;
            let remaining = match &fault.expires_at {
                None => None,
                Some(at) => {
                    let at = humantime::parse_rfc3339(at)
                        .map_err(|e| bad(format!("expires_at: {at:?}: {e}")))?;
                    match at.duration_since(now) {
                        Ok(left) if !left.is_zero() => Some(left),
                        _ => {
                            restored.expired.push(fault.id);
                            continue;
                        }
                    }
                }
            };
            keep.push((fault, remaining));
        }
        let mut state = super::sync::lock(&self.inner.state);
        let matrix = self
            .compile(
                state.version + 1,
                keep.iter().map(|(f, _)| f.rules.as_slice()),
            )
            .map_err(|e: ControlError| PersistError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        for (fault, remaining) in keep {
            state.next_id = state.next_id.max(fault.id.saturating_add(1));
            let expiry = remaining.map(|left| self.expire_after(fault.id, left));
            restored.active.push(fault.id);
            state.active.push((fault, expiry));
        }
        // From here on every change is written to the file.
        let _ = self.inner.state_path.set(state_path);
        self.install(&mut state, matrix);
        drop(state);
        if !restored.active.is_empty() || !restored.expired.is_empty() {
            self.inner.events.record(
                "restore",
                json!({"path": shown, "active": restored.active, "expired_while_stopped": restored.expired}),
            );
            tracing::info!(path = %shown, active = ?restored.active, expired = ?restored.expired, "faults restored from the state file");
        }
        Ok(restored)
    }

    /// Writes the active faults to the state file, if this control plane has one.
    /// Called with the state lock held, so files are written in the order of changes.
    pub(super) fn persist(&self, state: &State) {
        let Some(state_path) = self.inner.state_path.get() else {
            return;
        };
        let faults: Vec<&ActiveFault> = state.active.iter().map(|(f, _)| f).collect();
        if let Err(error) = save(state_path, &faults) {
            // The faults stay in force; only a restart would lose them. Say so loudly.
            tracing::error!(path = %state_path.path.display(), %error, "cannot write the state file; a restart would not restore the faults in force");
        }
    }

    /// A timer that removes fault `id` after `delay`.
    pub(super) fn expire_after(&self, id: u64, delay: Duration) -> tokio::task::AbortHandle {
        let control = self.clone();
        self.inner
            .runtime
            .spawn(async move {
                tokio::time::sleep(delay).await;
                control.expire(id);
            })
            .abort_handle()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::control::{ConnectionTable, CutOptions};
    use crate::events::EventLog;
    use crate::fault::Fault;
    use crate::identity::SourceRegistry;
    use crate::profile::ProfileLibrary;
    use crate::topology::Topology;

    fn control() -> Control {
        let topology = Topology::parse(crate::harness::TOPOLOGY, "test").unwrap();
        Control::new(
            Arc::new(topology),
            EventLog::new(None).unwrap(),
            Arc::new(SourceRegistry::default()),
            ProfileLibrary::builtin(),
            Arc::new(ConnectionTable::default()),
        )
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rift-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn cut(duration: Option<Duration>) -> CutOptions {
        CutOptions {
            duration,
            ..CutOptions::default()
        }
    }

    #[test]
    fn the_file_name_depends_on_the_command_line_only_and_is_stable() {
        let d = Path::new("/x");
        let path = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            StatePath::for_command(d, &args).path
        };
        // FNV-1a's offset basis: the name cannot change with the Rust release.
        assert_eq!(path(&[]), Path::new("/x/.rift/proxy/cbf29ce484222325.json"));
        assert_eq!(
            path(&["proxy", "-t", "a.toml"]),
            path(&["proxy", "-t", "a.toml"])
        );
        assert_ne!(
            path(&["proxy", "-t", "a.toml"]),
            path(&["proxy", "-t", "b.toml"])
        );
        // Argument boundaries count.
        assert_ne!(path(&["ab", "c"]), path(&["a", "bc"]));
    }

    #[tokio::test]
    async fn faults_come_back_with_their_ids_and_expiries_and_heal_clears_the_file() {
        let d = dir("roundtrip");
        let state = StatePath::for_command(&d, &["proxy".into()]);
        let first = control();
        assert_eq!(first.restore(state.clone()).unwrap(), Restored::default());
        assert!(!state.path.exists(), "no faults, no file");
        let held = first
            .isolate("n1", cut(Some(Duration::from_secs(3600))))
            .unwrap();
        let reset = first
            .partition(
                vec![vec!["n1".into(), "n2".into()], vec!["n3".into()]],
                CutOptions {
                    fault: Some(Fault::Reset),
                    ..cut(None)
                },
            )
            .unwrap();
        assert!(state.path.exists());

        // A second control plane stands for the restarted process.
        let second = control();
        let restored = second.restore(state.clone()).unwrap();
        assert_eq!(restored.active, vec![held.id, reset.id]);
        let faults = second.status().faults;
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].expires_at, held.expires_at);
        assert_eq!(faults[0].applied_at, held.applied_at);
        assert_eq!(faults[1].expires_at, None);
        let n1 = second.identities().index("n1").unwrap();
        let n2 = second.identities().index("n2").unwrap();
        let n3 = second.identities().index("n3").unwrap();
        assert!(second.matrix().fault(n1, n2, 0).is_some());
        assert!(matches!(
            second.matrix().fault(n3, n2, 0),
            Some(Fault::Reset)
        ));
        // New faults do not reuse a restored id.
        let next = second.isolate("n3", cut(None)).unwrap();
        assert!(next.id > reset.id);
        assert_eq!(second.heal(), 3);
        assert!(!state.path.exists(), "healing everything removes the file");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn an_expiry_passed_while_stopped_stays_healed_and_one_to_come_still_fires() {
        let d = dir("expiry");
        let state = StatePath::for_command(&d, &["proxy".into()]);
        let first = control();
        first.restore(state.clone()).unwrap();
        // Long expiries (different, so each can be found in the file): the first control
        // plane's timers must not fire during the test.
        let soon = first
            .isolate("n1", cut(Some(Duration::from_secs(3600))))
            .unwrap();
        let later = first
            .isolate("n2", cut(Some(Duration::from_secs(7200))))
            .unwrap();
        // Make the first one expire "while the proxy was down": rewrite its expiry.
        let past = crate::control::limits::rfc3339(SystemTime::now() - Duration::from_secs(5));
        let text = std::fs::read_to_string(&state.path).unwrap();
        let text = text.replace(
            soon.expires_at.as_deref().unwrap(),
            past.as_deref().unwrap(),
        );
        std::fs::write(&state.path, text).unwrap();
        // And the other due shortly after the restart.
        let due = crate::control::limits::rfc3339(SystemTime::now() + Duration::from_millis(300));
        let text = std::fs::read_to_string(&state.path).unwrap();
        let text = text.replace(
            later.expires_at.as_deref().unwrap(),
            due.as_deref().unwrap(),
        );
        std::fs::write(&state.path, text).unwrap();

        let second = control();
        let restored = second.restore(state.clone()).unwrap();
        assert_eq!(restored.expired, vec![soon.id]);
        assert_eq!(restored.active, vec![later.id]);
        let event = second.events().since(0).into_iter().last().unwrap();
        assert_eq!(event["event"], "restore");
        assert_eq!(event["expired_while_stopped"], json!([soon.id]));
        // The restored fault expires on its own timer, and the file goes with it.
        let mut waited = 0;
        while !second.status().faults.is_empty() {
            assert!(waited < 200, "the restored fault never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        assert!(!state.path.exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn a_file_that_does_not_fit_is_refused_and_changes_nothing() {
        let d = dir("refused");
        let state = StatePath::for_command(&d, &["proxy".into()]);
        std::fs::create_dir_all(state.path.parent().unwrap()).unwrap();
        std::fs::write(&state.path, "{not json").unwrap();
        let error = control().restore(state.clone()).unwrap_err().to_string();
        assert!(error.contains(&state.path.display().to_string()), "{error}");
        assert!(error.contains("not a rift state file"), "{error}");

        let first = control();
        first.restore(state.clone()).unwrap_err();
        std::fs::remove_file(&state.path).unwrap();
        first.restore(state.clone()).unwrap();
        first.isolate("n1", cut(None)).unwrap();
        let text = std::fs::read_to_string(&state.path).unwrap();
        std::fs::write(&state.path, text.replace("\"n1\"", "\"gone\"")).unwrap();
        let second = control();
        let error = second.restore(state.clone()).unwrap_err().to_string();
        assert!(
            error.contains("holds fault 1") && error.contains("gone"),
            "{error}"
        );
        assert!(second.status().faults.is_empty());
        // The refused file is left for the user, untouched.
        assert!(
            std::fs::read_to_string(&state.path)
                .unwrap()
                .contains("gone")
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
