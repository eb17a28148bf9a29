//! The etcd write workload: Puts through every member for the whole scenario, each
//! with a deadline, recorded as a history that the no-lost-writes checker judges.
//!
//! Every Put writes a fresh key (`<prefix><member>/<seq>`) with an integer value unique
//! to the run, so "present with its value after heal" is an exact test. A Put that timed
//! out is indeterminate (it may still commit) and is not counted as acknowledged.
//!
//! Each Put is also recorded in the run's history, Jepsen style: an `invoke`, then `ok`,
//! `fail` (the member refused it before proposing: it was definitely not applied) or
//! `info` (timed out, connection lost, or any error that does not prove the write was
//! refused). A writer whose Put ended `info` continues under a new process id, so each
//! process has at most one operation in flight, ever.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rift_history::{Entry, Op, OpType, Recorder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::observer::{EtcdError, EtcdObserver};
use crate::scenario::{BoxFuture, Workload, WorkloadSummary};

/// `[workload] kind = "puts"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutWorkloadConfig {
    /// Puts per second per member.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Deadline of each Put.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    /// Key prefix; a run id is appended so runs never collide.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_rate() -> u32 {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_prefix() -> String {
    "rift/workload/".into()
}

impl Default for PutWorkloadConfig {
    fn default() -> Self {
        Self {
            rate: default_rate(),
            timeout: default_timeout(),
            prefix: default_prefix(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    /// Timed out: may or may not have committed.
    Indeterminate,
}

/// One Put as the client saw it.
#[derive(Debug, Clone, Serialize)]
pub struct PutRecord {
    pub member: String,
    pub key: String,
    pub value: String,
    /// The phase in which the Put completed (set when the workload stops).
    pub phase: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// The shared, growing history of the workload.
#[derive(Debug, Default)]
pub struct History {
    pub puts: Vec<PutRecord>,
    pub run_prefix: String,
    /// (phase, start on the scenario clock), in order; "baseline" from 0.
    pub phases: Vec<(String, u64)>,
}

impl History {
    pub fn acknowledged(&self) -> impl Iterator<Item = &PutRecord> {
        self.puts.iter().filter(|p| p.outcome == Outcome::Ok)
    }
}

pub type SharedHistory = Arc<Mutex<History>>;

pub struct PutWorkload {
    observer: EtcdObserver,
    recorder: Recorder,
    history: SharedHistory,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PutWorkload {
    /// Starts one writer per member, recording into `recorder`. Timestamps are
    /// milliseconds since the recorder's start.
    pub fn start(observer: EtcdObserver, config: PutWorkloadConfig, recorder: &Recorder) -> Self {
        let started = recorder.started();
        let run_prefix = format!("{}{:08x}/", config.prefix, rand::random::<u32>());
        let history: SharedHistory = Arc::new(Mutex::new(History {
            puts: vec![],
            run_prefix: run_prefix.clone(),
            phases: vec![("baseline".to_string(), 0)],
        }));
        let (stop, stop_rx) = watch::channel(false);
        let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
        let members = observer.member_names();
        let writers = members.len() as u64;
        // Values are integers (other tools' register models expect them), unique in the
        // run: a random base plus a per-writer stride.
        let base = u64::from(rand::random::<u32>()) << 20;
        let tasks =
            members
                .into_iter()
                .enumerate()
                .map(|(worker, member)| {
                    let observer = observer.clone();
                    let history = history.clone();
                    let recorder = recorder.clone();
                    let mut stop_rx = stop_rx.clone();
                    let prefix = run_prefix.clone();
                    let timeout = config.timeout;
                    tokio::spawn(async move {
                        let mut process = recorder.fresh_process();
                        let mut seq = 0u64;
                        let mut tick = tokio::time::interval(interval);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tokio::select! {
                                _ = tick.tick() => {}
                                _ = stop_rx.changed() => break,
                            }
                            if *stop_rx.borrow() {
                                break;
                            }
                            seq += 1;
                            let key = format!("{prefix}{member}/{seq:06}");
                            let number = base + seq * writers + worker as u64;
                            let value = number.to_string();
                            let invoke = Op::invoke(
                                recorder.now(),
                                process,
                                "write",
                                Some(&key),
                                serde_json::json!(number),
                            )
                            .with_node(&member);
                            recorder.record(Entry::Op(invoke.clone()));
                            let start_ms = started.elapsed().as_millis() as u64;
                            let r = observer.put(&member, &key, &value, timeout).await;
                            let end = recorder.now();
                            let (outcome, error) = match &r {
                                Ok(_) => (Outcome::Ok, None),
                                Err(e) => match classify(e) {
                                    OpType::Fail => (Outcome::Failed, Some(e.to_string())),
                                    _ => (Outcome::Indeterminate, Some(e.to_string())),
                                },
                            };
                            let op_type = match outcome {
                                Outcome::Ok => OpType::Ok,
                                Outcome::Failed => OpType::Fail,
                                Outcome::Indeterminate => OpType::Info,
                            };
                            let mut done = invoke.complete(end, op_type, invoke.value.clone());
                            done.error = error.clone();
                            recorder.record(Entry::Op(done));
                            if op_type == OpType::Info {
                                // The write may still take effect: this process never
                                // issues again (Jepsen's rule), the writer goes on as a new one.
                                process = recorder.fresh_process();
                            }
                            history.lock().unwrap_or_else(|p| p.into_inner()).puts.push(
                                PutRecord {
                                    member: member.clone(),
                                    key,
                                    value,
                                    phase: String::new(),
                                    start_ms,
                                    end_ms: end / 1_000_000,
                                    outcome,
                                    error,
                                },
                            );
                        }
                    })
                })
                .collect();
        Self {
            observer,
            recorder: recorder.clone(),
            history,
            stop,
            tasks,
        }
    }

    pub fn history(&self) -> SharedHistory {
        self.history.clone()
    }
}

/// Whether a failed Put is definitely not applied (`fail`) or may still be (`info`).
/// Only errors etcd returns before proposing the write prove it was refused; a
/// deadline, a broken connection or an unrecognised error prove nothing.
pub fn classify(error: &EtcdError) -> OpType {
    const REFUSED: &[&str] = &[
        // The member knows no leader and does not forward the request.
        "etcdserver: no leader",
        // Rejected by the member's rate limiter, before the proposal.
        "etcdserver: too many requests",
        // The request was refused as invalid.
        "etcdserver: request is too large",
        "etcdserver: key is not provided",
    ];
    match error {
        EtcdError::UnknownMember(_) => OpType::Fail,
        EtcdError::Request { message, .. } if REFUSED.iter().any(|r| message.contains(r)) => {
            OpType::Fail
        }
        _ => OpType::Info,
    }
}

impl Drop for PutWorkload {
    fn drop(&mut self) {
        // A scenario that failed half-way must not leave writers running.
        let _ = self.stop.send(true);
    }
}

impl Workload for PutWorkload {
    fn mark_phase(&mut self, phase: &str, at_ms: u64) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.phases.push((phase.to_string(), at_ms));
    }

    /// Stops the writers, then reads back every key written (acknowledged or
    /// indeterminate) and records those reads: the evidence no-lost-writes judges.
    fn stop(&mut self) -> BoxFuture<'_, WorkloadSummary> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            for t in self.tasks.drain(..) {
                let _ = t.await;
            }
            let keys: Vec<String> = {
                let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
                h.puts
                    .iter()
                    .filter(|p| p.outcome != Outcome::Failed)
                    .map(|p| p.key.clone())
                    .collect()
            };
            super::final_reads::read_back(&self.observer, &self.recorder, keys).await;
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            attribute_phases(&mut h);
            summarize(&h)
        })
    }
}

/// Sets each record's phase from its completion time and the phase marks.
pub fn attribute_phases(h: &mut History) {
    let phases = h.phases.clone();
    for p in &mut h.puts {
        p.phase = phases
            .iter()
            .rev()
            .find(|(_, at)| *at <= p.end_ms)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| "baseline".to_string());
    }
}

pub fn summarize(h: &History) -> WorkloadSummary {
    let mut s = WorkloadSummary::default();
    let mut by_phase: BTreeMap<String, u64> = BTreeMap::new();
    for p in &h.puts {
        match p.outcome {
            Outcome::Ok => {
                s.acknowledged += 1;
                *by_phase.entry(p.phase.clone()).or_default() += 1;
            }
            Outcome::Failed => s.failed += 1,
            Outcome::Indeterminate => s.indeterminate += 1,
        }
    }
    s.acknowledged_by_phase = by_phase;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(end_ms: u64, outcome: Outcome) -> PutRecord {
        PutRecord {
            member: "m".into(),
            key: format!("k{end_ms}"),
            value: "v".into(),
            phase: String::new(),
            start_ms: end_ms.saturating_sub(500),
            end_ms,
            outcome,
            error: None,
        }
    }

    #[test]
    fn puts_count_in_the_phase_they_completed() {
        let mut h = History {
            puts: vec![
                rec(100, Outcome::Ok),
                rec(1_500, Outcome::Ok),
                rec(2_100, Outcome::Ok),
                rec(2_200, Outcome::Indeterminate),
                rec(2_300, Outcome::Failed),
            ],
            run_prefix: String::new(),
            phases: vec![
                ("baseline".into(), 0),
                ("fault".into(), 1_000),
                ("settle".into(), 2_000),
            ],
        };
        attribute_phases(&mut h);
        // Started during the fault, acknowledged after the heal: a settle ack.
        assert_eq!(h.puts[2].phase, "settle");
        let s = summarize(&h);
        assert_eq!((s.acknowledged, s.indeterminate, s.failed), (3, 1, 1));
        assert_eq!(s.acknowledged_by_phase["baseline"], 1);
        assert_eq!(s.acknowledged_by_phase["fault"], 1);
        assert_eq!(s.acknowledged_by_phase["settle"], 1);
    }

    #[test]
    fn only_a_refusal_is_a_definite_failure() {
        let request = |message: &str| EtcdError::Request {
            member: "etcd1".into(),
            op: "put",
            message: message.into(),
        };
        let timeout = EtcdError::Timeout {
            member: "etcd1".into(),
            op: "put",
            after: Duration::from_secs(1),
        };
        assert_eq!(classify(&timeout), OpType::Info);
        assert_eq!(
            classify(&request("grpc status: etcdserver: request timed out")),
            OpType::Info
        );
        assert_eq!(classify(&request("transport error")), OpType::Info);
        assert_eq!(
            classify(&request("grpc status: etcdserver: no leader")),
            OpType::Fail
        );
    }

    #[tokio::test]
    async fn writes_are_recorded_invoke_then_info_under_a_new_process() {
        // No member listens on this port: every Put ends in an error that proves
        // nothing, so each is `info` and the writer moves to a new process id.
        let observer = EtcdObserver::connect(&[("m1".into(), "http://127.0.0.1:9".into())])
            .await
            .unwrap();
        let recorder = Recorder::new(std::time::Instant::now());
        let config = PutWorkloadConfig {
            rate: 20,
            timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let mut w = PutWorkload::start(observer, config, &recorder);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let summary = w.stop().await;
        let h = recorder.snapshot();
        let ops: Vec<_> = h.ops().collect();
        assert!(ops.len() >= 4, "{ops:?}");
        assert_eq!(summary.acknowledged, 0);
        assert_eq!(ops[0].r#type, OpType::Invoke);
        assert_eq!(ops[0].f, "write");
        assert_eq!(ops[0].node.as_deref(), Some("m1"));
        assert!(ops[0].value.is_u64(), "integer values: {:?}", ops[0].value);
        assert_eq!(ops[1].r#type, OpType::Info, "{:?}", ops[1]);
        assert_eq!(ops[1].process, ops[0].process);
        assert!(ops[1].error.is_some());
        assert_ne!(ops[2].process, ops[0].process, "a new process after info");
        for (inv, done) in h.pairs() {
            let done = done.expect("every write completed");
            assert_eq!(
                (inv.key.clone(), inv.value.clone()),
                (done.key.clone(), done.value.clone())
            );
            assert!(done.time >= inv.time);
        }
    }
}
