use super::*;
use rift_history::OpType;

fn sent(partition: i32, seq: u64, offset: Option<i64>, acks: Acks) -> SendOp {
    SendOp {
        partition,
        acks: Some(acks),
        payload: format!("p{partition}-{seq}"),
        invoked: seq,
        done: Some(seq + 1),
        outcome: if offset.is_some() {
            OpType::Ok
        } else {
            OpType::Fail
        },
        offset,
        error: None,
    }
}

#[test]
fn complete_history_passes() {
    let s = vec![
        sent(0, 0, Some(0), Acks::All),
        sent(0, 1, Some(1), Acks::All),
        sent(0, 2, None, Acks::All),
    ];
    let logs = HashMap::from([(0, vec![(0, "p0-0".to_string()), (1, "p0-1".to_string())])]);
    let f = judge_history(&s, &logs);
    assert_eq!(f.acknowledged, 2);
    assert!(f.lost.is_empty() && f.reordered.is_empty());
}

#[test]
fn truncated_and_overwritten_offsets_are_lost() {
    let s = vec![
        sent(0, 0, Some(0), Acks::All),
        sent(0, 1, Some(1), Acks::One),
        sent(0, 2, Some(2), Acks::One),
    ];
    // Offset 1 was overwritten by the new leader, offset 2 truncated away.
    let logs = HashMap::from([(0, vec![(0, "p0-0".to_string()), (1, "other".to_string())])]);
    let f = judge_history(&s, &logs);
    assert_eq!(f.lost.iter().map(|l| l.1).collect::<Vec<_>>(), vec![1, 2]);
    assert!(f.lost.iter().all(|l| l.3 == Some(Acks::One)));
}

#[test]
fn out_of_order_acknowledgements_are_reported() {
    let s = vec![
        sent(1, 0, Some(5), Acks::All),
        sent(1, 1, Some(4), Acks::All),
    ];
    let logs = HashMap::from([(1, vec![(4, "p1-1".to_string()), (5, "p1-0".to_string())])]);
    let f = judge_history(&s, &logs);
    assert_eq!(f.reordered, vec![(1, "p1-1".to_string(), 4)]);
}

#[test]
fn a_partition_never_read_is_missing_evidence() {
    let reads = BTreeMap::from([(0, Ok(vec![])), (1, Err("timed out".to_string()))]);
    let e = logs_or_missing(reads, 3).unwrap_err();
    assert!(
        e.contains("partition 1: timed out") && e.contains("partition 2: never read"),
        "{e}"
    );
}
