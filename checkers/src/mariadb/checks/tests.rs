use rift_history::{Consistency, Entry, History, NemesisOp, Observation, Op, OpType};
use serde_json::{Value, json};

use super::*;
use crate::scenario::Status;

const MS: u64 = 1_000_000;

fn status(node: &str, at_ms: u64, enabled: bool, status_on: bool) -> Entry {
    Entry::Observation(Observation {
        index: 0,
        time: at_ms * MS + MS,
        started: at_ms * MS,
        observation: STATUS.into(),
        node: node.into(),
        value: json!({"semi_sync": {"master_enabled": enabled, "master_timeout_ms": 2000, "master_status": status_on}}),
        error: None,
    })
}

fn isolate(at_ms: u64) -> Entry {
    Entry::Nemesis(NemesisOp::new(
        at_ms * MS - MS,
        at_ms * MS,
        "start",
        json!({"id": 1, "label": "primary-isolation", "bindings": {"target": "maria1"},
               "minority": ["maria1"], "majority": ["maria2", "maria3"], "rules": []}),
    ))
}

fn heal(at_ms: u64) -> Entry {
    Entry::Nemesis(NemesisOp::new(
        at_ms * MS,
        at_ms * MS + MS,
        "stop",
        json!({"id": 1}),
    ))
}

fn promote(at_ms: u64) -> Entry {
    Entry::Nemesis(NemesisOp::new(
        at_ms * MS,
        at_ms * MS + 5 * MS,
        "promote",
        json!({"old_primary": "maria1", "new_primary": "maria2"}),
    ))
}

/// A write of `value` to `key` on `node`, invoked at `from` ms and ending `outcome` at
/// `to` ms.
fn write(
    process: u64,
    node: &str,
    key: &str,
    value: i64,
    from: u64,
    to: u64,
    outcome: OpType,
) -> Vec<Entry> {
    let i = Op::invoke(from * MS, process, "write", Some(key), Value::from(value)).with_node(node);
    let d = i.complete(to * MS, outcome, Value::from(value));
    vec![Entry::Op(i), Entry::Op(d)]
}

fn final_writes(process: u64, node: &str, key: &str, values: &[i64], at: u64) -> Vec<Entry> {
    let i = Op::invoke(at * MS, process, "read-writes", Some(key), Value::Null)
        .with_node(node)
        .with_consistency(Consistency::Linearizable);
    let d = i.complete(at * MS + MS, OpType::Ok, json!(values));
    vec![Entry::Op(i), Entry::Op(d)]
}

fn history(parts: Vec<Vec<Entry>>) -> History {
    let mut entries: Vec<Entry> = parts.into_iter().flatten().collect();
    entries.sort_by_key(|e| e.time());
    History::new(entries)
}

/// The isolated primary held the first write 2,103 ms, then committed the next ones at once.
fn semi_sync_history() -> History {
    history(vec![
        vec![
            status("maria1", 500, true, true),
            isolate(1_000),
            status("maria1", 3_600, true, false),
        ],
        write(1, "maria1", "k0", 10, 1_200, 3_303, OpType::Ok),
        write(1, "maria1", "k0", 11, 3_400, 3_404, OpType::Ok),
        vec![heal(9_000)],
    ])
}

/// Every write on the isolated primary committed within a few milliseconds.
fn async_history() -> History {
    history(vec![
        vec![status("maria1", 500, false, false), isolate(1_000)],
        write(1, "maria1", "k0", 10, 1_200, 1_203, OpType::Ok),
        write(1, "maria1", "k0", 11, 1_400, 1_402, OpType::Ok),
        vec![heal(9_000)],
    ])
}

#[test]
fn semi_sync_wait_passes_when_the_first_write_waited_out_the_timeout() {
    let v = SemiSyncWait.check(&semi_sync_history());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(
        v.summary.contains("2103 ms") && v.summary.contains("2000 ms"),
        "{}",
        v.summary
    );
    let t = v
        .timings
        .iter()
        .find(|t| t.name.as_deref() == Some("semi-sync-released"))
        .unwrap();
    assert_eq!(t.resolution_ms, Some(1));
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("Rpl_semi_sync_master_status OFF")),
        "{v:#?}"
    );
}

#[test]
fn semi_sync_wait_counts_the_commit_in_flight_when_the_cut_came() {
    // As on real MariaDB: a commit already waiting when the fault began times out
    // 2000 ms after it started; the one sent 97 ms into the fault is released with it.
    let h = history(vec![
        vec![status("maria1", 500, true, true), isolate(1_000)],
        write(1, "maria1", "k0", 10, 950, 2_952, OpType::Ok),
        write(2, "maria1", "k1", 11, 1_097, 2_953, OpType::Ok),
        write(2, "maria1", "k1", 12, 3_000, 3_004, OpType::Ok),
        vec![heal(9_000)],
    ]);
    let v = SemiSyncWait.check(&h);
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(v.summary.contains("held a write 2002 ms"), "{}", v.summary);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("1 writes sent to maria1 after that one committed")),
        "{v:#?}"
    );
}

#[test]
fn semi_sync_wait_fails_when_the_isolated_primary_committed_at_once() {
    let v = SemiSyncWait.check(&async_history());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary.contains("within 3 ms") && v.summary.contains("did not wait for a replica"),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("semi-sync disabled"), "{}", v.summary);
}

#[test]
fn semi_sync_wait_is_unknown_without_an_acknowledged_write() {
    let h = history(vec![
        vec![status("maria1", 500, true, true), isolate(1_000)],
        write(1, "maria1", "k0", 10, 1_200, 6_200, OpType::Info),
        vec![heal(9_000)],
    ]);
    let v = SemiSyncWait.check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(
        v.summary.contains("no write sent to the isolated maria1"),
        "{}",
        v.summary
    );
    let v = SemiSyncWait.check(&History::default());
    assert_eq!(v.status, Status::Unknown);
}

#[test]
fn async_commit_passes_at_once_and_fails_when_a_write_waited() {
    let v = AsyncCommit(AsyncCommitConfig::default()).check(&async_history());
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(v.summary.contains("slowest 3 ms"), "{}", v.summary);
    let v = AsyncCommit(AsyncCommitConfig::default()).check(&semi_sync_history());
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary.contains("1 of 2 writes") && v.summary.contains("slowest 2103 ms"),
        "{}",
        v.summary
    );
}

fn failover_history(final_values: &[i64]) -> History {
    history(vec![
        write(1, "maria1", "k0", 5, 100, 110, OpType::Ok),
        vec![isolate(1_000)],
        // Acknowledged by the isolated old primary before the promote: never replicated.
        write(1, "maria1", "k0", 7, 1_200, 1_205, OpType::Ok),
        write(2, "maria1", "k0", 8, 1_300, 6_300, OpType::Info),
        vec![promote(2_000)],
        write(1, "maria2", "k0", 9, 2_100, 2_110, OpType::Ok),
        vec![heal(9_000)],
        final_writes(9, "maria2", "k0", final_values, 12_000),
    ])
}

#[test]
fn no_lost_writes_names_each_acknowledged_write_the_new_primary_lacks() {
    let v = NoLostWrites.check(&failover_history(&[5, 9]));
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("1 of 3 acknowledged writes are missing on maria2"),
        "{}",
        v.summary
    );
    let lost: Vec<_> = v
        .evidence
        .iter()
        .filter(|e| e.starts_with("lost:"))
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0].contains("write of 7 to k0 acknowledged by maria1")
            && lost[0].contains("during fault primary-isolation (205 ms after it began)"),
        "{}",
        lost[0]
    );
    assert!(
        v.evidence.iter().any(
            |e| e.contains("promote from 2000 ms to 2005 ms") && e.contains("maria1 -> maria2")
        )
    );
}

#[test]
fn no_lost_writes_passes_when_every_acknowledged_write_is_there() {
    let v = NoLostWrites.check(&failover_history(&[5, 7, 9]));
    assert_eq!(v.status, Status::Pass, "{v:#?}");
    assert!(
        v.summary
            .contains("all 3 acknowledged writes are on maria2"),
        "{}",
        v.summary
    );
}

#[test]
fn no_lost_writes_is_unknown_without_final_reads_and_fails_on_a_failed_write_present() {
    let h = history(vec![write(1, "maria1", "k0", 5, 100, 110, OpType::Ok)]);
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Unknown, "{v:#?}");
    assert!(
        v.summary
            .contains("no successful final read of the writes of k0"),
        "{}",
        v.summary
    );
    let h = history(vec![
        write(1, "maria1", "k0", 5, 100, 110, OpType::Fail),
        write(2, "maria1", "k0", 6, 100, 110, OpType::Ok),
        final_writes(9, "maria1", "k0", &[5, 6], 500),
    ]);
    let v = NoLostWrites.check(&h);
    assert_eq!(v.status, Status::Fail, "{v:#?}");
    assert!(
        v.summary
            .contains("write of 5 to k0 failed (definitely not applied) but maria1 has it"),
        "{}",
        v.summary
    );
}
