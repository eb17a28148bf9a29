//! The step-down judgement on hand-built histories: each way it can PASS, FAIL or be
//! UNKNOWN, asserting the evidence it gives.

use rift_history::{Entry, NemesisOp, Observation};
use serde_json::json;

use super::*;

const MS: Nanos = 1_000_000;
const IDS: [(&str, u64); 3] = [("a", 11), ("b", 22), ("c", 33)];

/// Polls every 50 ms from 0 to `end_ms` (each taking 5 ms); `state(node, t_ms)` gives
/// (leader id, applied term), or None for a failed poll.
fn history(end_ms: u64, state: impl Fn(&str, u64) -> Option<(u64, u64)>) -> History {
    let mut entries = Vec::new();
    let mut t = 0;
    while t <= end_ms {
        if t == 1000 {
            entries.push(Entry::Nemesis(NemesisOp::new(
                995 * MS,
                1000 * MS,
                "start",
                json!({"id": 1, "label": "leader-isolation", "minority": ["a"], "majority": ["b", "c"], "rules": []}),
            )));
        }
        if t == 6000 {
            entries.push(Entry::Nemesis(NemesisOp::new(
                6000 * MS,
                6001 * MS,
                "stop",
                json!({"id": 1}),
            )));
        }
        for (node, id) in IDS {
            let (value, error) = match state(node, t) {
                Some((leader, term)) => (
                    json!({"name": node, "member_id": id, "leader_id": leader, "applied_term": term}),
                    None,
                ),
                None => (Value::Null, Some("status timed out".to_string())),
            };
            entries.push(Entry::Observation(Observation {
                index: 0,
                time: (t + 5) * MS,
                started: t * MS,
                observation: STATUS.into(),
                node: node.into(),
                value,
                error,
            }));
        }
        t += 50;
    }
    History::new(entries)
}

fn check(limit_ms: u64, h: &History) -> Verdict {
    let config = StepDownConfig {
        within: Some(Duration::from_millis(limit_ms)),
        ..Default::default()
    };
    StepDown::new(config, Duration::from_millis(500)).check(h)
}

/// a leads at term 2 until it steps down at `down_ms`; b and c follow b at term 3
/// from `elected_ms`.
fn isolation(down_ms: u64, elected_ms: u64) -> History {
    history(8000, move |node, t| match node {
        "a" if t >= down_ms => Some((0, 2)),
        "a" => Some((11, 2)),
        _ if t >= elected_ms => Some((22, 3)),
        _ if t >= 1000 => Some((0, 2)),
        _ => Some((11, 2)),
    })
}

#[test]
fn passes_with_timings_and_their_resolution() {
    let v = check(2000, &isolation(1900, 1600));
    assert_eq!(v.status, Status::Pass, "{v:?}");
    // Stepped down after the poll that started at 1850 ms and before the one that
    // ended at 1905 ms: 877.5 ms ± 27.5 ms after the fault (applied at 1000 ms).
    assert!(
        v.summary.contains("a stepped down 878 ms ± 28 ms"),
        "{}",
        v.summary
    );
    // The majority is complete with c's poll ending at 1605 ms; c's previous poll
    // started at 1550 ms.
    assert!(
        v.summary.contains("b elected 578 ms ± 28 ms"),
        "{}",
        v.summary
    );
    let t = &v.timings[0];
    assert_eq!((t.at_ms, t.resolution_ms), (1878, Some(28)));
}

#[test]
fn fails_when_later_than_the_limit_at_the_earliest_instant() {
    let v = check(2000, &isolation(3500, 1600));
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains(
            "a stepped down 2478 ms ± 28 ms after the fault, later than the limit of 2000 ms"
        ),
        "{}",
        v.summary
    );
}

#[test]
fn fails_when_the_leader_never_steps_down() {
    // The follower b was cut instead: a keeps leading; no new leader.
    let h = history(8000, |_, _| Some((11, 2)));
    let v = check(2000, &h);
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert!(
        v.summary.contains(
            "a never stepped down during fault 1 (100 polls over 5000 ms all show it leading)"
        ),
        "{}",
        v.summary
    );
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("no majority followed a new leader above applied term 2")),
        "{v:?}"
    );
}

#[test]
fn unknown_when_the_leader_answered_no_poll_during_the_fault() {
    let h = history(8000, |node, t| match node {
        "a" if t >= 1000 => None,
        "a" => Some((11, 2)),
        _ if t >= 1600 => Some((22, 3)),
        _ => Some((11, 2)),
    });
    let v = check(2000, &h);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(
        v.summary.contains("no poll of a succeeded during fault 1"),
        "{}",
        v.summary
    );
}

#[test]
fn unknown_without_a_fault_or_a_leader() {
    let mut h = isolation(1900, 1600);
    h.entries.retain(|e| !matches!(e, Entry::Nemesis(_)));
    let v = check(2000, &h);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(v.summary.contains("no fault was applied"), "{}", v.summary);
    let h = history(8000, |_, _| Some((0, 2)));
    let v = check(2000, &h);
    assert_eq!(v.status, Status::Unknown, "{v:?}");
    assert!(v.summary.contains("agree on no leader"), "{}", v.summary);
}

#[test]
fn the_default_limit_is_four_election_timeouts() {
    let v = StepDown::new(StepDownConfig::default(), Duration::from_millis(500))
        .check(&isolation(1900, 1600));
    assert!(
        v.evidence[0].starts_with("limit 2000 ms (4 × the election timeout of 500 ms)"),
        "{v:?}"
    );
}

#[test]
fn only_leader_isolations_skips_faults_that_spare_the_leader() {
    // "b" leads throughout; the fault isolates "a", a follower.
    let h = history(8000, |_, _| Some((22, 2)));
    let all = StepDown::new(StepDownConfig::default(), Duration::from_millis(500)).check(&h);
    assert_eq!(all.status, Status::Fail, "{all:?}");
    assert!(
        all.summary.contains("b never stepped down"),
        "{}",
        all.summary
    );
    let config = StepDownConfig {
        only_leader_isolations: true,
        ..Default::default()
    };
    let some = StepDown::new(config, Duration::from_millis(500)).check(&h);
    assert_eq!(some.status, Status::Unknown, "{some:?}");
    assert!(
        some.summary
            .contains("none of the 1 fault(s) isolated the leader"),
        "{}",
        some.summary
    );
}
