//! The scenario runner: a timeline of baseline, a schedule of faults (one `[fault]`,
//! `[[step]]` tables or a seeded `[generator]`, see [`schedule`]), a final heal and
//! settle against a real cluster, with checkers that turn what the cluster did into
//! verdicts.
//!
//! Three roles are kept apart, Jepsen style:
//! - the **nemesis** ([`nemesis::Nemesis`]) only applies and heals faults through rift;
//! - the **workload** ([`Workload`]) only drives client operations and records history;
//! - **checkers** ([`Checker`]) observe the cluster at each [`Phase`] and produce a
//!   [`Verdict`] (PASS/FAIL, evidence, timings).
//!
//! # Plugging in another system (Kafka)
//! A system provides one type implementing [`Cluster`] and one implementing
//! [`system::System`], registered with one line in [`system::REGISTRY`] under its
//! `cluster.system` name. The `Cluster` starts (or attaches to) the real members behind rift, resolves
//! roles such as `leader` at apply time, names the endpoint that carries consensus
//! traffic (so the runner can tell which side of a cut has a quorum), and builds its
//! own checkers and workload from the scenario's `[[checker]]` / `[workload]` tables
//! (the table minus `kind` is handed over as TOML, to be parsed with
//! `deny_unknown_fields` by the checker). Nothing else in the runner, the reports or the
//! scenario format is system-specific.

pub mod apply;
pub mod check;
pub mod cut_effect;
pub mod nemesis;
pub mod poller;
pub mod progress;
pub mod runner;
pub mod schedule;
pub mod sides;
pub mod spec;
pub mod system;
pub mod window;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use rift_history::Recorder;
use rift_proxy::fault::LinkRule;
use serde::Serialize;
use thiserror::Error;

/// Checker kinds any system's scenario may use: the runner (or, for the capture, the
/// caller) builds them, not the system.
pub const ANY_SYSTEM_CHECKERS: &[&str] = &[cut_effect::KIND, crate::capture::scenario::KIND];

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{origin}: field {field} = {value}: {reason}")]
    Field {
        origin: String,
        field: String,
        value: String,
        reason: String,
    },
    #[error("lab: {0}")]
    Lab(#[from] crate::lab::LabError),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("nemesis: {0}")]
    Nemesis(String),
    #[error("report {path}: {message}")]
    Report { path: String, message: String },
}

/// Points of the timeline at which checkers are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Cluster healthy, workload running, fault not applied yet.
    Baseline,
    /// The fault was just applied; checkers start watching.
    FaultApplied,
    /// The hold is over, the fault is still in place.
    HoldEnd,
    /// The fault was just healed.
    Healed,
    /// Settle is over and the workload has stopped: final checks.
    Final,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::FaultApplied => "fault-applied",
            Phase::HoldEnd => "hold-end",
            Phase::Healed => "healed",
            Phase::Final => "final",
        }
    }
}

/// The fault as applied: resolved rules, bindings, and which nodes kept a quorum.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AppliedFault {
    /// The proxy's id of the active fault (0 before it was applied).
    pub id: u64,
    pub label: String,
    /// Role -> node resolved at apply time (e.g. target = leader -> etcd2).
    pub bindings: BTreeMap<String, String>,
    /// The directed rules as the proxy returned them when it applied the fault.
    pub rules: Vec<LinkRule>,
    /// Nodes that reach a quorum of nodes (themselves included) on the consensus
    /// endpoint in both directions.
    pub majority: Vec<String>,
    /// Nodes that do not.
    pub minority: Vec<String>,
}

/// What checkers can see of the scenario at a phase.
#[derive(Debug, Clone)]
pub struct ScenarioContext {
    pub started: Instant,
    pub nodes: Vec<String>,
    pub hold: Duration,
    pub settle: Duration,
    /// Set from FaultApplied on.
    pub fault: Option<AppliedFault>,
    /// Leader at the end of baseline, when the system has one.
    pub baseline_leader: Option<String>,
    /// The run's one history: client operations, nemesis operations, observations and
    /// phase marks on one clock (time zero = `started`).
    pub recorder: Recorder,
}

impl ScenarioContext {
    /// Milliseconds since the scenario started: the time axis of every timing.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A verdict. UNKNOWN when the evidence the property needs is missing (the fault
/// never took effect, nothing was acknowledged during it, a poll never succeeded):
/// never PASS for want of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    Unknown,
}

impl Status {
    /// The status of several verdicts together: any FAIL, else any UNKNOWN, else PASS.
    pub fn combine(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses
            .into_iter()
            .fold(Status::Pass, |a, b| match (a, b) {
                (Status::Fail, _) | (_, Status::Fail) => Status::Fail,
                (Status::Unknown, _) | (_, Status::Unknown) => Status::Unknown,
                _ => Status::Pass,
            })
    }
}

/// A named instant on the scenario clock ("stepped down", "new leader elected").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timing {
    pub label: String,
    pub at_ms: u64,
    /// The instant lies within `at_ms` ± this (from the polls that bracket it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_ms: Option<u64>,
    /// A name stable across runs (`stepped-down`), for summaries of repeated runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Milliseconds after the start of the fault it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_fault_ms: Option<u64>,
}

/// A checker's conclusion.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub checker: String,
    pub status: Status,
    /// One line: what held or what did not.
    pub summary: String,
    /// Observations backing the summary, in order.
    pub evidence: Vec<String>,
    pub timings: Vec<Timing>,
    /// The linearizability checker's full report (drawn in report.html).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearizability: Option<Box<rift_history::linear::Report>>,
    /// The pacelc checker's measurement (plotted as pacelc.svg and in report.html).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacelc: Option<Box<crate::pacelc::Measurement>>,
}

impl Verdict {
    pub fn new(checker: &str) -> Self {
        Self {
            checker: checker.to_string(),
            status: Status::Pass,
            summary: String::new(),
            evidence: vec![],
            timings: vec![],
            linearizability: None,
            pacelc: None,
        }
    }

    pub fn evidence(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }

    pub fn timing(&mut self, label: impl Into<String>, at_ms: u64) {
        self.timings.push(Timing {
            label: label.into(),
            at_ms,
            resolution_ms: None,
            name: None,
            after_fault_ms: None,
        });
    }

    /// A measured instant: known to lie in `when`, reported as its middle ± half its
    /// width, and as time after `fault_start`; `name` is stable across runs.
    pub fn measured(
        &mut self,
        name: &str,
        label: impl Into<String>,
        when: window::Interval,
        fault_start: rift_history::Nanos,
    ) {
        self.timings.push(Timing {
            label: label.into(),
            at_ms: window::ms(when.mid()),
            resolution_ms: Some(window::ms_ceil(when.half_width())),
            name: Some(name.to_string()),
            after_fault_ms: Some(window::ms(when.mid().saturating_sub(fault_start))),
        });
    }

    /// Records a failed expectation; the first one becomes the summary (replacing an
    /// UNKNOWN's: a failure outranks missing evidence).
    pub fn fail(&mut self, why: impl Into<String>) {
        let why = why.into();
        if self.status != Status::Fail {
            self.summary = why.clone();
        }
        self.status = Status::Fail;
        self.evidence.push(format!("FAIL: {why}"));
    }

    /// Records evidence that is missing; a passing verdict becomes UNKNOWN with this
    /// as its summary, a failing one stays FAIL.
    pub fn unknown(&mut self, why: impl Into<String>) {
        let why = why.into();
        if self.status == Status::Pass {
            self.summary = why.clone();
            self.status = Status::Unknown;
        }
        self.evidence.push(format!("UNKNOWN: {why}"));
    }

    /// Takes over the evidence, timings and outcome of a verdict built elsewhere (a
    /// task spawned during the hold).
    pub fn merge(&mut self, other: Verdict) {
        self.evidence.extend(other.evidence);
        self.timings.extend(other.timings);
        let combined = Status::combine([self.status, other.status]);
        if combined != self.status || self.status == Status::Pass {
            self.summary = other.summary;
        }
        self.status = combined;
    }

    /// Like [`Verdict::merge`] but keeps this verdict's summary when both pass (for
    /// partial results of one checker).
    pub fn merge_quiet(&mut self, other: Verdict) {
        let summary = self.summary.clone();
        let was = self.status;
        self.merge(other);
        if was == Status::Pass && self.status == Status::Pass {
            self.summary = summary;
        }
    }

    /// Sets the summary of a passing verdict.
    pub fn pass(&mut self, summary: impl Into<String>) {
        if self.status == Status::Pass {
            self.summary = summary.into();
        }
    }
}

/// A property of the cluster, observed across the timeline.
///
/// `on_phase` is called for every checker concurrently at each [`Phase`]; work that must
/// run during the hold (polling, probing) is spawned at `FaultApplied` and collected at
/// `HoldEnd`, so no checker delays the timeline. Failing to observe is a FAIL with the
/// reason as evidence, never a silent pass.
pub trait Checker: Send {
    fn name(&self) -> String;
    fn on_phase<'a>(&'a mut self, phase: Phase, ctx: &'a ScenarioContext) -> BoxFuture<'a, ()>;
    fn verdict(&mut self) -> Verdict;
}

/// Counts a workload reports at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkloadSummary {
    pub acknowledged: u64,
    pub failed: u64,
    pub indeterminate: u64,
    /// Acknowledged operations per phase name, by the time the acknowledgement arrived.
    pub acknowledged_by_phase: BTreeMap<String, u64>,
}

/// Client operations running for the whole scenario. Checkers that judge the history
/// (no lost writes) share it with the workload through the system's own types.
pub trait Workload: Send {
    /// Marks the start of a phase at `at_ms` on the scenario clock. Operations are
    /// attributed to the phase in which they COMPLETED (an acknowledgement is what
    /// counts), judged against these marks when the workload stops.
    fn mark_phase(&mut self, phase: &str, at_ms: u64);
    fn stop(&mut self) -> BoxFuture<'_, WorkloadSummary>;
}

/// A running (or attached) cluster behind rift.
pub trait Cluster: Send + Sync {
    fn system(&self) -> &'static str;
    fn nodes(&self) -> Vec<String>;
    /// The topology endpoint that carries consensus traffic (etcd: `peer`).
    fn consensus_endpoint(&self) -> &'static str;
    fn nemesis(&self) -> &nemesis::Nemesis;
    /// The current leader, if the system has one and a majority agrees on it.
    fn leader(&self) -> BoxFuture<'_, Option<String>>;
    /// Waits until the cluster is healthy (used before baseline and after settle).
    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ScenarioError>>;
    /// A short status line for progress output.
    fn describe(&self) -> BoxFuture<'_, String>;
    fn checker(
        &self,
        spec: &spec::CheckerSpec,
        origin: &str,
    ) -> Result<check::CheckerImpl, ScenarioError>;
    /// The workload records every operation into `recorder` (invoke, then ok, fail
    /// or info), stamped on its clock.
    fn workload(
        &self,
        spec: &spec::WorkloadSpec,
        recorder: &Recorder,
    ) -> Result<Box<dyn Workload>, ScenarioError>;
    /// Polls `node` once and records what it said (or why it said nothing) as one or
    /// more observations, each stamped with the poll's start and end. Called by the
    /// run's one poller ([`poller`]); every call has its own deadline.
    fn observe<'a>(&'a self, node: &'a str, recorder: &'a Recorder) -> BoxFuture<'a, ()>;
    /// How often the poller observes each node.
    fn poll_interval(&self) -> Duration {
        poller::DEFAULT_INTERVAL
    }
    /// The nemesis actions (`[[action]]` tables) this cluster carries out itself, such
    /// as an HA tool's failover (`promote`). None by default.
    fn actions(&self) -> &'static [&'static str] {
        &[]
    }
    /// Carries out action `name` (one of [`Cluster::actions`]). The answer says what
    /// was done (nodes, positions); the runner records it as the value of a nemesis
    /// operation named `name`.
    fn act<'a>(
        &'a self,
        name: &'a str,
        _recorder: &'a Recorder,
    ) -> BoxFuture<'a, Result<serde_json::Value, ScenarioError>> {
        Box::pin(async move {
            Err(ScenarioError::Cluster(format!(
                "{} clusters have no action {name:?}",
                self.system()
            )))
        })
    }
    /// Settings and endpoints recorded in the report.
    fn info(&self) -> serde_json::Value;
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}
