//! Which control API a command talks to: `--api`, else `RIFT_API`, else the API of the
//! lab running under `.rift/lab` (or `RIFT_LAB_DIR`), else the default address. With
//! `--verbose` the choice and its reason go to stderr, so a command that reached the
//! wrong proxy says why.

use std::path::{Path, PathBuf};

use rift_checkers::lab::locate::{LabApi, find_lab_api};

/// The address `rift proxy` listens on when its topology names none.
pub const DEFAULT_API: &str = "http://127.0.0.1:7070";

/// The API chosen and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTarget {
    pub url: String,
    pub reason: String,
}

/// Chooses the API. `given` is what clap read from `--api` or `RIFT_API`.
pub fn resolve(given: Option<&str>) -> ApiTarget {
    let env = std::env::var("RIFT_API").ok();
    let lab_dir = std::env::var_os("RIFT_LAB_DIR").map(PathBuf::from);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    choose(given, env.as_deref(), lab_dir.as_deref(), &cwd)
}

fn choose(given: Option<&str>, env: Option<&str>, lab_dir: Option<&Path>, cwd: &Path) -> ApiTarget {
    if let Some(url) = given {
        // clap fills the value from the flag or, failing that, from RIFT_API.
        let reason = if env == Some(url) {
            "from RIFT_API"
        } else {
            "from --api"
        };
        return ApiTarget {
            url: url.to_string(),
            reason: reason.into(),
        };
    }
    match find_lab_api(lab_dir, cwd) {
        LabApi::Running { url, dir } => ApiTarget {
            url,
            reason: format!("from the running lab in {}", dir.display()),
        },
        LabApi::Stopped { dir, reason } => ApiTarget {
            url: DEFAULT_API.into(),
            reason: format!(
                "the default: the lab in {} is not usable ({reason})",
                dir.display()
            ),
        },
        LabApi::None { looked_in } => ApiTarget {
            url: DEFAULT_API.into(),
            reason: format!(
                "the default: no --api, no RIFT_API and no lab in {}",
                looked_in
                    .first()
                    .map_or_else(|| "-".into(), |d| d.display().to_string())
            ),
        },
    }
}

impl ApiTarget {
    /// Prints the choice to stderr when asked to (`--verbose`).
    pub fn report(&self, verbose: bool) {
        if verbose {
            eprintln!("rift: control API {} ({})", self.url, self.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_environment_win_over_any_lab() {
        let cwd = Path::new("/nonexistent-rift-dir");
        let t = choose(Some("http://h:1"), None, None, cwd);
        assert_eq!(
            (t.url.as_str(), t.reason.as_str()),
            ("http://h:1", "from --api")
        );
        let t = choose(Some("http://h:2"), Some("http://h:2"), None, cwd);
        assert_eq!(t.reason, "from RIFT_API");
        let t = choose(Some("http://h:1"), Some("http://h:2"), None, cwd);
        assert_eq!(t.reason, "from --api");
    }

    #[test]
    fn without_a_lab_the_default_is_used_and_explained() {
        let t = choose(None, None, None, Path::new("/nonexistent-rift-dir"));
        assert_eq!(t.url, DEFAULT_API);
        assert!(
            t.reason
                .contains("no lab in /nonexistent-rift-dir/.rift/lab"),
            "{}",
            t.reason
        );
    }
}
