//! Packet capture in scenario runs (`rift scenario run --capture`) and the scenario's
//! `[[checker]] kind = "no-crossing"` tables, judged after the run from the recording
//! in the report directory ([`super::files::judge_dir`], the same judgement as
//! `rift capture check`). The runner leaves these tables to the caller: no system
//! builds them, and they need the capture, which only exists once the run is over.

use std::path::Path;

use serde::Deserialize;

use super::files;
use super::judge::{Judgement, Scope, Settings};
use crate::scenario::spec::{CheckerSpec, Scenario};
use crate::scenario::{ScenarioError, Verdict};

/// The checker kind judged from the capture.
pub const KIND: &str = "no-crossing";

/// `[[checker]] kind = "no-crossing"` settings (those of `rift capture check`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoCrossingSettings {
    /// `rule` (the endpoints each rule names) or `pair` (every endpoint of a cut pair).
    #[serde(default)]
    pub scope: Scope,
    /// Margin inside each fault window's edges, in ms.
    #[serde(default = "default_grace")]
    pub grace_ms: u64,
}

fn default_grace() -> u64 {
    Settings::default().grace_ms
}

/// The scenario's no-crossing tables, parsed (errors name the file, table and field).
pub fn no_crossing_specs(
    scenario: &Scenario,
) -> Result<Vec<(usize, NoCrossingSettings)>, ScenarioError> {
    scenario
        .checkers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == KIND)
        .map(|(i, c): (usize, &CheckerSpec)| {
            let s: NoCrossingSettings = c.parse()?;
            if s.grace_ms > 10_000 {
                return Err(ScenarioError::Field {
                    origin: c.origin.clone(),
                    field: "grace_ms".into(),
                    value: s.grace_ms.to_string(),
                    reason: "at most 10000".into(),
                });
            }
            Ok((i, s))
        })
        .collect()
}

/// The verdict of one no-crossing table: judged from the recording in `dir`, or
/// UNKNOWN when the run made none (`captured` says why not).
pub fn verdict(dir: &Path, settings: &NoCrossingSettings, captured: Result<(), String>) -> Verdict {
    let mut v = Verdict::new(KIND);
    if let Err(why) = captured {
        v.unknown(why);
        return v;
    }
    let judged = files::judge_dir(
        dir,
        Settings {
            scope: settings.scope,
            grace_ms: settings.grace_ms,
        },
    );
    let n = match judged {
        Ok(n) => n,
        Err(e) => {
            v.unknown(format!(
                "the recording in {} cannot be read: {e}",
                dir.display()
            ));
            return v;
        }
    };
    for link in &n.links {
        v.evidence(format!(
            "fault {} {}→{} {} [{}]: {:?}: {}",
            link.fault_id,
            link.from,
            link.to,
            link.fault,
            if link.endpoints.is_empty() {
                "all endpoints".to_string()
            } else {
                link.endpoints.join(",")
            },
            link.status,
            link.reason
        ));
    }
    v.evidence(format!(
        "{} segments, {} with payload on no known connection; resolution: {}",
        n.segments, n.unmapped_payload_segments, n.resolution
    ));
    match n.status {
        Judgement::Pass => v.pass(n.summary),
        Judgement::Fail => v.fail(n.summary),
        Judgement::Unknown => v.unknown(n.summary),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Status;

    const FILE: &str = "name = \"s\"\n[cluster]\nsystem = \"etcd\"\nnodes = 3\n\
        [fault]\nprofile = \"leader-isolation\"\n[timeline]\nhold = \"2s\"\n\
        [[checker]]\nkind = \"leader-step-down\"\n";

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(&format!("{FILE}{extra}"), "s.toml").unwrap()
    }

    #[test]
    fn no_crossing_tables_are_parsed_with_their_position_and_typos_named() {
        let s = scenario("[[checker]]\nkind = \"no-crossing\"\nscope = \"pair\"\n");
        let specs = no_crossing_specs(&s).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].0, 1);
        assert_eq!(specs[0].1.scope, Scope::Pair);
        assert_eq!(specs[0].1.grace_ms, 20);
        let e = no_crossing_specs(&scenario(
            "[[checker]]\nkind = \"no-crossing\"\nscop = \"pair\"\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("s.toml: [[checker]] #2 (no-crossing)") && e.contains("scop"),
            "{e}"
        );
        let e = no_crossing_specs(&scenario(
            "[[checker]]\nkind = \"no-crossing\"\ngrace_ms = 99999\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("grace_ms") && e.contains("99999"), "{e}");
    }

    #[test]
    fn without_a_recording_the_verdict_is_unknown_and_says_why() {
        let settings = NoCrossingSettings {
            scope: Scope::Rule,
            grace_ms: 20,
        };
        let dir = std::env::temp_dir().join(format!("rift-no-capture-{}", std::process::id()));
        let v = verdict(
            &dir,
            &settings,
            Err("no packet capture: run with --capture".into()),
        );
        assert_eq!(v.status, Status::Unknown);
        assert!(v.summary.contains("--capture"), "{}", v.summary);
        // Said to have captured, but the files are not there: UNKNOWN naming the file.
        let v = verdict(&dir, &settings, Ok(()));
        assert_eq!(v.status, Status::Unknown);
        assert!(v.summary.contains("capture.pcap"), "{}", v.summary);
    }
}
