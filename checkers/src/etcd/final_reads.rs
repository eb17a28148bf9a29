//! The workload's final reads: once the run is healed and settled, every key the
//! workload wrote (acknowledged or indeterminate) is read back with a linearizable
//! Get and each read is recorded in the history (`read`, `consistency:
//! linearizable`). The no-lost-writes check judges those reads; indeterminate writes
//! are resolved by them (took effect or not).

use std::time::Duration;

use futures::StreamExt;
use rift_history::{Consistency, Entry, Op, OpType, Recorder};
use serde_json::Value;

use super::observer::EtcdObserver;

/// Reads in flight at once.
const CONCURRENCY: usize = 8;
/// Deadline of each read.
const DEADLINE: Duration = Duration::from_secs(2);

/// Reads every key in `keys` through the members in turn (a read that fails through
/// one member is tried once more through the next), recording each attempt.
pub async fn read_back(observer: &EtcdObserver, recorder: &Recorder, keys: Vec<String>) {
    let members = observer.member_names();
    if members.is_empty() {
        return;
    }
    futures::stream::iter(keys.into_iter().enumerate())
        .for_each_concurrent(CONCURRENCY, |(i, key)| {
            let members = &members;
            async move {
                for attempt in 0..2 {
                    let member = &members[(i + attempt) % members.len()];
                    if read_one(observer, recorder, member, &key).await {
                        break;
                    }
                }
            }
        })
        .await;
}

/// One recorded linearizable Get; true when it completed `ok`.
async fn read_one(observer: &EtcdObserver, recorder: &Recorder, member: &str, key: &str) -> bool {
    let invoke = Op::invoke(
        recorder.now(),
        recorder.fresh_process(),
        "read",
        Some(key),
        Value::Null,
    )
    .with_node(member)
    .with_consistency(Consistency::Linearizable);
    recorder.record(Entry::Op(invoke.clone()));
    let got = observer.get(member, key, false, DEADLINE).await;
    let time = recorder.now();
    let done = match got {
        Ok(found) => invoke.complete(time, OpType::Ok, found.map_or(Value::Null, value_of)),
        // A read changes nothing: a failed one is `fail` whatever the error.
        Err(e) => invoke
            .complete(time, OpType::Fail, Value::Null)
            .with_error(e.to_string()),
    };
    let ok = done.r#type == OpType::Ok;
    recorder.record(Entry::Op(done));
    ok
}

/// The workload writes decimal integers; anything else is kept as a string.
fn value_of(text: String) -> Value {
    text.parse::<u64>().map_or(Value::String(text), Value::from)
}
