//! `history.jsonl` on disk: one entry a line, read back with errors that name the
//! line and the field.

use std::io::{BufRead, Write};

use serde_json::Value;
use thiserror::Error;

use crate::{Entry, History, NemesisOp, Observation, Op, PhaseMark};

/// Longest line accepted; a longer one is refused, not buffered without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("{origin}: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {reason}")]
    Line {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// Reads a history written by [`write_jsonl`] (or by another tool using the same
/// fields). Blank lines are skipped; `origin` names the source in errors.
pub fn read_jsonl(reader: impl BufRead, origin: &str) -> Result<History, HistoryError> {
    let mut entries = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line_no = number + 1;
        let line = line.map_err(|source| HistoryError::Io {
            origin: origin.to_string(),
            source,
        })?;
        let fail = |reason: String| HistoryError::Line {
            origin: origin.to_string(),
            line: line_no,
            reason,
        };
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(format!(
                "line is {} bytes, over the limit of {MAX_LINE_BYTES}",
                line.len()
            )));
        }
        if line.trim().is_empty() {
            continue;
        }
        let entry = parse_entry(&line).map_err(fail)?;
        entries.push(entry);
    }
    Ok(History::new(entries))
}

fn parse_entry(line: &str) -> Result<Entry, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = &value else {
        return Err("expected a JSON object".to_string());
    };
    let kind = if map.contains_key("phase") {
        "phase mark"
    } else if map.contains_key("observation") {
        "observation"
    } else if map.get("process") == Some(&Value::String("nemesis".into())) {
        "nemesis operation"
    } else if map.contains_key("process") {
        "client operation"
    } else {
        return Err(
            "not a history entry: no `process`, `observation` or `phase` field".to_string(),
        );
    };
    let parsed = match kind {
        "phase mark" => serde_json::from_value::<PhaseMark>(value).map(Entry::Phase),
        "observation" => serde_json::from_value::<Observation>(value).map(Entry::Observation),
        "nemesis operation" => serde_json::from_value::<NemesisOp>(value).map(Entry::Nemesis),
        _ => serde_json::from_value::<Op>(value).map(Entry::Op),
    };
    parsed.map_err(|e| format!("{kind}: {e}"))
}

/// Writes one entry a line.
pub fn write_jsonl(history: &History, mut out: impl Write) -> std::io::Result<()> {
    for entry in &history.entries {
        serde_json::to_writer(&mut out, entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
