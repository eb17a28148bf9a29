//! The event log: every change to the link matrix (apply, expire, heal, source
//! registration) as one JSON object per line, with wall-clock timestamps. Kept in a
//! bounded ring for `GET /events` and appended to a JSONL file when configured.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

const RING: usize = 1000;

pub struct EventLog {
    inner: Mutex<Inner>,
}

struct Inner {
    ring: VecDeque<Value>,
    next_seq: u64,
    file: Option<File>,
}

impl EventLog {
    pub fn new(path: Option<&Path>) -> std::io::Result<EventLog> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(EventLog {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                next_seq: 1,
                file,
            }),
        })
    }

    /// Records `event` with extra `fields`; returns the stored object.
    pub fn record(&self, event: &str, fields: Value) -> Value {
        let now = SystemTime::now();
        let mut inner = crate::control::sync::lock(&self.inner);
        let mut entry = json!({
            "seq": inner.next_seq,
            "ts": humantime::format_rfc3339_millis(now).to_string(),
            "ts_unix_ms": now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            "event": event,
        });
        if let (Value::Object(map), Value::Object(extra)) = (&mut entry, fields) {
            map.extend(extra);
        }
        inner.next_seq += 1;
        if let Some(file) = inner.file.as_mut() {
            let line = format!("{entry}\n");
            if let Err(error) = file.write_all(line.as_bytes()) {
                tracing::warn!(%error, "cannot append to the event log file");
            }
        }
        inner.ring.push_back(entry.clone());
        if inner.ring.len() > RING {
            inner.ring.pop_front();
        }
        entry
    }

    /// Events with a sequence number greater than `after`.
    pub fn since(&self, after: u64) -> Vec<Value> {
        let inner = crate::control::sync::lock(&self.inner);
        inner
            .ring
            .iter()
            .filter(|e| e["seq"].as_u64().unwrap_or(0) > after)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sequenced_and_written_as_jsonl() {
        let dir = std::env::temp_dir().join(format!("rift-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let log = EventLog::new(Some(&path)).unwrap();
        log.record("apply", json!({"id": 1}));
        log.record("heal", json!({}));
        assert_eq!(log.since(1).len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "apply");
        assert_eq!(lines[0]["id"], 1);
        assert_eq!(lines[1]["seq"], 2);
        assert!(lines[1]["ts"].as_str().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
