//! The register workload (`[workload] kind = "register"`), shared by every system that
//! offers it (etcd, ZooKeeper): a few keys, each used as one register, driven by several
//! concurrent clients, each bound to one member, so that some clients sit on the
//! minority side of a partition. Every client issues a mix of linearizable reads,
//! serializable reads, writes of integers unique to the run and compare-and-set, and
//! records each operation in the run's history, Jepsen style: `invoke`, then
//! - `ok`: the system answered with success (a read with the value it returned, `null`
//!   when the key does not exist);
//! - `fail`: definitely not applied: a read that did not answer (reads change nothing),
//!   a cas whose comparison was false, or a write or cas the system proved it refused
//!   (each system's [`RegisterClient`] says which errors prove that);
//! - `info`: anything else (deadline, connection lost, an error that does not prove the
//!   refusal): it may still take effect. The client then continues under a fresh
//!   process id, so each process has at most one operation in flight, ever.
//!
//! A system plugs in with a [`RegisterStore`] (its members, and one [`RegisterClient`]
//! per workload client, bound to one member). Keys are fresh in every run (a random run
//! id in the prefix), so each register starts absent, as the checker's model does.
//! When the workload stops, every key is read once more through every member with a
//! linearizable read, recorded like the rest: a write lost in the heal shows up as a
//! read no linearization explains. [`linearizable`] judges the history.

pub mod checks;
pub mod linearizable;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rift_history::{Consistency, Entry, Op, OpType, Recorder};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::scenario::spec::WorkloadSpec;
use crate::scenario::{BoxFuture, ScenarioError, Workload, WorkloadSummary};

/// `[workload] kind = "register"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Registers (keys) shared by all clients.
    #[serde(default = "default_keys")]
    pub keys: usize,
    /// Clients bound to each member.
    #[serde(default = "default_clients")]
    pub clients_per_member: usize,
    /// Extra clients bound to each member that only read serializably. A system that
    /// answers a client's requests in order (ZooKeeper) holds a client's reads behind
    /// its pending write; a reader never has one, so what a cut member serves from its
    /// local state shows.
    #[serde(default)]
    pub readers_per_member: usize,
    /// Operations per second of each client.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Deadline of each operation; past it the operation is `info` (or `fail`, a read).
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    /// Relative weights of the operations each client picks from.
    #[serde(default)]
    pub mix: Mix,
    /// Seed of the clients' choices (key, operation); random when absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Key prefix; a run id is appended so runs never collide.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

/// Weights of the operation mix (any non-negative integers, not all zero).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default = "w3")]
    pub read: u32,
    #[serde(default = "w2")]
    pub serializable_read: u32,
    #[serde(default = "w3")]
    pub write: u32,
    #[serde(default = "w2")]
    pub cas: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read: 3,
            serializable_read: 2,
            write: 3,
            cas: 2,
        }
    }
}

fn w2() -> u32 {
    2
}
fn w3() -> u32 {
    3
}
fn default_keys() -> usize {
    5
}
fn default_clients() -> usize {
    2
}
fn default_rate() -> u32 {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_prefix() -> String {
    "rift/register/".into()
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            keys: default_keys(),
            clients_per_member: default_clients(),
            readers_per_member: 0,
            rate: default_rate(),
            timeout: default_timeout(),
            mix: Mix::default(),
            seed: None,
            prefix: default_prefix(),
        }
    }
}

/// Bounds that keep one scenario file from overwhelming a 2-core machine or the
/// checker's search.
const MAX_KEYS: usize = 1_000;
const MAX_CLIENTS_PER_MEMBER: usize = 32;
const MAX_RATE: u32 = 1_000;

impl RegisterConfig {
    /// Parses and bounds `[workload]`; errors name the file, the field and the value.
    pub fn from_spec(spec: &WorkloadSpec) -> Result<Self, ScenarioError> {
        let c: RegisterConfig = spec.parse()?;
        let bad = |field: &str, value: String, reason: &str| ScenarioError::Field {
            origin: spec.origin.clone(),
            field: format!("workload.{field}"),
            value,
            reason: reason.to_string(),
        };
        if !(1..=MAX_KEYS).contains(&c.keys) {
            return Err(bad(
                "keys",
                c.keys.to_string(),
                &format!("between 1 and {MAX_KEYS}"),
            ));
        }
        if !(1..=MAX_CLIENTS_PER_MEMBER).contains(&c.clients_per_member) {
            return Err(bad(
                "clients_per_member",
                c.clients_per_member.to_string(),
                &format!("between 1 and {MAX_CLIENTS_PER_MEMBER}"),
            ));
        }
        if c.readers_per_member > MAX_CLIENTS_PER_MEMBER {
            return Err(bad(
                "readers_per_member",
                c.readers_per_member.to_string(),
                &format!("between 0 and {MAX_CLIENTS_PER_MEMBER}"),
            ));
        }
        if !(1..=MAX_RATE).contains(&c.rate) {
            return Err(bad(
                "rate",
                c.rate.to_string(),
                &format!("operations per second per client, between 1 and {MAX_RATE}"),
            ));
        }
        if c.timeout.is_zero() || c.timeout > Duration::from_secs(60) {
            return Err(bad(
                "timeout",
                format!("{:?}", c.timeout),
                "between 1 ms and 60 s",
            ));
        }
        let m = c.mix;
        let total = u64::from(m.read)
            + u64::from(m.serializable_read)
            + u64::from(m.write)
            + u64::from(m.cas);
        if total == 0 {
            return Err(bad(
                "mix",
                "all weights 0".into(),
                "some weight must be > 0",
            ));
        }
        Ok(c)
    }
}

/// One kind of operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    SerializableRead,
    Write,
    Cas,
}

impl Mix {
    /// The kind whose weight range contains `roll` (0 ≤ roll < total weight).
    pub fn pick(&self, roll: u64) -> Kind {
        let weights = [
            (Kind::Read, self.read),
            (Kind::SerializableRead, self.serializable_read),
            (Kind::Write, self.write),
            (Kind::Cas, self.cas),
        ];
        let mut left = roll;
        for (kind, w) in weights {
            if left < u64::from(w) {
                return kind;
            }
            left -= u64::from(w);
        }
        Kind::Write
    }

    fn total(&self) -> u64 {
        [self.read, self.serializable_read, self.write, self.cas]
            .iter()
            .map(|w| u64::from(*w))
            .sum()
    }
}

/// Why an operation did not succeed, and what that proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// `Fail` when the error proves a write or cas was not applied, `Info` otherwise.
    /// (Reads are `fail` whatever this says: a read changes nothing.)
    pub outcome: OpType,
    /// The error as the client said it, naming the member.
    pub message: String,
}

impl StoreError {
    /// An error that proves the operation was not applied.
    pub fn refused(message: impl Into<String>) -> Self {
        StoreError {
            outcome: OpType::Fail,
            message: message.into(),
        }
    }

    /// An error that proves nothing: the operation may still take effect.
    pub fn indeterminate(message: impl Into<String>) -> Self {
        StoreError {
            outcome: OpType::Info,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One workload client's connection to one member. Values are the workload's
/// integers; a read answers the stored text (`None`: the key is absent).
pub trait RegisterClient: Send + 'static {
    /// `Linearizable`: the system's linearizable read (etcd: ReadIndex; ZooKeeper:
    /// `sync` then read). `Serializable`: the member's local state.
    fn read<'a>(
        &'a mut self,
        key: &'a str,
        consistency: Consistency,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
    /// Sets the key to `value`, creating it if absent.
    fn write<'a>(
        &'a mut self,
        key: &'a str,
        value: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Sets the key to `new` if it holds `expected` (`None`: absent). `Ok(false)`: the
    /// comparison was false and nothing was applied.
    fn cas<'a>(
        &'a mut self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// A system's side of the register workload.
pub trait RegisterStore: Send + Sync + 'static {
    /// The members clients are bound to, in order.
    fn members(&self) -> Vec<String>;
    /// A fresh client bound to `member`.
    fn client(&self, member: &str) -> Box<dyn RegisterClient>;
    /// The system's name for register `k` of run `run` (a key, a znode path).
    fn key(&self, prefix: &str, run: &str, k: usize) -> String {
        format!("{prefix}{run}/k{k}")
    }
}

/// How each completed operation ended, with its completion time (ns), for the summary.
type Outcomes = Arc<Mutex<Vec<(u64, OpType)>>>;

pub struct RegisterWorkload {
    store: Arc<dyn RegisterStore>,
    recorder: Recorder,
    keys: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    outcomes: Outcomes,
    /// (phase, start in ms on the scenario clock), "baseline" from 0.
    phases: Vec<(String, u64)>,
}

impl RegisterWorkload {
    pub fn start(
        store: Arc<dyn RegisterStore>,
        config: RegisterConfig,
        recorder: &Recorder,
    ) -> Self {
        let run = format!("{:08x}", rand::random::<u32>());
        let keys: Vec<String> = (0..config.keys)
            .map(|k| store.key(&config.prefix, &run, k))
            .collect();
        let members = store.members();
        let writers = members.len() * config.clients_per_member;
        let clients = writers + members.len() * config.readers_per_member;
        // Integers unique in the run (a random base plus a per-client stride), below
        // 2^53 so that every tool, JavaScript included, reads them exactly.
        let base = i64::from(rand::random::<u32>()) << 16;
        let seed = config.seed.unwrap_or_else(rand::random);
        let (stop, stop_rx) = watch::channel(false);
        let outcomes: Outcomes = Arc::default();
        let tasks = (0..clients)
            .map(|client| {
                let member = members[client % members.len()].clone();
                let mut config = config.clone();
                if client >= writers {
                    config.mix = Mix {
                        read: 0,
                        serializable_read: 1,
                        write: 0,
                        cas: 0,
                    };
                }
                let c = Client {
                    conn: store.client(&member),
                    recorder: recorder.clone(),
                    member,
                    keys: keys.clone(),
                    config,
                    rng: StdRng::seed_from_u64(seed.wrapping_add(client as u64)),
                    next_value: base + client as i64,
                    stride: clients as i64,
                    seen: BTreeMap::new(),
                    outcomes: outcomes.clone(),
                };
                tokio::spawn(c.run(stop_rx.clone()))
            })
            .collect();
        RegisterWorkload {
            store,
            recorder: recorder.clone(),
            keys,
            stop,
            tasks,
            outcomes,
            phases: vec![("baseline".into(), 0)],
        }
    }

    /// The keys (registers) of this run.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// One client, bound to one member.
struct Client {
    conn: Box<dyn RegisterClient>,
    recorder: Recorder,
    member: String,
    keys: Vec<String>,
    config: RegisterConfig,
    rng: StdRng,
    next_value: i64,
    stride: i64,
    /// The last value this client saw in each key (read, written or swapped in): what
    /// its compare-and-set expects, so that some of them succeed.
    seen: BTreeMap<usize, Option<i64>>,
    outcomes: Outcomes,
}

impl Client {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut process = self.recorder.fresh_process();
        let interval = Duration::from_secs_f64(1.0 / f64::from(self.config.rate));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let total = self.config.mix.total();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let k = self.rng.random_range(0..self.keys.len());
            let kind = self.config.mix.pick(self.rng.random_range(0..total));
            let outcome = self.one(process, k, kind).await;
            if outcome == OpType::Info {
                // The operation may still take effect: this process never issues again.
                process = self.recorder.fresh_process();
            }
        }
    }

    async fn one(&mut self, process: u64, k: usize, kind: Kind) -> OpType {
        let key = self.keys[k].clone();
        let timeout = self.config.timeout;
        let expected = self.seen.get(&k).copied().flatten();
        let (f, value, new) = match kind {
            Kind::Read | Kind::SerializableRead => ("read", Value::Null, 0),
            Kind::Write => {
                let new = self.take_value();
                ("write", Value::from(new), new)
            }
            Kind::Cas => {
                let new = self.take_value();
                ("cas", serde_json::json!([expected, new]), new)
            }
        };
        let mut invoke = Op::invoke(self.recorder.now(), process, f, Some(&key), value.clone())
            .with_node(&self.member);
        match kind {
            Kind::Read => invoke = invoke.with_consistency(Consistency::Linearizable),
            Kind::SerializableRead => invoke = invoke.with_consistency(Consistency::Serializable),
            Kind::Write | Kind::Cas => {}
        }
        self.recorder.record(Entry::Op(invoke.clone()));
        let done = match kind {
            Kind::Read | Kind::SerializableRead => {
                let consistency = if kind == Kind::SerializableRead {
                    Consistency::Serializable
                } else {
                    Consistency::Linearizable
                };
                match self.conn.read(&key, consistency, timeout).await {
                    Ok(found) => {
                        let v = found.as_deref().map_or(Value::Null, parse_value);
                        if v.is_null() || v.is_i64() {
                            self.seen.insert(k, v.as_i64());
                        }
                        invoke.complete(self.recorder.now(), OpType::Ok, v)
                    }
                    // A read changes nothing: whatever the error, it did not happen.
                    Err(e) => failed(&invoke, &self.recorder, OpType::Fail, &e),
                }
            }
            Kind::Write => match self.conn.write(&key, new, timeout).await {
                Ok(()) => {
                    self.seen.insert(k, Some(new));
                    invoke.complete(self.recorder.now(), OpType::Ok, value)
                }
                Err(e) => failed(&invoke, &self.recorder, e.outcome, &e),
            },
            Kind::Cas => match self.conn.cas(&key, expected, new, timeout).await {
                Ok(true) => {
                    self.seen.insert(k, Some(new));
                    invoke.complete(self.recorder.now(), OpType::Ok, value)
                }
                // The comparison was false: nothing was applied.
                Ok(false) => {
                    // What the register holds is unknown; the client's next read
                    // tells it, and until then its cas expects an absent key.
                    self.seen.remove(&k);
                    invoke
                        .complete(self.recorder.now(), OpType::Fail, value)
                        .with_error("compare failed: the key did not hold the expected value")
                }
                Err(e) => failed(&invoke, &self.recorder, e.outcome, &e),
            },
        };
        let outcome = done.r#type;
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((done.time, outcome));
        self.recorder.record(Entry::Op(done));
        outcome
    }

    /// The next unique value this client writes.
    fn take_value(&mut self) -> i64 {
        let v = self.next_value;
        self.next_value += self.stride;
        v
    }
}

fn failed(invoke: &Op, recorder: &Recorder, outcome: OpType, e: &StoreError) -> Op {
    // Only `fail` and `info` end an operation that errored.
    let outcome = if outcome == OpType::Fail {
        OpType::Fail
    } else {
        OpType::Info
    };
    invoke
        .complete(recorder.now(), outcome, invoke.value.clone())
        .with_error(e.to_string())
}

/// The workload writes decimal integers; anything else is kept as a string (which the
/// checker then refuses, naming the entry).
fn parse_value(text: &str) -> Value {
    text.parse::<i64>()
        .map_or_else(|_| Value::String(text.to_string()), Value::from)
}

impl Drop for RegisterWorkload {
    fn drop(&mut self) {
        // A scenario that failed half-way must not leave clients running.
        let _ = self.stop.send(true);
    }
}

/// Deadline of each final read.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(2);

impl Workload for RegisterWorkload {
    fn mark_phase(&mut self, phase: &str, at_ms: u64) {
        self.phases.push((phase.to_string(), at_ms));
    }

    /// Stops the clients, then reads every key through every member (linearizable,
    /// recorded), and counts the outcomes.
    fn stop(&mut self) -> BoxFuture<'_, WorkloadSummary> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            for t in self.tasks.drain(..) {
                let _ = t.await;
            }
            let reads = self.store.members().into_iter().map(|member| {
                let conn = self.store.client(&member);
                final_reads(conn, &self.recorder, member, &self.keys)
            });
            futures::future::join_all(reads).await;
            let outcomes = self
                .outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            summarize(&outcomes, &self.phases)
        })
    }
}

/// Every key read once through `member` (one client, keys in turn), recorded.
async fn final_reads(
    mut conn: Box<dyn RegisterClient>,
    recorder: &Recorder,
    member: String,
    keys: &[String],
) {
    for key in keys {
        let invoke = Op::invoke(
            recorder.now(),
            recorder.fresh_process(),
            "read",
            Some(key),
            Value::Null,
        )
        .with_node(&member)
        .with_consistency(Consistency::Linearizable);
        recorder.record(Entry::Op(invoke.clone()));
        let done = match conn
            .read(key, Consistency::Linearizable, FINAL_READ_DEADLINE)
            .await
        {
            Ok(found) => invoke.complete(
                recorder.now(),
                OpType::Ok,
                found.as_deref().map_or(Value::Null, parse_value),
            ),
            Err(e) => failed(&invoke, recorder, OpType::Fail, &e),
        };
        recorder.record(Entry::Op(done));
    }
}

/// Counts outcomes; acknowledgements per phase by the time they arrived.
pub fn summarize(outcomes: &[(u64, OpType)], phases: &[(String, u64)]) -> WorkloadSummary {
    let mut s = WorkloadSummary::default();
    for (time, outcome) in outcomes {
        match outcome {
            OpType::Ok => {
                s.acknowledged += 1;
                let ms = time / 1_000_000;
                let phase = phases
                    .iter()
                    .rev()
                    .find(|(_, at)| *at <= ms)
                    .map_or("baseline", |(p, _)| p.as_str());
                *s.acknowledged_by_phase
                    .entry(phase.to_string())
                    .or_default() += 1;
            }
            OpType::Fail => s.failed += 1,
            _ => s.indeterminate += 1,
        }
    }
    s
}

#[cfg(test)]
mod tests;
