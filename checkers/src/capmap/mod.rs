//! The CAP map, measured: one experiment per system and configuration (isolate a
//! minority, or a primary, under a register workload, then heal), and from each run's
//! history one row: did the minority accept writes, serve reads, stale ones? did the
//! majority stay available? was an acknowledged write lost after the heal? The label
//! (CP, AP, ...) is derived from that evidence ([`classify`]) and shown beside the
//! label the textbooks give.
//!
//! - [`evidence`]: what a history proves (pure; witnesses for every stale read and lost
//!   write).
//! - [`classify`]: evidence to label, with reasons.
//! - [`CATALOGUE`]: the experiments `rift cap-map` runs, with their textbook labels.
//! - [`render`]: the table and the HTML page.

pub mod classify;
pub mod else_half;
pub mod evidence;
pub mod render;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use rift_history::History;
use serde::Serialize;

pub use classify::{Cap, Classification, CountedReads, classify};
pub use else_half::{ElseHalf, PacelcExperiment, else_half};
pub use evidence::{Evidence, Select, evidence};

/// Where the cap-map scenario files live, relative to the repository root.
pub const SCENARIO_DIR: &str = "profiles/cap-map";

/// One row of the map: a system in one configuration.
#[derive(Debug, Clone, Copy)]
pub struct Configuration {
    /// The scenario's `cluster.system`.
    pub system: &'static str,
    /// The row's name, e.g. `cassandra ONE`.
    pub name: &'static str,
    /// The scenario file under [`SCENARIO_DIR`]; configurations that differ only on the
    /// client side share one file (one run) and are told apart by `select`.
    pub file: &'static str,
    pub select: Select,
    pub counted: CountedReads,
    /// What the CAP articles say (the label rift's measurement is set against).
    pub textbook_cap: &'static str,
    pub textbook_pacelc: &'static str,
    /// Why the textbook says so, in a few words.
    pub textbook_why: &'static str,
    /// The PACELC experiment that measures the else half, where one exists.
    pub pacelc: Option<PacelcExperiment>,
}

/// Every configuration `rift cap-map` knows, in the order it runs them.
pub static CATALOGUE: &[Configuration] = &[
    Configuration {
        system: "etcd",
        name: "etcd",
        file: "etcd.toml",
        select: Select::All,
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "Raft: only a majority commits; linearizable reads go through the leader",
        pacelc: Some(PacelcExperiment {
            file: "etcd-pacelc.toml",
            classes: &["linearizable read", "put"],
        }),
    },
    Configuration {
        system: "zookeeper",
        name: "zookeeper",
        file: "zookeeper.toml",
        select: Select::All,
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "Zab: a quorum commits every write; a server cut from the quorum stops serving",
        pacelc: None,
    },
    Configuration {
        system: "cassandra",
        name: "cassandra ONE",
        file: "cassandra.toml",
        select: Select::KeySegment("one"),
        counted: CountedReads::All,
        textbook_cap: "AP",
        textbook_pacelc: "PA/EL",
        textbook_why: "Dynamo-style: any one replica answers; hinted handoff and read repair converge later",
        pacelc: None,
    },
    Configuration {
        system: "cassandra",
        name: "cassandra QUORUM",
        file: "cassandra.toml",
        select: Select::KeySegment("quorum"),
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "QUORUM reads and writes overlap in a majority of replicas (R + W > RF)",
        pacelc: None,
    },
    Configuration {
        system: "mariadb",
        name: "mariadb semi-sync",
        file: "mariadb-semisync.toml",
        select: Select::All,
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "semi-synchronous replication: a commit waits for a replica's acknowledgement",
        pacelc: None,
    },
    Configuration {
        system: "mariadb",
        name: "mariadb async",
        file: "mariadb-async.toml",
        select: Select::All,
        counted: CountedReads::Strongest,
        textbook_cap: "AP",
        textbook_pacelc: "PA/EL",
        textbook_why: "asynchronous replication: the primary commits alone; a failover loses what it had not shipped",
        pacelc: None,
    },
    Configuration {
        system: "kafka",
        name: "kafka acks=all",
        file: "kafka.toml",
        select: Select::WriteValueContains("-acksall-"),
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "a record is acknowledged once every in-sync replica has it",
        pacelc: Some(PacelcExperiment {
            file: "kafka-pacelc.toml",
            classes: &["acks=all"],
        }),
    },
    Configuration {
        system: "kafka",
        name: "kafka acks=1",
        file: "kafka.toml",
        select: Select::WriteValueContains("-acks1-"),
        counted: CountedReads::Strongest,
        textbook_cap: "CP",
        textbook_pacelc: "PC/EC",
        textbook_why: "Kafka is filed as CP (a leader-based replicated log), whatever the producer's acks",
        pacelc: Some(PacelcExperiment {
            file: "kafka-pacelc.toml",
            classes: &["acks=1"],
        }),
    },
];

/// The configurations of the named systems (every one when `systems` is empty), or an
/// error naming the unknown system and the known ones.
pub fn select(systems: &[String]) -> Result<Vec<&'static Configuration>, String> {
    for s in systems {
        if !CATALOGUE.iter().any(|c| c.system == s) {
            let mut known: Vec<&str> = CATALOGUE.iter().map(|c| c.system).collect();
            known.dedup();
            return Err(format!(
                "unknown system {s:?} (the cap map knows: {})",
                known.join(", ")
            ));
        }
    }
    Ok(CATALOGUE
        .iter()
        .filter(|c| systems.is_empty() || systems.iter().any(|s| s == c.system))
        .collect())
}

/// A measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub system: String,
    pub configuration: String,
    pub textbook_cap: String,
    pub textbook_pacelc: String,
    pub textbook_why: String,
    /// `None` when the run did not complete (see `error`).
    pub measured: Option<Classification>,
    /// PACELC as measured: the partition half from this run; the else half only when a
    /// PACELC experiment was measured for the system, `?` otherwise.
    pub measured_pacelc: String,
    /// The else half and its evidence, when the PACELC experiment ran.
    pub else_half: Option<ElseHalf>,
    pub evidence: Option<Evidence>,
    pub report_dir: PathBuf,
    pub error: Option<String>,
}

impl Row {
    /// The row of `config` judged from `history` (the run's `history.jsonl`).
    pub fn measure(config: &Configuration, history: &History, report_dir: PathBuf) -> Row {
        let ev = evidence(history, config.select);
        let measured = classify(&ev, config.counted);
        Row {
            measured_pacelc: format!("{}/?", measured.cap.pacelc_partition()),
            measured: Some(measured),
            evidence: Some(ev),
            ..Row::unmeasured(config, report_dir, None)
        }
    }

    /// A row whose run failed.
    pub fn unmeasured(config: &Configuration, report_dir: PathBuf, error: Option<String>) -> Row {
        Row {
            system: config.system.to_string(),
            configuration: config.name.to_string(),
            textbook_cap: config.textbook_cap.to_string(),
            textbook_pacelc: config.textbook_pacelc.to_string(),
            textbook_why: config.textbook_why.to_string(),
            measured: None,
            measured_pacelc: "?".into(),
            else_half: None,
            evidence: None,
            report_dir,
            error,
        }
    }

    /// Sets the else half from a finished PACELC run of the row's system.
    pub fn set_else_half(&mut self, half: ElseHalf) {
        let partition = self
            .measured
            .as_ref()
            .map_or("?", |m| m.cap.pacelc_partition());
        self.measured_pacelc = format!("{partition}/{}", half.label);
        self.else_half = Some(half);
    }

    /// The measured CAP label, `error` when the run failed.
    pub fn label(&self) -> &'static str {
        self.measured.as_ref().map_or("error", |m| m.cap.name())
    }
}
