//! The releases a lab can run, where the setup scripts install each, and how a
//! requested version (`--version`, a scenario's `version =`) resolves to a binary or a
//! classpath directory.
//!
//! etcd 3.4 is Debian's package; 3.5 and 3.6 are built from the Go module proxy by
//! scripts/setup.d/25-etcd-versions.sh into `/opt/rift/etcd/<version>/`. Kafka's
//! default release is resolved by scripts/setup.d/30-kafka.sh into `.rift/kafka-libs`
//! (or `RIFT_KAFKA_LIBS`), every other one into `/opt/rift/kafka/<version>/`. The
//! versions here and in those scripts are the same pins; a test keeps them in step.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::LabError;

/// One release a lab offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The release line users name: `3.5`, `4.4`.
    pub line: &'static str,
    /// The exact version installed for that line.
    pub version: &'static str,
}

/// etcd releases, oldest first. The last one is the default.
pub const ETCD_RELEASES: &[Release] = &[
    Release {
        line: "3.4",
        version: "3.4.23",
    },
    Release {
        line: "3.5",
        version: "3.5.35",
    },
    Release {
        line: "3.6",
        version: "3.6.16",
    },
];

/// Kafka (KRaft) releases, oldest first. The last one is the default.
pub const KAFKA_RELEASES: &[Release] = &[
    Release {
        line: "3.9",
        version: "3.9.2",
    },
    Release {
        line: "4.4",
        version: "4.4.0",
    },
];

/// The root the setup scripts install versioned releases under (`RIFT_OPT` overrides).
pub fn opt_root() -> PathBuf {
    std::env::var_os("RIFT_OPT").map_or_else(|| PathBuf::from("/opt/rift"), PathBuf::from)
}

/// A requested version resolved to a release of `system`.
pub fn find(
    system: &str,
    releases: &'static [Release],
    requested: Option<&str>,
) -> Result<Release, LabError> {
    let Some(wanted) = requested else {
        return Ok(*releases.last().expect("every system offers a release"));
    };
    let wanted = wanted.trim().trim_start_matches('v');
    releases
        .iter()
        .find(|r| r.line == wanted || r.version == wanted)
        .copied()
        .ok_or_else(|| LabError::Config {
            field: "version".into(),
            value: wanted.to_string(),
            reason: format!("{system} lab versions are {}", listing(releases)),
        })
}

fn listing(releases: &[Release]) -> String {
    releases
        .iter()
        .map(|r| format!("{} ({})", r.line, r.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An etcd release and the binary that runs it.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdInstall {
    pub release: Release,
    pub bin: PathBuf,
}

/// The etcd binary for `requested` (default: the newest release). `ETCD_BIN` still
/// overrides the default, so a user's own build can be tried without registering it.
pub fn etcd(requested: Option<&str>) -> Result<EtcdInstall, LabError> {
    let release = find("etcd", ETCD_RELEASES, requested)?;
    if requested.is_none()
        && let Some(custom) = std::env::var_os("ETCD_BIN")
    {
        return Ok(EtcdInstall {
            release,
            bin: PathBuf::from(custom),
        });
    }
    let bin = if release.line == "3.4" {
        PathBuf::from("/usr/bin/etcd")
    } else {
        opt_root().join("etcd").join(release.version).join("etcd")
    };
    if !bin.is_file() {
        return Err(not_installed("etcd", release, &bin, "25-etcd-versions.sh"));
    }
    Ok(EtcdInstall { release, bin })
}

/// A Kafka release and its classpath directory (`None`: the default release, found
/// by [`super::kafka::locate_libs`] through `RIFT_KAFKA_LIBS` or `.rift/kafka-libs`).
#[derive(Debug, Clone, Serialize)]
pub struct KafkaInstall {
    pub release: Release,
    pub libs: Option<PathBuf>,
}

/// The Kafka jars for `requested` (default: the newest release).
pub fn kafka(requested: Option<&str>) -> Result<KafkaInstall, LabError> {
    let release = find("kafka", KAFKA_RELEASES, requested)?;
    if release == *KAFKA_RELEASES.last().expect("a default release") {
        return Ok(KafkaInstall {
            release,
            libs: None,
        });
    }
    let dir = opt_root().join("kafka").join(release.version);
    let broker_jar = dir.join(format!("kafka_2.13-{}.jar", release.version));
    if !broker_jar.is_file() {
        return Err(not_installed("kafka", release, &broker_jar, "30-kafka.sh"));
    }
    Ok(KafkaInstall {
        release,
        libs: Some(dir),
    })
}

fn not_installed(system: &str, release: Release, missing: &Path, script: &str) -> LabError {
    LabError::Config {
        field: "version".into(),
        value: release.line.into(),
        reason: format!(
            "{system} {} is not installed ({} is missing); install it with \
             scripts/setup.sh (scripts/setup.d/{script})",
            release.version,
            missing.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_or_an_exact_version_resolves_and_the_default_is_the_newest() {
        assert_eq!(
            find("etcd", ETCD_RELEASES, Some("3.5")).unwrap().version,
            "3.5.35"
        );
        assert_eq!(
            find("etcd", ETCD_RELEASES, Some("v3.6.16")).unwrap().line,
            "3.6"
        );
        assert_eq!(find("etcd", ETCD_RELEASES, None).unwrap().line, "3.6");
        assert_eq!(find("kafka", KAFKA_RELEASES, None).unwrap().line, "4.4");
    }

    #[test]
    fn an_unknown_version_names_the_ones_available() {
        let error = find("kafka", KAFKA_RELEASES, Some("2.8"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("version = 2.8"), "{error}");
        assert!(error.contains("3.9 (3.9.2), 4.4 (4.4.0)"), "{error}");
    }

    #[test]
    fn a_missing_install_says_how_to_install_it() {
        let error = not_installed(
            "etcd",
            ETCD_RELEASES[1],
            Path::new("/nowhere/etcd"),
            "25-etcd-versions.sh",
        )
        .to_string();
        assert!(error.contains("etcd 3.5.35 is not installed"), "{error}");
        assert!(
            error.contains("scripts/setup.d/25-etcd-versions.sh"),
            "{error}"
        );
    }

    /// The setup scripts install exactly the versions named here.
    #[test]
    fn setup_scripts_pin_the_same_versions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let etcd_script =
            std::fs::read_to_string(root.join("scripts/setup.d/25-etcd-versions.sh")).unwrap();
        let pinned: Vec<&str> = ETCD_RELEASES[1..].iter().map(|r| r.version).collect();
        assert!(
            etcd_script.contains(&format!("versions=({})", pinned.join(" "))),
            "25-etcd-versions.sh must build {pinned:?}"
        );
        for release in KAFKA_RELEASES {
            let pom = if release == KAFKA_RELEASES.last().unwrap() {
                root.join("compose/kafka-lab/pom.xml")
            } else {
                root.join(format!("compose/kafka-lab/{}/pom.xml", release.line))
            };
            let text = std::fs::read_to_string(&pom).unwrap();
            assert!(
                text.contains(&format!(
                    "<kafka.version>{}</kafka.version>",
                    release.version
                )),
                "{} must pin Kafka {}",
                pom.display(),
                release.version
            );
        }
    }
}
