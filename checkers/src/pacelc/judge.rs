//! From the measurement to a verdict, and to the cap-map reading.

use std::collections::{BTreeMap, BTreeSet};

use rift_history::History;
use serde::Serialize;

use super::Settings;
use super::measure::{self, Class, Expect, Rtts, Stats, Window};
use crate::scenario::Verdict;

/// How latencies are measured, stated with every figure.
pub const RESOLUTION: &str = "latency = completion − invoke of one operation on the history's \
monotonic clock (recorded in ns; figures rounded to 0.1 ms), median (p50, nearest rank) over \
the n ok operations of a class; added = step p50 − baseline p50; injected delays are whole ms, \
each rounded up to the proxy's 1 ms timer tick";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Pass,
    Fail,
    Unknown,
    /// Nothing was injected: a point of the curve, not judged.
    Point,
}

/// One class in one step.
#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub class: String,
    pub expect: Expect,
    pub stats: Stats,
    /// Step p50 − baseline p50 (ms); absent without samples on either side.
    pub added_ms: Option<f64>,
    /// The round trip the protocol makes it pay (ms).
    pub must_pay_ms: u64,
    /// The round trip it would pay by leaving its member (ms).
    pub yardstick_ms: u64,
    pub tolerance_ms: f64,
    pub outcome: Outcome,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: usize,
    pub label: String,
    pub requested_delay_ms: Option<u64>,
    /// The largest round trip between two members (ms): the x of the plot.
    pub injected_rtt_ms: u64,
    /// Where the judged delays came from: `rules`, or `requested` when the rules
    /// carried none of the asked delay.
    pub delays_from: String,
    pub leader: Option<String>,
    pub window_ms: (f64, f64),
    pub classes: Vec<ClassResult>,
}

/// Everything the check measured; drawn by [`super::svg`].
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub resolution: String,
    pub settings: Settings,
    /// Per class, before the first fault.
    pub baseline: BTreeMap<String, Stats>,
    pub steps: Vec<StepResult>,
    /// Why the whole measurement lacks evidence, if it does.
    pub missing: Vec<String>,
}

fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}

/// Measures `history`: per step and class, the latency added over the baseline and
/// what the protocol implies.
pub fn measure(history: &History, settings: &Settings) -> Measurement {
    let windows = measure::windows(history);
    let mut missing = Vec::new();
    let mut m = Measurement {
        resolution: RESOLUTION.to_string(),
        settings: settings.clone(),
        baseline: BTreeMap::new(),
        steps: Vec::new(),
        missing: Vec::new(),
    };
    let Some(first) = windows.first() else {
        m.missing
            .push("no fault step in the history: nothing was injected".into());
        return m;
    };
    let members = members(history, &windows);
    let baseline = measure::samples(history, 0, first.start, first.leader.as_deref());
    for (class, g) in &baseline {
        m.baseline.insert(
            class.name.clone(),
            measure::stats(&g.latencies_ms, g.failed),
        );
    }
    let warmup = settings.warmup.as_nanos() as u64;
    let floor = settings.tolerance.as_secs_f64() * 1000.0;
    for w in &windows {
        let rules_carry = w.links.values().any(|d| *d > 0);
        let uniform = w.requested_delay_ms.filter(|d| *d > 0 && !rules_carry);
        let rtts = Rtts::new(&members, w, uniform);
        let injected = match w.requested_delay_ms {
            Some(d) => 2 * d,
            None => rtts.largest(),
        };
        let changed = leader_changed(history, w);
        let groups = measure::samples(history, w.start + warmup, w.end, w.leader.as_deref());
        let mut classes = Vec::new();
        for (class, g) in &groups {
            let stats = measure::stats(&g.latencies_ms, g.failed);
            let base = m.baseline.get(&class.name);
            let (must, yard) = measure::bound(class, &g.nodes, w.leader.as_deref(), &rtts);
            // A step's median can sit below the round trip by at most how far the
            // baseline's median sits above its fastest operation (processing no
            // faster than the fastest baseline operation); p90 − p50 would mistake
            // the loaded machine's stragglers for uncertainty of the median.
            let tol = base.map_or(floor, |b| (b.p50_ms - b.min_ms).max(floor));
            let added = base
                .filter(|b| b.samples > 0 && stats.samples > 0)
                .map(|b| stats.p50_ms - b.p50_ms);
            let (outcome, reason) = judge_one(
                class,
                &stats,
                base,
                added,
                (must, yard, tol),
                settings.min_samples,
                changed.as_deref(),
            );
            classes.push(ClassResult {
                class: class.name.clone(),
                expect: class.expect,
                stats,
                added_ms: added,
                must_pay_ms: must,
                yardstick_ms: yard,
                tolerance_ms: tol,
                outcome,
                reason,
            });
        }
        m.steps.push(StepResult {
            step: w.step,
            label: w.label.clone(),
            requested_delay_ms: w.requested_delay_ms,
            injected_rtt_ms: injected,
            delays_from: if uniform.is_some() {
                format!(
                    "requested: the step asked for {} ms one way, the proxy's rules put none between members (the profile adds no delay)",
                    w.requested_delay_ms.unwrap_or(0)
                )
            } else {
                "rules".into()
            },
            leader: w.leader.clone(),
            window_ms: (w.start as f64 / 1e6, w.end as f64 / 1e6),
            classes,
        });
    }
    if m.steps.iter().all(|s| s.injected_rtt_ms == 0) {
        missing.push("no step injected any delay between members: nothing to compare".into());
    }
    m.missing = missing;
    m
}

fn judge_one(
    class: &Class,
    stats: &Stats,
    base: Option<&Stats>,
    added: Option<f64>,
    (must, yard, tol): (u64, u64, f64),
    min_samples: usize,
    leader_changed: Option<&str>,
) -> (Outcome, String) {
    let figures = |added: f64| {
        format!(
            "added {} (p50 {} of n={} vs baseline p50 {} of n={})",
            ms(added),
            ms(stats.p50_ms),
            stats.samples,
            ms(base.map_or(f64::NAN, |b| b.p50_ms)),
            base.map_or(0, |b| b.samples)
        )
    };
    if let Some(why) = leader_changed {
        return (Outcome::Unknown, why.to_string());
    }
    let base_n = base.map_or(0, |b| b.samples);
    if stats.samples < min_samples || base_n < min_samples {
        return (
            Outcome::Unknown,
            format!(
                "too few samples: {} ok in the step ({} failed), {} in the baseline; need {min_samples}",
                stats.samples, stats.failed, base_n
            ),
        );
    }
    let Some(added) = added else {
        return (Outcome::Unknown, "no latency to compare".into());
    };
    let stake = if class.expect.consistent() {
        must
    } else {
        yard
    } as f64;
    if stake == 0.0 {
        return (
            Outcome::Point,
            format!("{}; nothing injected on its path", figures(added)),
        );
    }
    if tol * 2.0 >= stake {
        return (
            Outcome::Unknown,
            format!(
                "{}; the tolerance {} (baseline p50 − fastest) is not below half the {} round trip at stake: cannot tell",
                figures(added),
                ms(tol),
                ms(stake)
            ),
        );
    }
    if class.expect.consistent() {
        let need = stake - tol;
        if added >= need {
            (
                Outcome::Pass,
                format!(
                    "{}: paid ≥ {} (round trip {must} ms − tolerance {})",
                    figures(added),
                    ms(need),
                    ms(tol)
                ),
            )
        } else {
            (
                Outcome::Fail,
                format!(
                    "{}: did not pay the {must} ms round trip its protocol needs (expected ≥ {})",
                    figures(added),
                    ms(need)
                ),
            )
        }
    } else {
        let limit = stake / 2.0;
        if added < limit {
            (
                Outcome::Pass,
                format!(
                    "{}: served locally, below half the {yard} ms round trip to another member",
                    figures(added)
                ),
            )
        } else {
            (
                Outcome::Fail,
                format!(
                    "{}: should be served locally but paid ≥ half the {yard} ms round trip to another member",
                    figures(added)
                ),
            )
        }
    }
}

/// The members: nodes the rules named and the clients talked to. Not every observed
/// node: the poller also observes the proxy itself, which is no member.
fn members(history: &History, windows: &[Window]) -> BTreeSet<String> {
    let mut m = BTreeSet::new();
    for w in windows {
        for (a, b) in w.links.keys() {
            m.insert(a.clone());
            m.insert(b.clone());
        }
    }
    m.extend(history.ops().filter_map(|o| o.node.clone()));
    m
}

/// Why the step's leader is in doubt: an etcd member reported another leader inside
/// the window.
fn leader_changed(history: &History, w: &Window) -> Option<String> {
    let leader = w.leader.as_deref()?;
    history
        .observations()
        .filter(|o| o.observation == "etcd-status" && o.started >= w.start && o.time <= w.end)
        .find_map(|o| {
            let seen = o.value["leader"].as_str()?;
            (seen != leader).then(|| {
                format!(
                    "{} reported leader {seen} at {} during the step applied under leader {leader}",
                    o.node,
                    ms(o.time as f64 / 1e6)
                )
            })
        })
}

/// The verdict of a measurement (which it carries for the report's plot).
pub fn verdict(m: Measurement) -> Verdict {
    let mut v = Verdict::new("pacelc");
    for why in &m.missing {
        v.unknown(why.clone());
    }
    let (mut paid, mut local) = (BTreeSet::new(), BTreeSet::new());
    for s in &m.steps {
        let head = format!(
            "step {} ({}{}, injected RTT {} ms, delays from {}{})",
            s.step,
            s.label,
            s.requested_delay_ms
                .map(|d| format!(", delay {d} ms one way"))
                .unwrap_or_default(),
            s.injected_rtt_ms,
            s.delays_from,
            s.leader
                .as_deref()
                .map(|l| format!(", leader {l}"))
                .unwrap_or_default()
        );
        v.evidence(head.clone());
        for c in &s.classes {
            let line = format!("{}: {:?}: {}", c.class, c.outcome, c.reason);
            match c.outcome {
                Outcome::Fail => v.fail(format!("step {}: {line}", s.step)),
                Outcome::Unknown => v.unknown(format!("step {}: {line}", s.step)),
                Outcome::Pass => {
                    v.evidence(format!("  {line}"));
                    if c.expect.consistent() {
                        paid.insert(c.class.clone());
                    } else {
                        local.insert(c.class.clone());
                    }
                }
                Outcome::Point => v.evidence(format!("  {line}")),
            }
        }
    }
    v.evidence(format!("resolution: {}", m.resolution));
    v.pass(format!(
        "consistent classes paid the injected round trip (EC: {}); served without it (EL): {}",
        list(&paid),
        list(&local)
    ));
    v.pacelc = Some(Box::new(m));
    v
}

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// One point of a class's curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub step: usize,
    pub injected_rtt_ms: u64,
    pub added_ms: Option<f64>,
    pub p50_ms: f64,
    pub samples: usize,
    pub outcome: Outcome,
}

/// A class's added latency against the injected round trip.
#[derive(Debug, Clone, Serialize)]
pub struct ClassCurve {
    pub class: String,
    /// The protocol makes it pay for consistency.
    pub consistent: bool,
    pub points: Vec<CurvePoint>,
}

/// What `rift cap-map` shows of a finished pacelc run.
#[derive(Debug, Clone, Serialize)]
pub struct CapMap {
    pub classes: Vec<ClassCurve>,
    /// EC: every consistent class paid the injected round trip at every judged step
    /// (`None`: no step could be judged).
    pub ec: Option<bool>,
    /// EL: the classes that answered without the round trip at every judged step.
    pub el: Vec<String>,
    /// One line, e.g. "EC for linearizable read @leader, put @leader; EL for
    /// serializable read @leader".
    pub reading: String,
    pub resolution: String,
}

/// Per operation class, the latency added at each injected round trip of a finished
/// pacelc run's history, and an EC/EL reading: EC when the consistent classes pay the
/// injected round trip, EL for the classes that answer without it. Uses the default
/// [`Settings`] (5 samples, 300 ms warm-up, 2 ms tolerance); pure, so it can be run on
/// any `history.jsonl` read back with `rift_history::read_jsonl`.
pub fn cap_map(history: &History) -> CapMap {
    from_measurement(&measure(history, &Settings::default()))
}

/// [`cap_map`] of an existing measurement.
pub fn from_measurement(m: &Measurement) -> CapMap {
    let mut curves: BTreeMap<String, ClassCurve> = BTreeMap::new();
    for s in &m.steps {
        for c in &s.classes {
            curves
                .entry(c.class.clone())
                .or_insert_with(|| ClassCurve {
                    class: c.class.clone(),
                    consistent: c.expect.consistent(),
                    points: Vec::new(),
                })
                .points
                .push(CurvePoint {
                    step: s.step,
                    injected_rtt_ms: s.injected_rtt_ms,
                    added_ms: c.added_ms,
                    p50_ms: c.stats.p50_ms,
                    samples: c.stats.samples,
                    outcome: c.outcome,
                });
        }
    }
    let judged = |c: &ClassCurve| {
        c.points
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Pass | Outcome::Fail))
            .map(|p| p.outcome)
            .collect::<Vec<_>>()
    };
    let consistent: Vec<&ClassCurve> = curves.values().filter(|c| c.consistent).collect();
    let verdicts: Vec<Outcome> = consistent.iter().flat_map(|c| judged(c)).collect();
    let ec = (!verdicts.is_empty()).then(|| verdicts.iter().all(|o| *o == Outcome::Pass));
    // A class answers without the round trip when it is local and passed, or when it
    // should have paid and did not.
    let el: Vec<String> = curves
        .values()
        .filter(|c| {
            let j = judged(c);
            !j.is_empty()
                && j.iter().all(|o| {
                    (*o == Outcome::Pass && !c.consistent) || (*o == Outcome::Fail && c.consistent)
                })
        })
        .map(|c| c.class.clone())
        .collect();
    let paying: Vec<String> = consistent
        .iter()
        .filter(|c| {
            let j = judged(c);
            !j.is_empty() && j.iter().all(|o| *o == Outcome::Pass)
        })
        .map(|c| c.class.clone())
        .collect();
    let reading = match ec {
        None => "no step could be judged: no EC/EL reading".to_string(),
        Some(_) => format!(
            "EC for {}; EL for {}",
            if paying.is_empty() {
                "none".into()
            } else {
                paying.join(", ")
            },
            if el.is_empty() {
                "none".into()
            } else {
                el.join(", ")
            }
        ),
    };
    CapMap {
        classes: curves.into_values().collect(),
        ec,
        el,
        reading,
        resolution: m.resolution.clone(),
    }
}
