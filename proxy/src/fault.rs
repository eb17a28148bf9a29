//! The fault model: one set of types serves the control API, the CLI and profiles.
//!
//! A [`LinkRule`] is directed: it affects bytes flowing from node `from` to node `to`,
//! whichever of the two dialed the connection. A bidirectional partition is two rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to bytes on a directed link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Stop reading the blocked direction: the sender's kernel buffers fill and it
    /// blocks; on heal delivery resumes with nothing lost (a healed iptables DROP).
    Hold,
    /// RST existing connections and new ones (iptables REJECT).
    Reset,
    /// Read and discard. Connections that lost bytes are reset on heal: the stream
    /// has a gap that no protocol survives.
    Blackhole,
    /// Slow the link down without breaking the stream.
    Degrade(Degradation),
}

/// Toxiproxy-style degradations, composable in one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Degradation {
    /// Added one-way latency per chunk, in milliseconds (tokio timers tick in 1 ms).
    pub latency_ms: u64,
    /// Uniform jitter +/- this many milliseconds; order of bytes is always kept.
    pub jitter_ms: u64,
    /// Token-bucket rate limit in bytes per second (0 = unlimited).
    pub bandwidth_bytes_per_sec: u64,
    /// Delay the propagation of a FIN by this many milliseconds.
    pub slow_close_ms: u64,
    /// Close the connection once this many bytes crossed this direction (0 = no limit).
    pub limit_data_bytes: u64,
}

impl Fault {
    /// The value exported as `rift_link_state`.
    pub fn state_code(&self) -> u8 {
        match self {
            Fault::Hold => 1,
            Fault::Reset => 2,
            Fault::Blackhole => 3,
            Fault::Degrade(_) => 4,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Fault::Hold => "hold",
            Fault::Reset => "reset",
            Fault::Blackhole => "blackhole",
            Fault::Degrade(_) => "degrade",
        }
    }

    /// Whether bytes stop flowing entirely (a partition rather than a degradation).
    pub fn is_cut(&self) -> bool {
        !matches!(self, Fault::Degrade(_))
    }

    /// Parses the short names used on the command line.
    pub fn from_cli_name(name: &str) -> Option<Fault> {
        match name {
            "hold" => Some(Fault::Hold),
            "reset" => Some(Fault::Reset),
            "blackhole" => Some(Fault::Blackhole),
            _ => None,
        }
    }
}

/// A directed fault between two identities (node names or `client`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRule {
    pub from: String,
    pub to: String,
    pub fault: Fault,
    /// Endpoint names this rule is limited to; empty means every endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

/// One apply call: a labelled group of rules that heals together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Shown in status, events and `rift_faults_applied_total{profile}`.
    #[serde(default = "default_label")]
    pub label: String,
    pub rules: Vec<LinkRule>,
    /// Auto-heal after this long.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

fn default_label() -> String {
    "manual".to_string()
}

/// Cuts every pair across groups in both directions.
pub fn partition_rules(
    groups: &[Vec<String>],
    fault: &Fault,
    endpoints: &[String],
) -> Vec<LinkRule> {
    let mut rules = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for (j, b) in groups.iter().enumerate() {
            if i == j {
                continue;
            }
            for from in a {
                for to in b {
                    rules.push(LinkRule {
                        from: from.clone(),
                        to: to.clone(),
                        fault: fault.clone(),
                        endpoints: endpoints.to_vec(),
                    });
                }
            }
        }
    }
    rules
}

/// Durations travel as humantime strings ("30s", "1m 30s") in JSON and TOML.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {t:?}: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_json_round_trip() {
        let f = Fault::Degrade(Degradation {
            latency_ms: 20,
            jitter_ms: 5,
            ..Default::default()
        });
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Fault>(&text).unwrap(), f);
        assert_eq!(
            serde_json::from_str::<Fault>(r#"{"kind":"hold"}"#).unwrap(),
            Fault::Hold
        );
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"drop"}"#).is_err());
    }

    #[test]
    fn partition_rules_cut_both_directions_across_groups_only() {
        let groups = vec![vec!["a".into(), "b".into()], vec!["c".into()]];
        let rules = partition_rules(&groups, &Fault::Hold, &[]);
        let pairs: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(pairs, vec![("a", "c"), ("b", "c"), ("c", "a"), ("c", "b")]);
    }

    #[test]
    fn request_duration_parses_humantime() {
        let r: FaultRequest = serde_json::from_str(r#"{"rules":[],"duration":"1m 30s"}"#).unwrap();
        assert_eq!(r.duration, Some(Duration::from_secs(90)));
        assert_eq!(r.label, "manual");
        let bad = serde_json::from_str::<FaultRequest>(r#"{"rules":[],"duration":"soon"}"#);
        assert!(bad.unwrap_err().to_string().contains("soon"));
    }
}
