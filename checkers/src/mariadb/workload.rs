//! The MariaDB register workload (`[workload] kind = "register"`), etcd's register
//! semantics on primary/replica replication: a few keys (rows of `rift.register`)
//! shared by every client; clients bound to members (each member has its own).
//!
//! - `write`: an integer unique in the run, to the primary **at the time** (the
//!   cluster's `promote` redirects writers), in one transaction that also inserts the
//!   value into `rift.writes`, so that after the heal the new primary can be asked for
//!   every write it has.
//! - `read` with `consistency = "linearizable"`: from the primary at the time.
//! - `read` with `consistency = "serializable"`: from the client's own member (a
//!   replica answers from what it has applied).
//!
//! Outcomes: `ok` when MariaDB answered with success; `fail` only when nothing can
//! have been applied: a read (reads change nothing), a refusal because the member is
//! read-only, or any error before `COMMIT` was sent (the server rolls an uncommitted
//! transaction back); `info` for everything else: a deadline or a lost connection
//! once `COMMIT` was sent. A process whose operation ended `info` never issues again.
//!
//! When the workload stops, every key is read on the primary at that time (`read`,
//! linearizable), and so is the list of writes it holds for the key (`read-writes`,
//! value: the sorted values of `rift.writes`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rift_history::{Consistency, Entry, Op, OpType, Recorder};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{Session, SqlError, text};
use super::plan::DATABASE;
use crate::register::summarize;
use crate::scenario::spec::WorkloadSpec;
use crate::scenario::{BoxFuture, ScenarioError, Workload, WorkloadSummary};

/// The member writes go to; `promote` changes it.
pub type Primary = Arc<RwLock<String>>;

/// `[workload] kind = "register"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MariaRegisterConfig {
    #[serde(default = "default_keys")]
    pub keys: usize,
    #[serde(default = "one")]
    pub clients_per_member: usize,
    /// Operations per second of each client.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Deadline of each operation. Keep it above `rpl_semi_sync_master_timeout`, or a
    /// commit waiting for a replica ends `info` instead of showing its wait.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    #[serde(default)]
    pub mix: Mix,
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default = "two")]
    pub read: u32,
    #[serde(default = "two")]
    pub serializable_read: u32,
    #[serde(default = "four")]
    pub write: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            read: 2,
            serializable_read: 2,
            write: 4,
        }
    }
}

fn one() -> usize {
    1
}
fn two() -> u32 {
    2
}
fn four() -> u32 {
    4
}
fn default_keys() -> usize {
    3
}
fn default_rate() -> u32 {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl MariaRegisterConfig {
    /// Parses and bounds `[workload]`; errors name the file, the field and the value.
    pub fn from_spec(spec: &WorkloadSpec) -> Result<Self, ScenarioError> {
        let c: Self = spec.parse()?;
        let bad = |field: &str, value: String, reason: &str| ScenarioError::Field {
            origin: spec.origin.clone(),
            field: format!("workload.{field}"),
            value,
            reason: reason.to_string(),
        };
        if !(1..=100).contains(&c.keys) {
            return Err(bad("keys", c.keys.to_string(), "between 1 and 100"));
        }
        if !(1..=16).contains(&c.clients_per_member) {
            return Err(bad(
                "clients_per_member",
                c.clients_per_member.to_string(),
                "between 1 and 16",
            ));
        }
        if !(1..=200).contains(&c.rate) {
            return Err(bad(
                "rate",
                c.rate.to_string(),
                "between 1 and 200 per second",
            ));
        }
        if c.timeout < Duration::from_millis(10) || c.timeout > Duration::from_secs(60) {
            return Err(bad(
                "timeout",
                format!("{:?}", c.timeout),
                "between 10 ms and 60 s",
            ));
        }
        if c.mix.read + c.mix.serializable_read + c.mix.write == 0 {
            return Err(bad(
                "mix",
                "all weights 0".into(),
                "some weight must be > 0",
            ));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    SerializableRead,
    Write,
}

impl Mix {
    fn pick(&self, roll: u32) -> Kind {
        if roll < self.read {
            Kind::Read
        } else if roll < self.read + self.serializable_read {
            Kind::SerializableRead
        } else {
            Kind::Write
        }
    }
}

type Outcomes = Arc<Mutex<Vec<(u64, OpType)>>>;

pub struct MariaRegisterWorkload {
    ports: Arc<BTreeMap<String, u16>>,
    primary: Primary,
    recorder: Recorder,
    keys: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    outcomes: Outcomes,
    phases: Vec<(String, u64)>,
}

impl MariaRegisterWorkload {
    /// `ports`: member -> real port, in member order.
    pub fn start(
        ports: Vec<(String, u16)>,
        primary: Primary,
        config: MariaRegisterConfig,
        recorder: &Recorder,
    ) -> Self {
        let run = format!("{:08x}", rand::random::<u32>());
        let keys: Vec<String> = (0..config.keys).map(|k| format!("{run}-k{k}")).collect();
        let members: Vec<String> = ports.iter().map(|(n, _)| n.clone()).collect();
        let ports = Arc::new(ports.into_iter().collect::<BTreeMap<_, _>>());
        let clients = members.len() * config.clients_per_member;
        // Unique in the run, below 2^53 (every JSON reader reads them exactly).
        let base = i64::from(rand::random::<u32>()) << 16;
        let seed = config.seed.unwrap_or_else(rand::random);
        let (stop, stop_rx) = watch::channel(false);
        let outcomes: Outcomes = Arc::default();
        let tasks = (0..clients)
            .map(|i| {
                let c = Client {
                    ports: ports.clone(),
                    primary: primary.clone(),
                    recorder: recorder.clone(),
                    member: members[i % members.len()].clone(),
                    keys: keys.clone(),
                    config: config.clone(),
                    rng: StdRng::seed_from_u64(seed.wrapping_add(i as u64)),
                    next_value: base + i as i64,
                    stride: clients as i64,
                    sessions: BTreeMap::new(),
                    outcomes: outcomes.clone(),
                };
                tokio::spawn(c.run(stop_rx.clone()))
            })
            .collect();
        Self {
            ports,
            primary,
            recorder: recorder.clone(),
            keys,
            stop,
            tasks,
            outcomes,
            phases: vec![("baseline".into(), 0)],
        }
    }
}

struct Client {
    ports: Arc<BTreeMap<String, u16>>,
    primary: Primary,
    recorder: Recorder,
    member: String,
    keys: Vec<String>,
    config: MariaRegisterConfig,
    rng: StdRng,
    next_value: i64,
    stride: i64,
    /// Open connections by member; dropped after any error (their state is unknown).
    sessions: BTreeMap<String, Session>,
    outcomes: Outcomes,
}

fn current(primary: &Primary) -> String {
    primary.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Client {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut process = self.recorder.fresh_process();
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(self.config.rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let m = self.config.mix;
        let total = m.read + m.serializable_read + m.write;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let k = self.rng.random_range(0..self.keys.len());
            let kind = m.pick(self.rng.random_range(0..total));
            if self.one(process, k, kind).await == OpType::Info {
                process = self.recorder.fresh_process();
            }
        }
        for (_, s) in std::mem::take(&mut self.sessions) {
            s.close().await;
        }
    }

    async fn session(&mut self, node: &str, deadline: Duration) -> Result<&mut Session, SqlError> {
        if !self.sessions.contains_key(node) {
            let port = self.ports.get(node).copied().unwrap_or(0);
            let s = Session::connect(node, port, deadline).await?;
            self.sessions.insert(node.to_string(), s);
        }
        Ok(self.sessions.get_mut(node).expect("inserted above"))
    }

    async fn one(&mut self, process: u64, k: usize, kind: Kind) -> OpType {
        let key = self.keys[k].clone();
        let target = match kind {
            Kind::SerializableRead => self.member.clone(),
            Kind::Read | Kind::Write => current(&self.primary),
        };
        let (f, value) = match kind {
            Kind::Write => {
                let v = self.next_value;
                self.next_value += self.stride;
                ("write", Value::from(v))
            }
            _ => ("read", Value::Null),
        };
        let mut invoke = Op::invoke(self.recorder.now(), process, f, Some(&key), value.clone())
            .with_node(&target);
        match kind {
            Kind::Read => invoke = invoke.with_consistency(Consistency::Linearizable),
            Kind::SerializableRead => invoke = invoke.with_consistency(Consistency::Serializable),
            Kind::Write => {}
        }
        self.recorder.record(Entry::Op(invoke.clone()));
        let timeout = self.config.timeout;
        let done = match kind {
            Kind::Write => {
                let v = value.as_i64().unwrap_or(0);
                let mut committing = false;
                let r =
                    tokio::time::timeout(timeout, self.write(&target, &key, v, &mut committing))
                        .await;
                match r {
                    Ok(Ok(())) => invoke.complete(self.recorder.now(), OpType::Ok, value),
                    Ok(Err(e)) => {
                        self.sessions.remove(&target);
                        let proven = !committing || e.is_read_only_refusal();
                        let t = if proven { OpType::Fail } else { OpType::Info };
                        invoke
                            .complete(self.recorder.now(), t, value)
                            .with_error(e.to_string())
                    }
                    Err(_) => {
                        self.sessions.remove(&target);
                        let t = if committing {
                            OpType::Info
                        } else {
                            OpType::Fail
                        };
                        invoke
                            .complete(self.recorder.now(), t, value)
                            .with_error(format!(
                                "{target}: no answer within {timeout:?}{}",
                                if committing {
                                    " after COMMIT was sent"
                                } else {
                                    " before COMMIT"
                                }
                            ))
                    }
                }
            }
            Kind::Read | Kind::SerializableRead => {
                let r = tokio::time::timeout(timeout, self.read(&target, &key)).await;
                match r {
                    Ok(Ok(v)) => invoke.complete(self.recorder.now(), OpType::Ok, v),
                    Ok(Err(e)) => {
                        self.sessions.remove(&target);
                        invoke
                            .complete(self.recorder.now(), OpType::Fail, Value::Null)
                            .with_error(e.to_string())
                    }
                    Err(_) => {
                        self.sessions.remove(&target);
                        invoke
                            .complete(self.recorder.now(), OpType::Fail, Value::Null)
                            .with_error(format!("{target}: no answer within {timeout:?}"))
                    }
                }
            }
        };
        let outcome = done.r#type;
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((done.time, outcome));
        self.recorder.record(Entry::Op(done));
        outcome
    }

    /// The write transaction; `committing` is set once `COMMIT` is on its way.
    async fn write(
        &mut self,
        node: &str,
        key: &str,
        v: i64,
        committing: &mut bool,
    ) -> Result<(), SqlError> {
        let deadline = self.config.timeout;
        let s = self.session(node, deadline).await?;
        s.run("START TRANSACTION", deadline).await?;
        s.run(
            &format!("INSERT INTO {DATABASE}.writes (v, k) VALUES ({v}, '{key}')"),
            deadline,
        )
        .await?;
        s.run(
            &format!(
                "INSERT INTO {DATABASE}.register (k, v) VALUES ('{key}', {v}) \
                 ON DUPLICATE KEY UPDATE v = VALUES(v)"
            ),
            deadline,
        )
        .await?;
        *committing = true;
        s.run("COMMIT", deadline).await
    }

    async fn read(&mut self, node: &str, key: &str) -> Result<Value, SqlError> {
        let deadline = self.config.timeout;
        let s = self.session(node, deadline).await?;
        read_register(s, key, deadline).await
    }
}

async fn read_register(s: &mut Session, key: &str, deadline: Duration) -> Result<Value, SqlError> {
    let row = s
        .row(
            &format!("SELECT v FROM {DATABASE}.register WHERE k = '{key}'"),
            deadline,
        )
        .await?;
    Ok(row
        .and_then(|r| text(&r, "v").parse::<i64>().ok())
        .map_or(Value::Null, Value::from))
}

async fn read_writes(s: &mut Session, key: &str, deadline: Duration) -> Result<Value, SqlError> {
    let rows = s
        .rows(
            &format!("SELECT v FROM {DATABASE}.writes WHERE k = '{key}' ORDER BY v"),
            deadline,
        )
        .await?;
    Ok(Value::from(
        rows.iter()
            .filter_map(|r| text(r, "v").parse::<i64>().ok())
            .collect::<Vec<_>>(),
    ))
}

impl Drop for MariaRegisterWorkload {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

const FINAL_READ_DEADLINE: Duration = Duration::from_secs(5);

impl Workload for MariaRegisterWorkload {
    fn mark_phase(&mut self, phase: &str, at_ms: u64) {
        self.phases.push((phase.to_string(), at_ms));
    }

    fn stop(&mut self) -> BoxFuture<'_, WorkloadSummary> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            for t in self.tasks.drain(..) {
                let _ = t.await;
            }
            let primary = current(&self.primary);
            let port = self.ports.get(&primary).copied().unwrap_or(0);
            let mut session = Session::connect(&primary, port, FINAL_READ_DEADLINE).await;
            for key in &self.keys {
                for f in ["read", "read-writes"] {
                    let invoke = Op::invoke(
                        self.recorder.now(),
                        self.recorder.fresh_process(),
                        f,
                        Some(key),
                        Value::Null,
                    )
                    .with_node(&primary)
                    .with_consistency(Consistency::Linearizable);
                    self.recorder.record(Entry::Op(invoke.clone()));
                    let r = match session.as_mut() {
                        Ok(s) if f == "read" => read_register(s, key, FINAL_READ_DEADLINE).await,
                        Ok(s) => read_writes(s, key, FINAL_READ_DEADLINE).await,
                        Err(e) => Err(SqlError::Connection {
                            node: primary.clone(),
                            message: e.to_string(),
                        }),
                    };
                    let done = match r {
                        Ok(v) => invoke.complete(self.recorder.now(), OpType::Ok, v),
                        Err(e) => invoke
                            .complete(self.recorder.now(), OpType::Fail, Value::Null)
                            .with_error(e.to_string()),
                    };
                    self.recorder.record(Entry::Op(done));
                }
            }
            if let Ok(s) = session {
                s.close().await;
            }
            let outcomes = self
                .outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            summarize(&outcomes, &self.phases)
        })
    }
}
