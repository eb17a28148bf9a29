//! The Cassandra register workload (`[workload] kind = "register"`): a few shared keys
//! per *configuration*, each key one register, driven by clients bound to one node
//! each (their coordinator), so that some clients sit on the minority side of a cut.
//!
//! A configuration fixes the consistency of every operation of its clients, and its
//! keys carry its name as a prefix:
//! - `one/`: writes and reads at ONE; reads recorded `serializable` (a node answers
//!   from its own replica, stale by design when cut off);
//! - `quorum/`: writes and reads at QUORUM; reads recorded `linearizable`;
//! - `lwt/`: lightweight transactions (Paxos): compare-and-set (`IF value = ?`, or `IF
//!   NOT EXISTS` for an absent key) and reads at SERIAL, recorded `linearizable`.
//!
//! Values are integers unique in the run. Each operation is recorded Jepsen style:
//! `invoke`, then `ok`; `fail` only when Cassandra proves nothing was written
//! (UnavailableException: the coordinator refused before writing; a cas not applied; a
//! read, which changes nothing); `info` otherwise (WriteTimeout: some replicas may
//! have applied it; a client deadline). After an `info` the client goes on under a
//! fresh process id. When the workload stops, every key is read once more through
//! every node at ALL (SERIAL for `lwt/`), recorded as `read` ops.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rift_history::{Consistency, Entry, Op, OpType, Recorder};
use scylla::client::session::Session;
use scylla::frame::types::{Consistency as Cl, SerialConsistency};
use scylla::statement::unprepared::Statement;
use scylla::value::{CqlValue, Row};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cql::{Sessions, classify_write, describe_read_error};
use crate::register::summarize;
use crate::scenario::spec::WorkloadSpec;
use crate::scenario::{BoxFuture, ScenarioError, Workload, WorkloadSummary};

/// The keyspace and table every run shares (keys carry a run id).
pub const KEYSPACE: &str = "rift_lab";
pub const TABLE: &str = "rift_lab.registers";

/// One configuration: the consistency of its clients' operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    One,
    Quorum,
    Lwt,
}

impl Level {
    /// The key prefix of this configuration (`one/`, `quorum/`, `lwt/`).
    pub fn prefix(self) -> &'static str {
        match self {
            Level::One => "one/",
            Level::Quorum => "quorum/",
            Level::Lwt => "lwt/",
        }
    }

    /// The configuration of a key, from its prefix.
    pub fn of_key(key: &str) -> Option<Level> {
        [Level::One, Level::Quorum, Level::Lwt]
            .into_iter()
            .find(|l| key.starts_with(l.prefix()))
    }

    fn read_level(self) -> Cl {
        match self {
            Level::One => Cl::One,
            Level::Quorum => Cl::Quorum,
            Level::Lwt => Cl::Serial,
        }
    }

    fn write_level(self) -> Cl {
        match self {
            Level::One => Cl::One,
            Level::Quorum | Level::Lwt => Cl::Quorum,
        }
    }

    /// What a read at this level promises, as the history records it.
    pub fn recorded(self) -> Consistency {
        match self {
            Level::One => Consistency::Serializable,
            Level::Quorum | Level::Lwt => Consistency::Linearizable,
        }
    }
}

/// `[workload] kind = "register"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The configurations run side by side, each with its own keys and clients.
    #[serde(default = "default_levels")]
    pub consistency: Vec<Level>,
    /// Shared keys per configuration.
    #[serde(default = "default_keys")]
    pub keys: usize,
    /// Clients per node and configuration.
    #[serde(default = "default_clients")]
    pub clients_per_node: usize,
    /// Operations per second of each client.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Client-side deadline of each operation; above the lab's 2 s server timeouts so
    /// that Cassandra's own answer (Unavailable, WriteTimeout) is what gets recorded.
    #[serde(default = "default_timeout", with = "crate::scenario::spec::dur")]
    pub timeout: Duration,
    /// Percentage of reads among operations (writes, or cas for `lwt`, the rest).
    #[serde(default = "default_read_percent")]
    pub read_percent: u32,
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_levels() -> Vec<Level> {
    vec![Level::One, Level::Quorum]
}
fn default_keys() -> usize {
    3
}
fn default_clients() -> usize {
    1
}
fn default_rate() -> u32 {
    5
}
fn default_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_read_percent() -> u32 {
    50
}

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
        if c.consistency.is_empty() {
            return Err(bad(
                "consistency",
                "[]".into(),
                "name one or more of one, quorum, lwt",
            ));
        }
        let mut seen = c.consistency.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != c.consistency.len() {
            return Err(bad(
                "consistency",
                format!("{:?}", c.consistency),
                "listed twice",
            ));
        }
        if !(1..=100).contains(&c.keys) {
            return Err(bad("keys", c.keys.to_string(), "between 1 and 100"));
        }
        if !(1..=8).contains(&c.clients_per_node) {
            return Err(bad(
                "clients_per_node",
                c.clients_per_node.to_string(),
                "between 1 and 8",
            ));
        }
        if !(1..=200).contains(&c.rate) {
            return Err(bad(
                "rate",
                c.rate.to_string(),
                "operations per second per client, 1 to 200",
            ));
        }
        if c.timeout < Duration::from_millis(100) || c.timeout > Duration::from_secs(60) {
            return Err(bad(
                "timeout",
                format!("{:?}", c.timeout),
                "between 100 ms and 60 s",
            ));
        }
        if c.read_percent > 100 {
            return Err(bad(
                "read_percent",
                c.read_percent.to_string(),
                "between 0 and 100",
            ));
        }
        Ok(c)
    }
}

/// Creates the keyspace (SimpleStrategy, RF 3) and table through `session`, once.
pub async fn ensure_schema(session: &Session) -> Result<(), String> {
    let ddl = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 3}}"
        ),
        format!("CREATE TABLE IF NOT EXISTS {TABLE} (key text PRIMARY KEY, value bigint)"),
    ];
    for q in ddl {
        let mut st = Statement::new(q.clone());
        st.set_request_timeout(Some(Duration::from_secs(20)));
        session
            .query_unpaged(st, &[])
            .await
            .map_err(|e| format!("{q}: {e}"))?;
    }
    Ok(())
}

type Outcomes = Arc<Mutex<Vec<(u64, OpType)>>>;

pub struct RegisterWorkload {
    sessions: Sessions,
    recorder: Recorder,
    keys: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    outcomes: Outcomes,
    phases: Vec<(String, u64)>,
}

impl RegisterWorkload {
    pub fn start(sessions: Sessions, config: RegisterConfig, recorder: &Recorder) -> Self {
        let run = format!("{:08x}", rand::random::<u32>());
        let nodes = sessions.node_names();
        let clients = nodes.len() * config.clients_per_node * config.consistency.len();
        // Integers unique in the run: a random base plus a per-client stride.
        let base = i64::from(rand::random::<u32>()) << 16;
        let seed = config.seed.unwrap_or_else(rand::random);
        let (stop, stop_rx) = watch::channel(false);
        let outcomes: Outcomes = Arc::default();
        let mut keys = Vec::new();
        let mut tasks = Vec::new();
        let mut client = 0usize;
        for &level in &config.consistency {
            let level_keys: Vec<String> = (0..config.keys)
                .map(|k| format!("{}{run}/k{k}", level.prefix()))
                .collect();
            keys.extend(level_keys.iter().cloned());
            for node in &nodes {
                for _ in 0..config.clients_per_node {
                    let c = Client {
                        sessions: sessions.clone(),
                        recorder: recorder.clone(),
                        node: node.clone(),
                        level,
                        keys: level_keys.clone(),
                        config: config.clone(),
                        rng: StdRng::seed_from_u64(seed.wrapping_add(client as u64)),
                        next_value: base + client as i64,
                        stride: clients as i64,
                        seen: BTreeMap::new(),
                        outcomes: outcomes.clone(),
                    };
                    tasks.push(tokio::spawn(c.run(stop_rx.clone())));
                    client += 1;
                }
            }
        }
        RegisterWorkload {
            sessions,
            recorder: recorder.clone(),
            keys,
            stop,
            tasks,
            outcomes,
            phases: vec![("baseline".into(), 0)],
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

struct Client {
    sessions: Sessions,
    recorder: Recorder,
    node: String,
    level: Level,
    keys: Vec<String>,
    config: RegisterConfig,
    rng: StdRng,
    next_value: i64,
    stride: i64,
    /// The last value this client saw in each key: what its cas expects.
    seen: BTreeMap<usize, Option<i64>>,
    outcomes: Outcomes,
}

impl Client {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut process = self.recorder.fresh_process();
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(self.config.rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let k = self.rng.random_range(0..self.keys.len());
            let read = self.rng.random_range(0..100) < self.config.read_percent;
            let done = self.one(process, k, read).await;
            self.outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((done.time, done.r#type));
            let outcome = done.r#type;
            self.recorder.record(Entry::Op(done));
            if outcome == OpType::Info {
                // It may still take effect: this process never issues again.
                process = self.recorder.fresh_process();
            }
        }
    }

    /// Runs one operation and returns its completion (not yet recorded).
    async fn one(&mut self, process: u64, k: usize, read: bool) -> Op {
        let key = self.keys[k].clone();
        let r = &self.recorder;
        if read {
            let invoke = Op::invoke(r.now(), process, "read", Some(&key), Value::Null)
                .with_node(&self.node)
                .with_consistency(self.level.recorded());
            r.record(Entry::Op(invoke.clone()));
            let got = read_key(&self.sessions, &self.node, &key, self.level.read_level()).await;
            return match got {
                Ok(v) => {
                    self.seen.insert(k, v);
                    invoke.complete(r.now(), OpType::Ok, v.map_or(Value::Null, Value::from))
                }
                Err(e) => invoke
                    .complete(r.now(), OpType::Fail, Value::Null)
                    .with_error(e),
            };
        }
        let new = self.next_value;
        self.next_value += self.stride;
        if self.level == Level::Lwt {
            let expected = self.seen.get(&k).copied().flatten();
            let value = serde_json::json!([expected, new]);
            let invoke = Op::invoke(r.now(), process, "cas", Some(&key), value.clone())
                .with_node(&self.node);
            r.record(Entry::Op(invoke.clone()));
            let done = match cas(&self.sessions, &self.node, &key, expected, new).await {
                Ok(true) => {
                    self.seen.insert(k, Some(new));
                    invoke.complete(r.now(), OpType::Ok, value)
                }
                Ok(false) => {
                    // Not applied: the register held something else; the next read says what.
                    self.seen.remove(&k);
                    invoke
                        .complete(r.now(), OpType::Fail, value)
                        .with_error("not applied: the key did not hold the expected value")
                }
                Err((t, e)) => invoke.complete(r.now(), t, value).with_error(e),
            };
            return done;
        }
        let invoke = Op::invoke(r.now(), process, "write", Some(&key), Value::from(new))
            .with_node(&self.node);
        r.record(Entry::Op(invoke.clone()));
        match write(
            &self.sessions,
            &self.node,
            &key,
            new,
            self.level.write_level(),
        )
        .await
        {
            Ok(()) => {
                self.seen.insert(k, Some(new));
                invoke.complete(r.now(), OpType::Ok, Value::from(new))
            }
            Err((t, e)) => invoke.complete(r.now(), t, Value::from(new)).with_error(e),
        }
    }
}

fn statement(cql: &str, level: Cl) -> Statement {
    let mut st = Statement::new(cql.to_string());
    st.set_consistency(level);
    st
}

/// Reads `key` through `node` at `level`: the value, or `None` when absent.
pub async fn read_key(
    sessions: &Sessions,
    node: &str,
    key: &str,
    level: Cl,
) -> Result<Option<i64>, String> {
    let session = sessions.get(node).await.map_err(|e| e.to_string())?;
    let mut st = statement(&format!("SELECT value FROM {TABLE} WHERE key = ?"), level);
    if level == Cl::Serial {
        st.set_serial_consistency(Some(SerialConsistency::Serial));
    }
    let result = session
        .query_unpaged(st, (key,))
        .await
        .map_err(|e| describe_read_error(&e))?;
    let rows = result.into_rows_result().map_err(|e| e.to_string())?;
    let row = rows
        .maybe_first_row::<(Option<i64>,)>()
        .map_err(|e| e.to_string())?;
    Ok(row.and_then(|(v,)| v))
}

async fn write(
    sessions: &Sessions,
    node: &str,
    key: &str,
    value: i64,
    level: Cl,
) -> Result<(), (OpType, String)> {
    let session = sessions
        .get(node)
        .await
        .map_err(|e| (OpType::Fail, format!("request not sent: {e}")))?;
    let st = statement(
        &format!("INSERT INTO {TABLE} (key, value) VALUES (?, ?)"),
        level,
    );
    session
        .query_unpaged(st, (key, value))
        .await
        .map(|_| ())
        .map_err(|e| classify_write(&e))
}

/// A lightweight transaction: `IF NOT EXISTS` when `expected` is absent, else `IF
/// value = expected`. `Ok(applied)`.
async fn cas(
    sessions: &Sessions,
    node: &str,
    key: &str,
    expected: Option<i64>,
    new: i64,
) -> Result<bool, (OpType, String)> {
    let session = sessions
        .get(node)
        .await
        .map_err(|e| (OpType::Fail, format!("request not sent: {e}")))?;
    let result = match expected {
        None => {
            let mut st = statement(
                &format!("INSERT INTO {TABLE} (key, value) VALUES (?, ?) IF NOT EXISTS"),
                Cl::Quorum,
            );
            st.set_serial_consistency(Some(SerialConsistency::Serial));
            session.query_unpaged(st, (key, new)).await
        }
        Some(e) => {
            let mut st = statement(
                &format!("UPDATE {TABLE} SET value = ? WHERE key = ? IF value = ?"),
                Cl::Quorum,
            );
            st.set_serial_consistency(Some(SerialConsistency::Serial));
            session.query_unpaged(st, (new, key, e)).await
        }
    };
    let result = result.map_err(|e| classify_write(&e))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| (OpType::Info, format!("unreadable LWT answer: {e}")))?;
    let row = rows
        .maybe_first_row::<Row>()
        .map_err(|e| (OpType::Info, format!("unreadable LWT answer: {e}")))?;
    match row.and_then(|r| r.columns.into_iter().next().flatten()) {
        Some(CqlValue::Boolean(applied)) => Ok(applied),
        other => Err((
            OpType::Info,
            format!("LWT answer without [applied]: {other:?}"),
        )),
    }
}

impl Drop for RegisterWorkload {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How long the final reads of one key through one node keep trying (a node that has
/// just seen the heal may still think a peer down and refuse ALL).
const FINAL_READ_PATIENCE: Duration = Duration::from_secs(10);

impl Workload for RegisterWorkload {
    fn mark_phase(&mut self, phase: &str, at_ms: u64) {
        self.phases.push((phase.to_string(), at_ms));
    }

    fn stop(&mut self) -> BoxFuture<'_, WorkloadSummary> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            for t in self.tasks.drain(..) {
                let _ = t.await;
            }
            let mut reads = Vec::new();
            for node in self.sessions.node_names() {
                for key in &self.keys {
                    reads.push(final_read(
                        &self.sessions,
                        &self.recorder,
                        node.clone(),
                        key,
                    ));
                }
            }
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

/// Reads `key` through `node` at ALL (SERIAL for `lwt/` keys), recorded; a refused
/// read is recorded as `fail` and tried again until one answers or patience runs out.
async fn final_read(sessions: &Sessions, recorder: &Recorder, node: String, key: &str) {
    let level = match Level::of_key(key) {
        Some(Level::Lwt) => Cl::Serial,
        _ => Cl::All,
    };
    let until = tokio::time::Instant::now() + FINAL_READ_PATIENCE;
    loop {
        let invoke = Op::invoke(
            recorder.now(),
            recorder.fresh_process(),
            "read",
            Some(key),
            Value::Null,
        )
        .with_node(&node)
        .with_consistency(Consistency::Linearizable);
        recorder.record(Entry::Op(invoke.clone()));
        let got = read_key(sessions, &node, key, level).await;
        let ok = got.is_ok();
        let done = match got {
            Ok(v) => invoke.complete(
                recorder.now(),
                OpType::Ok,
                v.map_or(Value::Null, Value::from),
            ),
            Err(e) => invoke
                .complete(recorder.now(), OpType::Fail, Value::Null)
                .with_error(format!("final read at {level}: {e}")),
        };
        recorder.record(Entry::Op(done));
        if ok || tokio::time::Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
