//! Jepsen's etcd register logs, read into a [`History`] so that histories recorded by
//! Jepsen can be judged by the same checker.
//!
//! A history line looks like `INFO  jepsen.util - 3 :invoke :cas [4 1]`: the process,
//! the type (`:invoke`, `:ok`, `:fail`, `:info`), `f` (`:read`, `:write`, `:cas`) and the
//! value (`nil`, an integer, `[a b]`), separated by tabs or runs of spaces. A completion
//! whose value is a keyword such as `:timed-out` is indeterminate (`info`) for a write or
//! a cas and `fail` for a read, which observed nothing. `:nemesis` lines become nemesis
//! operations (Jepsen logs each as two `:info` lines: the invocation, then the result).
//! Every other line is ignored. Times are line numbers: the log has no clock, only order.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Value, json};
use thiserror::Error;

use crate::read::MAX_LINE_BYTES;
use crate::{Entry, History, NemesisOp, Op, OpType};

#[derive(Debug, Error)]
pub enum JepsenError {
    #[error("{origin}: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: field `{field}`: {reason}")]
    Line {
        origin: String,
        line: usize,
        field: &'static str,
        reason: String,
    },
}

/// A parsed log: the history and, for each entry, the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct JepsenLog {
    pub history: History,
    pub lines: Vec<usize>,
}

enum Parsed {
    Null,
    Int(i64),
    Pair(Value, Value),
    Keyword(String),
}

fn parse_scalar(s: &str) -> Option<Value> {
    match s {
        "nil" => Some(Value::Null),
        _ => s.parse::<i64>().ok().map(Value::from),
    }
}

fn parse_value(s: &str) -> Result<Parsed, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let parts: Vec<&str> = inner.split_whitespace().collect();
        return match parts.as_slice() {
            [a, b] => match (parse_scalar(a), parse_scalar(b)) {
                (Some(a), Some(b)) => Ok(Parsed::Pair(a, b)),
                _ => Err(format!("expected [a b] of integers or nil, got {s:?}")),
            },
            _ => Err(format!("expected two values in {s:?}")),
        };
    }
    if let Some(keyword) = s.strip_prefix(':') {
        return Ok(Parsed::Keyword(keyword.to_string()));
    }
    match parse_scalar(s) {
        Some(Value::Null) => Ok(Parsed::Null),
        Some(v) => Ok(Parsed::Int(v.as_i64().unwrap_or_default())),
        None => Err(format!(
            "expected nil, an integer, [a b] or a :keyword, got {s:?}"
        )),
    }
}

/// The fields after `jepsen.util -`, or `None` for a line that is not a history line.
fn fields(line: &str) -> Option<(&str, &str)> {
    let at = line.find("jepsen.util")?;
    let rest = line[at + "jepsen.util".len()..].trim_start();
    let rest = rest.strip_prefix('-')?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let (process, tail) = rest.split_once([' ', '\t'])?;
    let is_history = process == ":nemesis" || process.bytes().all(|b| b.is_ascii_digit());
    is_history.then_some((process, tail.trim_start()))
}

fn split_token(s: &str) -> (&str, &str) {
    match s.split_once([' ', '\t']) {
        Some((token, rest)) => (token, rest.trim_start()),
        None => (s, ""),
    }
}

struct OpenOp {
    f: String,
    value: Value,
}

/// Reads a Jepsen register log; `origin` names the source in errors.
pub fn read_jepsen(reader: impl BufRead, origin: &str) -> Result<JepsenLog, JepsenError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut open: HashMap<u64, OpenOp> = HashMap::new();
    let mut nemesis_open: HashMap<String, usize> = HashMap::new();
    for (number, line) in reader.lines().enumerate() {
        let line_no = number + 1;
        let line = line.map_err(|source| JepsenError::Io {
            origin: origin.to_string(),
            source,
        })?;
        let fail = |field: &'static str, reason: String| JepsenError::Line {
            origin: origin.to_string(),
            line: line_no,
            field,
            reason,
        };
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(
                "line",
                format!("{} bytes, over the limit of {MAX_LINE_BYTES}", line.len()),
            ));
        }
        let Some((process, rest)) = fields(&line) else {
            continue;
        };
        let (kind, rest) = split_token(rest);
        let (f, value) = split_token(rest);
        let r#type = match kind {
            ":invoke" => OpType::Invoke,
            ":ok" => OpType::Ok,
            ":fail" => OpType::Fail,
            ":info" => OpType::Info,
            other => {
                return Err(fail(
                    "type",
                    format!("expected :invoke, :ok, :fail or :info, got {other:?}"),
                ));
            }
        };
        let Some(f) = f.strip_prefix(':').filter(|f| !f.is_empty()) else {
            return Err(fail("f", format!("expected a :keyword, got {f:?}")));
        };
        let time = line_no as u64;
        if process == ":nemesis" {
            if let Some(invoked) = nemesis_open.remove(f) {
                let value = if value == "nil" || value.is_empty() {
                    Value::Null
                } else {
                    Value::String(value.to_string())
                };
                entries.push(Entry::Nemesis(NemesisOp::new(
                    invoked as u64,
                    time,
                    f,
                    value,
                )));
                lines.push(line_no);
            } else {
                nemesis_open.insert(f.to_string(), line_no);
            }
            continue;
        }
        let process: u64 = process
            .parse()
            .map_err(|_| fail("process", format!("{process:?} is not a process number")))?;
        if !matches!(f, "read" | "write" | "cas") {
            return Err(fail(
                "f",
                format!("the register log knows :read, :write and :cas, not :{f}"),
            ));
        }
        let parsed = parse_value(value).map_err(|reason| fail("value", reason))?;
        let op = if r#type == OpType::Invoke {
            let value = match (f, parsed) {
                ("read", Parsed::Null) => Value::Null,
                ("write", Parsed::Int(v)) => json!(v),
                ("write", Parsed::Null) => Value::Null,
                ("cas", Parsed::Pair(a, b)) => json!([a, b]),
                (_, _) => {
                    return Err(fail(
                        "value",
                        format!("{value:?} is not a value a :{f} is invoked with"),
                    ));
                }
            };
            if open.contains_key(&process) {
                return Err(fail(
                    "process",
                    format!("process {process} invokes again before its last operation completed"),
                ));
            }
            open.insert(
                process,
                OpenOp {
                    f: f.to_string(),
                    value: value.clone(),
                },
            );
            Op::invoke(time, process, f, None, value)
        } else {
            let Some(invoked) = open.remove(&process) else {
                return Err(fail(
                    "process",
                    format!("process {process} completes an operation it never invoked"),
                ));
            };
            if invoked.f != f {
                return Err(fail(
                    "f",
                    format!(":{f} completes process {process}'s :{}", invoked.f),
                ));
            }
            let mut done = Op::invoke(time, process, f, None, invoked.value.clone());
            match parsed {
                Parsed::Keyword(word) => {
                    // A read that timed out observed nothing; a write or cas that timed
                    // out may still take effect.
                    done.r#type = if f == "read" {
                        OpType::Fail
                    } else {
                        OpType::Info
                    };
                    if f == "read" {
                        done.value = Value::Null;
                    }
                    done.error = Some(word);
                }
                Parsed::Null if f == "read" => {
                    done.r#type = r#type;
                    done.value = Value::Null;
                }
                Parsed::Int(v) if f == "read" => {
                    done.r#type = r#type;
                    done.value = json!(v);
                }
                _ if f == "read" => {
                    return Err(fail(
                        "value",
                        format!("a :read returns nil or an integer, not {value:?}"),
                    ));
                }
                _ => done.r#type = r#type,
            }
            done
        };
        entries.push(Entry::Op(op));
        lines.push(line_no);
    }
    // A nemesis operation with no second line still happened: it ends where it began.
    let mut dangling: Vec<(String, usize)> = nemesis_open.into_iter().collect();
    dangling.sort_by_key(|(_, line)| *line);
    for (f, line) in dangling {
        entries.push(Entry::Nemesis(NemesisOp::new(
            line as u64,
            line as u64,
            &f,
            Value::Null,
        )));
        lines.push(line);
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        match entry {
            Entry::Op(op) => op.index = i,
            Entry::Nemesis(op) => op.index = i,
            _ => {}
        }
    }
    Ok(JepsenLog {
        history: History::new(entries),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::{self, Verdict};

    const LOG: &str = "\
2017-03-01 12:00:00,000{GMT}\tINFO\t[main] jepsen.core - Running test
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:write\t3
INFO  jepsen.util - 0\t:ok\t:read\tnil
INFO  jepsen.util - :nemesis\t:info\t:start\tnil
INFO  jepsen.util - 1   :ok     :write  3
INFO  jepsen.util - 2\t:invoke\t:cas\t[3 4]
INFO  jepsen.util - :nemesis\t:info\t:start\t\"Cut off {:n1 #{:n4 :n5}}\"
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 0\t:fail\t:read\t:timed-out
INFO  jepsen.util - 2\t:info\t:cas\t:timed-out
INFO  jepsen.util - 7\t:invoke\t:read\tnil
INFO  jepsen.util - 7\t:ok\t:read\t4
INFO  jepsen.util - 3\t:invoke\t:write\t-1
";

    #[test]
    fn reads_operations_timeouts_and_nemesis_lines() {
        let log = read_jepsen(LOG.as_bytes(), "etcd.log").unwrap();
        let ops: Vec<&Op> = log.history.ops().collect();
        assert_eq!(ops.len(), 11);
        assert_eq!(log.lines.len(), log.history.entries.len());
        assert_eq!(ops[1].value, json!(3));
        assert_eq!((ops[0].time, ops[0].process), (2, 0));
        // The write's completion used runs of spaces.
        assert_eq!(ops[3].r#type, OpType::Ok);
        assert_eq!(ops[4].value, json!([3, 4]));
        // A timed-out read observed nothing; a timed-out cas may have applied.
        assert_eq!(
            (ops[6].r#type, ops[6].error.as_deref()),
            (OpType::Fail, Some("timed-out"))
        );
        assert_eq!(ops[7].r#type, OpType::Info);
        assert_eq!(ops[7].value, json!([3, 4]));
        assert_eq!(ops[10].value, json!(-1));
        let nemesis: Vec<&NemesisOp> = log.history.nemesis().collect();
        assert_eq!(nemesis.len(), 1);
        assert_eq!((nemesis[0].invoked, nemesis[0].time), (5, 8));
        // The cas that timed out took effect: 4 is read later.
        let report = linear::check(&log.history, &linear::Options::default()).unwrap();
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    }

    #[test]
    fn a_read_of_a_value_never_written_fails_the_check() {
        let log = format!(
            "{LOG}INFO  jepsen.util - 8\t:invoke\t:read\tnil\nINFO  jepsen.util - 8\t:ok\t:read\t3\n"
        );
        let log = read_jepsen(log.as_bytes(), "etcd.log").unwrap();
        let report = linear::check(&log.history, &linear::Options::default()).unwrap();
        assert_eq!(report.verdict, Verdict::Fail);
        let f = report.keys[0].failure.as_ref().unwrap();
        assert_eq!(
            (f.stuck.process, f.stuck.describe.as_str()),
            (8, "read → 3")
        );
        assert_eq!(log.lines[f.stuck.entry], 15);
    }

    fn error(text: &str) -> (usize, &'static str, String) {
        match read_jepsen(text.as_bytes(), "x.log").unwrap_err() {
            JepsenError::Line {
                line,
                field,
                reason,
                ..
            } => (line, field, reason),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn malformed_lines_name_line_and_field() {
        let (line, field, _) = error("hello\nINFO  jepsen.util - 1\t:invoke\t:incr\t1\n");
        assert_eq!((line, field), (2, "f"));
        let (line, field, reason) = error("INFO  jepsen.util - 1\t:invoke\t:cas\t[1]\n");
        assert_eq!((line, field), (1, "value"));
        assert!(reason.contains("[1]"), "{reason}");
        let (line, field, _) = error("INFO  jepsen.util - 1\t:done\t:read\tnil\n");
        assert_eq!((line, field), (1, "type"));
        let (line, field, _) = error("\n\nINFO  jepsen.util - 4\t:ok\t:read\t2\n");
        assert_eq!((line, field), (3, "process"));
        let (line, field, _) = error(
            "INFO  jepsen.util - 4\t:invoke\t:read\tnil\nINFO  jepsen.util - 4\t:ok\t:write\t2\n",
        );
        assert_eq!((line, field), (2, "f"));
        let (line, field, _) = error("INFO  jepsen.util - 4\t:invoke\t:write\tseven\n");
        assert_eq!((line, field), (1, "value"));
        // Other jepsen.util messages are not history lines.
        let log = read_jepsen("INFO  jepsen.util - Waiting for nodes\n".as_bytes(), "x").unwrap();
        assert!(log.history.entries.is_empty());
    }
}
