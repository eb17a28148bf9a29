//! Hand-written Kafka histories: a fault, sends, reads, topic creations and polls.

// Builders take every field of an operation positionally, as the history has it.
#![allow(clippy::too_many_arguments)]

use std::time::Duration;

use rift_history::{Entry, History, NemesisOp, Observation, Op, OpType};
use serde_json::{Value, json};

use super::super::seen;
use super::super::{ClusterInfo, KafkaTimings};
use crate::kafka::BrokerInfo;

pub const MS: u64 = 1_000_000;

pub fn info() -> ClusterInfo {
    let addr = "127.0.0.1:1".parse().unwrap();
    ClusterInfo {
        brokers: (1..=3)
            .map(|i| BrokerInfo {
                name: format!("k{i}"),
                id: i,
                client: addr,
                direct_client: addr,
                direct_controller: addr,
            })
            .collect(),
    }
}

pub fn timings() -> KafkaTimings {
    KafkaTimings {
        lag: Duration::from_millis(3000),
        session: Duration::from_millis(3000),
        quorum_fetch: Duration::from_millis(1000),
    }
}

/// A history under construction; entries are sorted by time at the end.
#[derive(Default)]
pub struct Fixture {
    entries: Vec<Entry>,
    process: u64,
}

impl Fixture {
    /// A fault from `start` to `end` ms, with the given sides and bindings.
    pub fn fault(&mut self, start: u64, end: u64, minority: &[&str], bindings: Value) -> &mut Self {
        let majority: Vec<&str> = ["k1", "k2", "k3"]
            .into_iter()
            .filter(|n| !minority.contains(n))
            .collect();
        self.entries.push(Entry::Nemesis(NemesisOp::new(
            start * MS - MS,
            start * MS,
            "start",
            json!({"id": 1, "label": "cut", "rules": [], "bindings": bindings, "majority": majority, "minority": minority}),
        )));
        self.entries.push(Entry::Nemesis(NemesisOp::new(
            end * MS,
            end * MS + MS,
            "stop",
            json!({"id": 1}),
        )));
        self
    }

    pub fn op(
        &mut self,
        f: &str,
        key: &str,
        node: Option<&str>,
        at: u64,
        done: u64,
        outcome: OpType,
        value: Value,
        error: Option<&str>,
    ) -> &mut Self {
        self.process += 1;
        let mut invoke = Op::invoke(at * MS, self.process, f, Some(key), value.clone());
        invoke.node = node.map(str::to_string);
        let mut complete = invoke.complete(done * MS, outcome, value);
        complete.error = error.map(str::to_string);
        self.entries.push(Entry::Op(invoke));
        self.entries.push(Entry::Op(complete));
        self
    }

    pub fn send(
        &mut self,
        topic: &str,
        value: &str,
        at: u64,
        done: u64,
        outcome: OpType,
        offset: i64,
        error: Option<&str>,
    ) -> &mut Self {
        let v = if outcome == OpType::Ok {
            json!([offset, value])
        } else {
            json!(value)
        };
        self.process += 1;
        let invoke = Op::invoke(
            at * MS,
            self.process,
            "send",
            Some(&format!("{topic}/0")),
            json!(value),
        );
        let mut complete = invoke.complete(done * MS, outcome, v);
        complete.error = error.map(str::to_string);
        self.entries.push(Entry::Op(invoke));
        self.entries.push(Entry::Op(complete));
        self
    }

    pub fn read(&mut self, topic: &str, at: u64, log: &[(i64, &str)]) -> &mut Self {
        self.op(
            "read",
            &format!("{topic}/0"),
            None,
            at,
            at + 5,
            OpType::Ok,
            json!(null),
            None,
        );
        if let Some(Entry::Op(done)) = self.entries.last_mut() {
            done.value = json!(log);
        }
        self
    }

    pub fn obs(&mut self, node: &str, kind: &str, started: u64, value: Value) -> &mut Self {
        self.entries.push(Entry::Observation(Observation {
            index: 0,
            time: started * MS + 2 * MS,
            started: started * MS,
            observation: kind.into(),
            node: node.into(),
            value,
            error: None,
        }));
        self
    }

    /// Metadata polls of every node every 100 ms in `[from, to)`: `isr(t)` gives the
    /// topic's one partition (leader, isr) at time t.
    pub fn metadata(
        &mut self,
        topic: &str,
        from: u64,
        to: u64,
        state: impl Fn(u64) -> (i32, Vec<i32>),
    ) -> &mut Self {
        for t in (from..to).step_by(100) {
            let (leader, isr) = state(t);
            for n in ["k1", "k2", "k3"] {
                self.obs(
                    n,
                    seen::METADATA,
                    t,
                    json!({"brokers": [1, 2, 3], "topics": [{"name": topic, "partitions": [
                        {"partition": 0, "leader": leader, "replicas": [1, 2, 3], "isr": isr}]}]}),
                );
            }
        }
        self
    }

    pub fn history(&mut self) -> History {
        let mut entries = self.entries.clone();
        entries.sort_by_key(|e| e.time());
        History::new(entries)
    }
}
