//! `kind = "log"`: the Kafka log checker, a pure function of the recorded history. It
//! compares every `send` the producers saw acknowledged with the final `read` of each
//! partition (its whole log, `[[offset, value], ...]`, taken after the heal) and finds:
//!
//! - **lost**: an acknowledged record that is not in the log at the offset it was
//!   acknowledged with (absent, or found at another offset: both break the promise
//!   the acknowledgement made). acks=all losses FAIL; acks=1 losses are named as the
//!   truncated offsets, and FAIL only when `allow_acks1_loss = false`;
//! - **duplicated**: one record value at several offsets (a retried send appended
//!   twice): FAIL unless `allow_duplicates = true` (a producer without idempotence);
//! - **out of order**: one producer's acknowledged records in a partition at offsets
//!   that do not follow the order it sent them in: FAIL unless `allow_reorder = true`.
//!   A record whose send timed out may be appended later than records sent after it
//!   (the bytes were still on their way): named as appended late, not a failure;
//! - **offsets skipped or reused**: the log's offsets not contiguous (a hole), an
//!   offset read twice, or two acknowledged sends given the same offset: FAIL.
//!
//! Record values are rift's payloads, `<producer>-p<partition>-<seq>` (the producer
//! names its acks level: `-acksall`, `-acks1`), unique in the run. Without a final read
//! of a partition that has acknowledged sends, or without any send acknowledged while a
//! fault was in place, the verdict is UNKNOWN, never PASS.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rift_history::{History, OpType};
use serde::Deserialize;
use serde_json::Value;

use crate::kafka::ClusterInfo;
use crate::kafka::checks::loss::{NoLostConfig, NoLostDriver, no_lost};
use crate::scenario::Verdict;
use crate::scenario::check::HistoryCheck;
use crate::scenario::window::{fault_windows, last_time};

/// `[[checker]] kind = "log"` settings: the judgement's, then the producer's (the
/// no-lost-records driver: its own topic, an acks=all producer through rift for the
/// whole scenario, every partition read back once the ISR is full after the heal).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// acks=1 records lost in a truncation are expected (Kafka's acks=1 promises only
    /// the leader's append): named, but not a failure.
    #[serde(default = "yes")]
    pub allow_acks1_loss: bool,
    /// A record appended twice is expected (a producer without idempotence retried).
    #[serde(default)]
    pub allow_duplicates: bool,
    /// One producer's records out of send order are expected (no idempotence, several
    /// requests in flight).
    #[serde(default)]
    pub allow_reorder: bool,
    /// Topic name prefix (a run id is appended).
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_min_isr")]
    pub min_insync_replicas: u32,
    /// Gap between rounds of sends (one record per partition each round).
    #[serde(default = "default_interval", with = "crate::scenario::spec::dur")]
    pub interval: Duration,
    /// How long after the heal every replica may take to rejoin the ISR.
    #[serde(default = "default_recover", with = "crate::scenario::spec::dur")]
    pub recover_within: Duration,
    /// Create the topic with `unclean.leader.election.enable=true`.
    #[serde(default)]
    pub unclean_leader_election: bool,
}

fn yes() -> bool {
    true
}
fn default_partitions() -> i32 {
    3
}
fn default_min_isr() -> u32 {
    2
}
fn default_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_recover() -> Duration {
    Duration::from_secs(40)
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            allow_acks1_loss: true,
            allow_duplicates: false,
            allow_reorder: false,
            topic: None,
            partitions: default_partitions(),
            min_insync_replicas: default_min_isr(),
            interval: default_interval(),
            recover_within: default_recover(),
            unclean_leader_election: false,
        }
    }
}

/// The driver (no-lost-records' producer and final reads) and the log check of its
/// topic.
pub fn build(info: &ClusterInfo, cfg: LogConfig) -> (NoLostDriver, LogChecker) {
    let (driver, _) = no_lost::build(
        info,
        NoLostConfig {
            topic: Some(cfg.topic.clone().unwrap_or_else(|| "rift-log".to_string())),
            partitions: cfg.partitions,
            min_insync_replicas: cfg.min_insync_replicas,
            interval: cfg.interval,
            recover_within: cfg.recover_within,
            unclean_leader_election: cfg.unclean_leader_election,
        },
    );
    let check = LogChecker {
        topic: Some(driver.topic().to_string()),
        config: cfg,
    };
    (driver, check)
}

/// A record's producer, acks level and send sequence, parsed from its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    pub producer: String,
    pub acks_all: bool,
    pub seq: u64,
}

/// `<producer>-p<partition>-<seq>` → its parts; `None` for a value of another shape.
pub fn parse_record(value: &str) -> Option<RecordId> {
    let (rest, seq) = value.rsplit_once('-')?;
    let (producer, partition) = rest.rsplit_once('-')?;
    partition.strip_prefix('p')?.parse::<i32>().ok()?;
    Some(RecordId {
        producer: producer.to_string(),
        acks_all: !producer.contains("-acks1"),
        seq: seq.parse().ok()?,
    })
}

/// An acknowledged send.
#[derive(Debug, Clone)]
struct Acked {
    offset: i64,
    value: String,
    /// Acknowledged (its call-to-return interval) while a fault was in place.
    during_fault: bool,
}

/// What the judgement found, per kind, each entry one line of evidence.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    pub partitions: usize,
    pub acknowledged: usize,
    pub acknowledged_during_faults: usize,
    pub lost_acks_all: Vec<String>,
    /// `topic/partition offset value` of each lost acks=1 record.
    pub truncated_acks1: Vec<String>,
    pub duplicated: Vec<String>,
    pub reordered: Vec<String>,
    /// Records whose send was not acknowledged, appended after later ones.
    pub late: Vec<String>,
    pub offsets: Vec<String>,
    /// Partitions with acknowledged sends but no final read.
    pub unread: Vec<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The final log of a partition from a `read` completion: `[[offset, value], ...]`.
fn log_of(value: &Value) -> Option<Vec<(i64, String)>> {
    value
        .as_array()?
        .iter()
        .map(|r| {
            let pair = r.as_array()?;
            Some((pair.first()?.as_i64()?, text(pair.get(1)?)?))
        })
        .collect()
}

/// Judges every partition of `history` (of `topic` only, when given).
pub fn judge(history: &History, topic: Option<&str>) -> Findings {
    let windows = fault_windows(history);
    let last = last_time(history);
    let mut acked: BTreeMap<String, Vec<Acked>> = BTreeMap::new();
    let mut logs: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (inv, done) in history.pairs() {
        let (Some(done), Some(key)) = (done, inv.key.as_ref()) else {
            continue;
        };
        if let Some(t) = topic
            && key.rsplit_once('/').map(|(k, _)| k) != Some(t)
        {
            continue;
        }
        if done.r#type != OpType::Ok {
            continue;
        }
        match inv.f.as_str() {
            "send" => {
                let Some(pair) = done.value.as_array() else {
                    continue;
                };
                let (Some(offset), Some(value)) = (
                    pair.first().and_then(Value::as_i64),
                    pair.get(1).and_then(text),
                ) else {
                    continue;
                };
                let during_fault = windows
                    .iter()
                    .any(|w| inv.time < w.end_or(last) && done.time > w.start);
                acked.entry(key.clone()).or_default().push(Acked {
                    offset,
                    value,
                    during_fault,
                });
            }
            // The last complete read of a partition is its final log.
            "read" if key.contains('/') => {
                if let Some(log) = log_of(&done.value) {
                    logs.insert(key.clone(), log);
                }
            }
            _ => {}
        }
    }
    let mut f = Findings::default();
    for (key, sends) in &acked {
        f.partitions += 1;
        f.acknowledged += sends.len();
        f.acknowledged_during_faults += sends.iter().filter(|s| s.during_fault).count();
        let Some(log) = logs.get(key) else {
            f.unread.push(key.clone());
            continue;
        };
        judge_partition(key, sends, log, &mut f);
    }
    f
}

fn judge_partition(key: &str, sends: &[Acked], log: &[(i64, String)], f: &mut Findings) {
    let mut at: HashMap<i64, &str> = HashMap::new();
    let mut where_is: HashMap<&str, Vec<i64>> = HashMap::new();
    for (offset, value) in log {
        if at.insert(*offset, value).is_some() {
            f.offsets.push(format!("{key}: offset {offset} read twice"));
        }
        where_is.entry(value).or_default().push(*offset);
    }
    // Holes: a plain (non-transactional, uncompacted) log has consecutive offsets.
    for w in log.windows(2) {
        if w[1].0 > w[0].0 + 1 {
            f.offsets.push(format!(
                "{key}: offsets {}..{} skipped (between {:?} and {:?})",
                w[0].0 + 1,
                w[1].0 - 1,
                w[0].1,
                w[1].1
            ));
        }
    }
    let mut by_offset: HashMap<i64, &str> = HashMap::new();
    for s in sends {
        if let Some(other) = by_offset.insert(s.offset, &s.value)
            && other != s.value
        {
            f.offsets.push(format!(
                "{key}: offset {} acknowledged for both {other:?} and {:?}",
                s.offset, s.value
            ));
        }
        if at.get(&s.offset) == Some(&s.value.as_str()) {
            continue;
        }
        let found = match where_is.get(s.value.as_str()) {
            Some(offsets) => format!("found at offset {offsets:?} instead"),
            None => match at.get(&s.offset) {
                Some(v) => format!("offset {} now holds {v:?}", s.offset),
                None => format!("offset {} is not in the log", s.offset),
            },
        };
        let line = format!(
            "{key} offset {} {:?}{}: {found}",
            s.offset,
            s.value,
            if s.during_fault {
                " (acknowledged during a fault)"
            } else {
                ""
            }
        );
        match parse_record(&s.value) {
            Some(r) if !r.acks_all => f.truncated_acks1.push(line),
            _ => f.lost_acks_all.push(line),
        }
    }
    for (value, offsets) in &where_is {
        if offsets.len() > 1 {
            f.duplicated
                .push(format!("{key}: {value:?} at offsets {offsets:?}"));
        }
    }
    f.duplicated.sort();
    // Per producer, the acknowledged records' log order must be their send order. A
    // record whose send was indeterminate (a timeout) may legitimately be appended
    // late, after records sent after it: a producer without idempotence gives no
    // order to what it could not confirm, so such records are named, not judged.
    let acked_values: std::collections::HashSet<&str> =
        sends.iter().map(|s| s.value.as_str()).collect();
    let mut last_of: HashMap<String, (u64, i64)> = HashMap::new();
    for (offset, value) in log {
        let Some(r) = parse_record(value) else {
            continue;
        };
        if !acked_values.contains(value.as_str()) {
            if let Some((seq, prev)) = last_of.get(&r.producer)
                && r.seq < *seq
            {
                f.late.push(format!(
                    "{key}: {value:?} (not acknowledged) is at offset {offset}, after #{seq} at offset {prev}"
                ));
            }
            continue;
        }
        if let Some((seq, prev)) = last_of.get(&r.producer)
            && r.seq < *seq
        {
            f.reordered.push(format!(
                "{key}: producer {}'s #{} (sent before #{seq}) is at offset {offset}, after #{seq} at offset {prev}",
                r.producer, r.seq
            ));
        }
        let entry = last_of.entry(r.producer).or_insert((r.seq, *offset));
        if r.seq >= entry.0 {
            *entry = (r.seq, *offset);
        }
    }
}

pub struct LogChecker {
    /// The topic judged; every topic when `None`.
    topic: Option<String>,
    config: LogConfig,
}

impl LogChecker {
    pub fn new(topic: Option<String>, config: LogConfig) -> Self {
        LogChecker { topic, config }
    }
}

/// Evidence lines shown per kind before eliding the rest.
const SHOWN: usize = 10;

fn list(v: &mut Verdict, what: &str, lines: &[String]) {
    for l in lines.iter().take(SHOWN) {
        v.evidence(format!("{what}: {l}"));
    }
    if lines.len() > SHOWN {
        v.evidence(format!("{what}: ... and {} more", lines.len() - SHOWN));
    }
}

impl HistoryCheck for LogChecker {
    fn name(&self) -> String {
        "kafka-log".to_string()
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(&self.name());
        let f = judge(history, self.topic.as_deref());
        let c = &self.config;
        v.evidence(format!(
            "{} acknowledged sends on {} partition(s), {} of them while a fault was in place",
            f.acknowledged, f.partitions, f.acknowledged_during_faults
        ));
        list(&mut v, "lost (acks=all)", &f.lost_acks_all);
        list(&mut v, "truncated (acks=1)", &f.truncated_acks1);
        list(&mut v, "duplicated", &f.duplicated);
        list(&mut v, "out of order", &f.reordered);
        list(&mut v, "appended late (send not acknowledged)", &f.late);
        list(&mut v, "offsets", &f.offsets);
        if !f.lost_acks_all.is_empty() {
            v.fail(format!(
                "{} acknowledged acks=all record(s) lost: {}",
                f.lost_acks_all.len(),
                f.lost_acks_all[0]
            ));
        }
        if !f.truncated_acks1.is_empty() && !c.allow_acks1_loss {
            v.fail(format!(
                "{} acknowledged acks=1 record(s) truncated: {}",
                f.truncated_acks1.len(),
                f.truncated_acks1[0]
            ));
        }
        if !f.duplicated.is_empty() && !c.allow_duplicates {
            v.fail(format!(
                "{} record(s) duplicated: {}",
                f.duplicated.len(),
                f.duplicated[0]
            ));
        }
        if !f.reordered.is_empty() && !c.allow_reorder {
            v.fail(format!(
                "{} record(s) out of their producer's order: {}",
                f.reordered.len(),
                f.reordered[0]
            ));
        }
        if !f.offsets.is_empty() {
            v.fail(format!("offsets skipped or reused: {}", f.offsets[0]));
        }
        if !f.unread.is_empty() {
            v.unknown(format!(
                "no final read of {} with acknowledged sends",
                f.unread.join(", ")
            ));
        }
        if f.acknowledged == 0 {
            v.unknown("no send was acknowledged");
        } else if f.acknowledged_during_faults == 0 && !fault_windows(history).is_empty() {
            v.unknown("no send was acknowledged while a fault was in place");
        }
        v.pass(format!(
            "every acknowledged record is in the log at its offset, once, in its producer's \
             order ({} records, {} acks=1 truncated{})",
            f.acknowledged,
            f.truncated_acks1.len(),
            if f.truncated_acks1.is_empty() {
                ""
            } else {
                ", allowed"
            }
        ));
        v
    }
}

#[cfg(test)]
mod tests;
