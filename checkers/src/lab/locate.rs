//! Finding the control API of a running lab, so that `rift isolate etcd2` right after
//! `rift lab up etcd` reaches the lab's proxy without the user exporting `RIFT_API`.
//!
//! A lab records its proxy's API URL in `lab.json` (see [`LabState`]). Commands look in
//! `RIFT_LAB_DIR` when it is set, else in `.rift/lab` of the current directory or of the
//! nearest ancestor that has one (the way git finds `.git`), so a user who `cd`s into a
//! sub-directory of the project still reaches the lab.

use std::path::{Path, PathBuf};

use super::{DEFAULT_STATE_DIR, LabState, record_alive};

/// The name `rift lab up` records its background proxy under.
pub const PROXY_PROCESS: &str = "rift-proxy";

/// What was found when looking for a lab's API.
#[derive(Debug, Clone, PartialEq)]
pub enum LabApi {
    /// A lab whose proxy is running, and the API it listens on.
    Running { url: String, dir: PathBuf },
    /// A lab state was found but its proxy is not running (crashed or killed), or it
    /// records no API: the lab cannot be used.
    Stopped { dir: PathBuf, reason: String },
    /// No lab state was found in any of the places looked at.
    None { looked_in: Vec<PathBuf> },
}

/// Looks for a running lab: in `lab_dir` only when given (from `RIFT_LAB_DIR`), else in
/// `cwd/.rift/lab` and the same under each ancestor of `cwd`.
pub fn find_lab_api(lab_dir: Option<&Path>, cwd: &Path) -> LabApi {
    let candidates: Vec<PathBuf> = match lab_dir {
        Some(dir) => vec![cwd.join(dir)],
        None => cwd.ancestors().map(|a| a.join(DEFAULT_STATE_DIR)).collect(),
    };
    for dir in &candidates {
        let state = match LabState::load(dir) {
            Ok(Some(state)) => state,
            Ok(None) => continue,
            Err(e) => {
                return LabApi::Stopped {
                    dir: dir.clone(),
                    reason: e.to_string(),
                };
            }
        };
        return lab_api_of(&state, dir);
    }
    LabApi::None {
        looked_in: candidates,
    }
}

fn lab_api_of(state: &LabState, dir: &Path) -> LabApi {
    let Some(url) = state.api_url.clone() else {
        return LabApi::Stopped {
            dir: dir.to_path_buf(),
            reason: "the lab records no control API (it is still starting or failed to)".into(),
        };
    };
    match state.processes.iter().find(|p| p.name == PROXY_PROCESS) {
        Some(proxy) if record_alive(proxy) => LabApi::Running {
            url,
            dir: dir.to_path_buf(),
        },
        Some(proxy) => LabApi::Stopped {
            dir: dir.to_path_buf(),
            reason: format!(
                "its proxy (pid {}) is not running; `rift lab down` cleans up",
                proxy.pid
            ),
        },
        None => LabApi::Stopped {
            dir: dir.to_path_buf(),
            reason: "the lab records no proxy process".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::ProcessRecord;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rift-locate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn state(api: Option<&str>, proxy_pid: u32) -> LabState {
        LabState {
            system: "etcd".into(),
            started_at: super::super::now_rfc3339(),
            api_url: api.map(str::to_string),
            members: vec![],
            processes: vec![ProcessRecord {
                name: PROXY_PROCESS.into(),
                pid: proxy_pid,
                exe: std::fs::read_link("/proc/self/exe").unwrap(),
                log: PathBuf::from("rift-proxy.log"),
            }],
            settings: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_running_lab_is_found_from_a_sub_directory() {
        let root = temp_dir("running");
        let lab = root.join(DEFAULT_STATE_DIR);
        std::fs::create_dir_all(&lab).unwrap();
        // This test process stands in for the proxy: alive, with the recorded exe.
        state(Some("http://127.0.0.1:7345"), std::process::id())
            .save(&lab)
            .unwrap();
        let sub = root.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(
            find_lab_api(None, &sub),
            LabApi::Running {
                url: "http://127.0.0.1:7345".into(),
                dir: lab.clone()
            }
        );
        // RIFT_LAB_DIR names the directory itself, relative to the current one.
        assert!(matches!(
            find_lab_api(Some(Path::new(DEFAULT_STATE_DIR)), &root),
            LabApi::Running { .. }
        ));
        // ...and only that directory is looked at.
        assert!(matches!(
            find_lab_api(Some(Path::new("elsewhere")), &root),
            LabApi::None { .. }
        ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_lab_whose_proxy_died_is_not_used() {
        let root = temp_dir("dead");
        let lab = root.join(DEFAULT_STATE_DIR);
        std::fs::create_dir_all(&lab).unwrap();
        // A PID above the kernel's maximum (4194304) is never alive.
        state(Some("http://127.0.0.1:7345"), 4_194_305)
            .save(&lab)
            .unwrap();
        match find_lab_api(None, &root) {
            LabApi::Stopped { dir, reason } => {
                assert_eq!(dir, lab);
                assert!(reason.contains("pid 4194305"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        state(None, std::process::id()).save(&lab).unwrap();
        assert!(matches!(find_lab_api(None, &root), LabApi::Stopped { .. }));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn no_lab_anywhere_lists_where_it_looked() {
        let root = temp_dir("none");
        match find_lab_api(None, &root) {
            LabApi::None { looked_in } => {
                assert_eq!(looked_in[0], root.join(DEFAULT_STATE_DIR));
                assert!(looked_in.len() > 1, "ancestors are looked at too");
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
