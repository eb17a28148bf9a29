//! The `wan` profile: nodes placed in regions, every link between two members delayed
//! by the one-way delay of its region pair. Nothing is cut: this is the "else" of
//! PACELC, where a system trades latency for consistency in normal operation.
//!
//! Regions come, first found: from the `regions` binding (N regions in name order), the
//! profile's `groups`, the topology (each node's `region`; regions numbered r1, r2, ...
//! in order of first appearance, and named in the summary), or the profile's
//! `regions = N` (nodes spread over N regions in name order, the default being 3). The delay between two regions is `[degrade]` (`latency_ms`,
//! `jitter_ms`), a `[[pair]]` table for one pair, or a binding given at apply time:
//! `delay` and `jitter` for every pair, `delay.r1-r2` for one. Links within a region
//! get no delay. Every ordered pair of members gets a rule, zero-delay ones included,
//! so the rules the proxy applied spell out the whole delay matrix. Clients (identity
//! `client`) are not delayed: a client sits next to the member it talks to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Bindings, Profile, Resolution};
use crate::fault::{Degradation, Fault, LinkRule};

/// One `[[pair]]` table: the delay between two named regions, both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPair {
    pub between: [String; 2],
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
}

const DEFAULT_REGIONS: usize = 3;

/// Bindings the profile reads as values.
pub fn is_parameter(name: &str) -> bool {
    matches!(name, "delay" | "jitter" | "regions") || name.starts_with("delay.")
}

/// (field, value, reason) of the first field that makes no sense.
pub(super) fn check_fields(p: &Profile) -> Result<(), (&'static str, String, String)> {
    if p.regions == Some(0) {
        return Err(("regions", "0".into(), "at least one region".into()));
    }
    if p.regions.is_some() && p.groups.is_some() {
        return Err((
            "regions",
            "set with groups".into(),
            "give either regions = N or groups, not both".into(),
        ));
    }
    for pair in &p.pairs {
        for name in &pair.between {
            if parse_region(name).is_none() {
                return Err((
                    "pair.between",
                    name.clone(),
                    "regions are named r1, r2, ...".into(),
                ));
            }
        }
    }
    Ok(())
}

fn parse_region(name: &str) -> Option<usize> {
    name.strip_prefix('r')?
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
}

/// The regions of `nodes`: explicit groups, or `count` regions filled in name order
/// (node i goes to region i mod count), empty regions dropped.
pub fn regions(nodes: &[String], groups: Option<&[Vec<String>]>, count: usize) -> Vec<Vec<String>> {
    if let Some(groups) = groups {
        return groups.to_vec();
    }
    let count = count.clamp(1, nodes.len().max(1));
    let mut out = vec![Vec::new(); count];
    for (i, node) in nodes.iter().enumerate() {
        out[i % count].push(node.clone());
    }
    out
}

/// A duration binding in whole milliseconds: `20ms`, `1s`, or a bare `20` (ms).
fn millis(name: &str, text: &str) -> Result<u64, (String, String)> {
    let bad = |reason: String| (format!("{name}={text}"), reason);
    if let Ok(ms) = text.trim().parse::<u64>() {
        return Ok(ms);
    }
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| bad(format!("not a duration ({e}); e.g. 20ms")))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(bad(
            "whole milliseconds only: the proxy's delays tick in 1 ms".into(),
        ));
    }
    Ok(d.as_millis() as u64)
}

/// Resolves the profile against `nodes`. Errors are (value, reason) for `bindings`.
pub(super) fn resolve(
    p: &Profile,
    nodes: &[String],
    placed: Option<Vec<(String, Vec<String>)>>,
    bindings: &Bindings,
) -> Result<Resolution, (String, String)> {
    let count = match bindings.get("regions") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=nodes.len()).contains(n))
            .ok_or_else(|| {
                (
                    format!("regions={text}"),
                    format!("a number of regions from 1 to {}", nodes.len()),
                )
            })?,
        None => p.regions.unwrap_or(DEFAULT_REGIONS),
    };
    // Region names for the summary, when the topology gave them.
    let mut names: Vec<String> = Vec::new();
    let topology_groups: Option<Vec<Vec<String>>> = placed.map(|placed| {
        placed
            .into_iter()
            .map(|(name, nodes)| {
                names.push(name);
                nodes
            })
            .collect()
    });
    let groups = if bindings.contains_key("regions") {
        names.clear();
        None
    } else if p.groups.is_some() {
        names.clear();
        p.groups.as_deref()
    } else {
        topology_groups.as_deref()
    };
    let regions = regions(nodes, groups, count);
    for node in regions.iter().flatten() {
        if !nodes.contains(node) {
            return Err((
                format!("{node:?}"),
                format!("in groups but not a node ({})", nodes.join(", ")),
            ));
        }
    }
    let base = p.degrade.clone().unwrap_or_default();
    let mut default = (base.latency_ms, base.jitter_ms);
    if let Some(t) = bindings.get("delay") {
        default.0 = millis("delay", t)?;
    }
    if let Some(t) = bindings.get("jitter") {
        default.1 = millis("jitter", t)?;
    }
    // (lower region, higher region) -> (latency, jitter), 1-based.
    let mut pairs: BTreeMap<(usize, usize), (u64, u64)> = BTreeMap::new();
    for pair in &p.pairs {
        if let (Some(a), Some(b)) = (
            parse_region(&pair.between[0]),
            parse_region(&pair.between[1]),
        ) {
            pairs.insert((a.min(b), a.max(b)), (pair.latency_ms, pair.jitter_ms));
        }
    }
    for (key, text) in bindings {
        let Some(names) = key.strip_prefix("delay.") else {
            continue;
        };
        let parsed = names
            .split_once('-')
            .and_then(|(a, b)| Some((parse_region(a)?, parse_region(b)?)))
            .filter(|(a, b)| a != b && *a.max(b) <= regions.len());
        let Some((a, b)) = parsed else {
            return Err((
                format!("{key}={text}"),
                format!(
                    "name two of the {} regions, e.g. delay.r1-r2=30ms",
                    regions.len()
                ),
            ));
        };
        let jitter = pairs.get(&(a.min(b), a.max(b))).map_or(default.1, |p| p.1);
        pairs.insert((a.min(b), a.max(b)), (millis(key, text)?, jitter));
    }
    let region_of = |node: &str| regions.iter().position(|r| r.iter().any(|n| n == node));
    let mut rules = Vec::new();
    for a in nodes {
        for b in nodes {
            if a == b {
                continue;
            }
            let (ra, rb) = (region_of(a), region_of(b));
            let (latency_ms, jitter_ms) = match (ra, rb) {
                (Some(x), Some(y)) if x != y => {
                    let key = (x.min(y) + 1, x.max(y) + 1);
                    pairs.get(&key).copied().unwrap_or(default)
                }
                _ => (0, 0),
            };
            rules.push(LinkRule {
                from: a.clone(),
                to: b.clone(),
                fault: Fault::Degrade(Degradation {
                    latency_ms,
                    jitter_ms,
                    bandwidth_bytes_per_sec: base.bandwidth_bytes_per_sec,
                    ..Default::default()
                }),
                endpoints: p.endpoints.clone(),
            });
        }
    }
    let placed: Vec<String> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| match names.get(i) {
            Some(name) => format!("r{}={name}{{{}}}", i + 1, r.join(",")),
            None => format!("r{}{{{}}}", i + 1, r.join(",")),
        })
        .collect();
    let summary = format!(
        "{} region(s) {}; {} ms ± {} ms one way between regions{}, none within",
        regions.len(),
        placed.join(" "),
        default.0,
        default.1,
        if pairs.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = pairs
                .iter()
                .map(|((a, b), (l, j))| format!("r{a}-r{b} {l} ms ± {j} ms"))
                .collect();
            format!(" (except {})", list.join(", "))
        }
    );
    Ok(Resolution { rules, summary })
}
