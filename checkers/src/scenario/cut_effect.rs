//! `[[checker]] kind = "cut-took-effect"`, for any system: proof from rift's own byte
//! counters, in the same run, that every directed link a fault cut stopped carrying
//! bytes while it held, and that it carried bytes before (so the proof is not an idle
//! link's silence). Scenarios whose expected outcome is "nothing happens" (a partial
//! partition that pre-vote absorbs, a bridge) need it: without it they pass as well
//! when the cut never took effect.
//!
//! Evidence: the poller's `rift-traffic` observations (every 100 ms, the bytes rift
//! delivered on each (src, dst, endpoint) of its open connections). Bytes from X to Y
//! are the forward bytes of connections X dialed to Y plus the reverse bytes of
//! connections Y dialed to X. Per directed cutting rule (`hold`, `reset`, `blackhole`)
//! and fault window:
//! - FAIL when a counter grew between two polls that both fell inside the window (the
//!   first poll that began after the apply is the reference: bytes already in flight
//!   at the switch are not counted);
//! - UNKNOWN when no counter grew before the window either (an idle or unused link);
//! - PASS otherwise.
//!
//! Counters of connections that closed leave their group's sum, so a sum that shrinks
//! proves nothing and counts as no growth. Resolution: one poll interval plus the
//! poll's own duration (both stated in the evidence).

use std::collections::BTreeMap;

use rift_history::{History, Nanos, Observation};
use serde_json::Value;

#[cfg(test)]
use super::Status;
use super::check::HistoryCheck;
use super::poller::{TRAFFIC, TRAFFIC_INTERVAL};
use super::{ScenarioError, Verdict};

pub const KIND: &str = "cut-took-effect";

pub struct CutTookEffect;

impl CutTookEffect {
    /// Built from a `[[checker]]` table, which takes no settings.
    pub fn from_settings(settings: &toml::Table, origin: &str) -> Result<Self, ScenarioError> {
        match settings.keys().next() {
            None => Ok(CutTookEffect),
            Some(key) => Err(ScenarioError::Field {
                origin: origin.to_string(),
                field: format!("checker.{key}"),
                value: settings[key].to_string(),
                reason: format!("{KIND} takes no settings"),
            }),
        }
    }
}

/// One directed rule that cuts, in one fault window.
struct Cut {
    fault: String,
    from: String,
    to: String,
    /// Empty: every endpoint.
    endpoints: Vec<String>,
    kind: String,
    start: Nanos,
    stop: Nanos,
}

/// Bytes from `cut.from` to `cut.to` per (dialer, endpoint) group in one observation.
fn bytes(obs: &Observation, cut: &Cut) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for g in obs.value.as_array().into_iter().flatten() {
        let (Some(src), Some(dst), Some(endpoint)) =
            (g["src"].as_str(), g["dst"].as_str(), g["endpoint"].as_str())
        else {
            continue;
        };
        if !cut.endpoints.is_empty() && !cut.endpoints.iter().any(|e| e == endpoint) {
            continue;
        }
        let n = if src == cut.from && dst == cut.to {
            g["bytes_forward"].as_u64()
        } else if src == cut.to && dst == cut.from {
            g["bytes_reverse"].as_u64()
        } else {
            None
        };
        if let Some(n) = n {
            out.insert((src.to_string(), endpoint.to_string()), n);
        }
    }
    out
}

/// Growth between two observations, summed over groups present in both.
fn growth(a: &BTreeMap<(String, String), u64>, b: &BTreeMap<(String, String), u64>) -> u64 {
    b.iter()
        .filter_map(|(k, after)| a.get(k).map(|before| after.saturating_sub(*before)))
        .sum()
}

fn cuts(history: &History) -> Vec<Cut> {
    let mut stops: BTreeMap<u64, Nanos> = BTreeMap::new();
    for n in history
        .nemesis()
        .filter(|n| n.f == "stop" && n.error.is_none())
    {
        if let Some(id) = n.value["id"].as_u64() {
            stops.entry(id).or_insert(n.invoked);
        }
    }
    let end = history.entries.iter().map(|e| e.time()).max().unwrap_or(0);
    let mut out = Vec::new();
    for start in history
        .nemesis()
        .filter(|n| n.f == "start" && n.error.is_none())
    {
        let id = start.value["id"].as_u64().unwrap_or(0);
        let label = start.value["label"].as_str().unwrap_or("fault").to_string();
        for rule in start.value["rules"].as_array().into_iter().flatten() {
            let kind = match &rule["fault"] {
                Value::String(k) => k.clone(),
                other => other["kind"].as_str().unwrap_or_default().to_string(),
            };
            if !matches!(kind.as_str(), "hold" | "reset" | "blackhole") {
                continue;
            }
            let (Some(from), Some(to)) = (rule["from"].as_str(), rule["to"].as_str()) else {
                continue;
            };
            out.push(Cut {
                fault: format!("fault {id} ({label})"),
                from: from.to_string(),
                to: to.to_string(),
                endpoints: rule["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect(),
                kind,
                start: start.time,
                stop: stops.get(&id).copied().unwrap_or(end),
            });
        }
    }
    out
}

fn ms(ns: Nanos) -> u64 {
    ns / 1_000_000
}

impl HistoryCheck for CutTookEffect {
    fn name(&self) -> String {
        KIND.into()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(KIND);
        let polls: Vec<&Observation> = history
            .observations()
            .filter(|o| o.observation == TRAFFIC && o.error.is_none())
            .collect();
        let cuts = cuts(history);
        if cuts.is_empty() {
            v.unknown("no fault cut any link in this run");
            return v;
        }
        if polls.len() < 2 {
            v.unknown(format!(
                "the history holds {} {TRAFFIC} observations: rift's counters were not read",
                polls.len()
            ));
            return v;
        }
        let slowest_poll = polls.iter().map(|o| o.time - o.started).max().unwrap_or(0);
        let mut proven = 0;
        for cut in &cuts {
            let link = format!(
                "{}: {} -> {}{} ({})",
                cut.fault,
                cut.from,
                cut.to,
                if cut.endpoints.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", cut.endpoints.join(","))
                },
                cut.kind
            );
            let before: u64 = polls
                .windows(2)
                .filter(|w| w[1].time <= cut.start)
                .map(|w| growth(&bytes(w[0], cut), &bytes(w[1], cut)))
                .sum();
            let inside: Vec<&&Observation> = polls
                .iter()
                .filter(|o| o.started >= cut.start && o.time <= cut.stop)
                .collect();
            let mut crossed = 0;
            let mut first_crossing = None;
            for w in inside.windows(2) {
                let g = growth(&bytes(w[0], cut), &bytes(w[1], cut));
                if g > 0 {
                    crossed += g;
                    first_crossing.get_or_insert((w[0].started, w[1].time));
                }
            }
            if let Some((after, by)) = first_crossing {
                v.fail(format!(
                    "{link}: rift delivered {crossed} bytes while the fault held, first between {} and {} ms",
                    ms(after),
                    ms(by)
                ));
            } else if inside.len() < 2 {
                v.unknown(format!(
                    "{link}: fewer than two traffic polls fell inside the {} ms window",
                    ms(cut.stop.saturating_sub(cut.start))
                ));
            } else if before == 0 {
                v.unknown(format!(
                    "{link}: no byte crossed before the fault either: an idle link cannot show the cut"
                ));
            } else {
                proven += 1;
                v.evidence(format!(
                    "{link}: {before} bytes before the fault, 0 over {} polls from {} to {} ms",
                    inside.len(),
                    ms(cut.start),
                    ms(cut.stop)
                ));
            }
        }
        v.pass(format!(
            "every one of {proven} cut links stopped carrying bytes while its fault held, and had carried bytes before (polled every {} ms, slowest poll {} ms)",
            TRAFFIC_INTERVAL.as_millis(),
            ms(slowest_poll).max(1)
        ));
        v
    }
}

#[cfg(test)]
#[path = "cut_effect_tests.rs"]
mod tests;
