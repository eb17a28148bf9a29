//! `rift history check` exit codes and messages: 0 linearizable, 1 not, 3 unknown
//! (budget), 2 bad input naming the file, line and field.

use std::path::PathBuf;
use std::process::{Command, Output};

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rift-history-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_rift"))
        .args(["history", "check"])
        .args(args)
        .output()
        .expect("run rift");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn op(index: usize, time: u64, process: u64, ty: &str, f: &str, value: &str) -> String {
    format!(
        "{{\"index\":{index},\"time\":{time},\"process\":{process},\"type\":\"{ty}\",\"f\":\"{f}\",\"key\":\"k\",\"value\":{value}}}\n"
    )
}

#[test]
fn exit_codes_follow_the_verdict() {
    let ok = [
        op(0, 1, 1, "invoke", "write", "3"),
        op(1, 2, 1, "ok", "write", "3"),
        op(2, 3, 2, "invoke", "read", "null"),
        op(3, 4, 2, "ok", "read", "3"),
    ]
    .concat();
    let file = temp_file("ok.jsonl", &ok);
    let (code, text) = check(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");

    let stale = ok.replace(
        "\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":3",
        "\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":null",
    );
    let file = temp_file("stale.jsonl", &stale);
    let (code, text) = check(&[file.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON report");
    assert_eq!(report["verdict"], "FAIL");
    assert_eq!(
        report["keys"][0]["failure"]["stuck"]["describe"],
        "read → null"
    );
    assert_eq!(report["keys"][0]["failure"]["stuck"]["index"], 2);

    // Thirty concurrent writes and a read of a value none of them wrote, no time to search.
    let mut hard = String::new();
    for p in 0..30u64 {
        hard += &op(0, 10, p, "invoke", "write", &p.to_string());
    }
    for p in 0..30u64 {
        hard += &op(0, 20, p, "ok", "write", &p.to_string());
    }
    hard += &op(0, 30, 99, "invoke", "read", "null");
    hard += &op(0, 40, 99, "ok", "read", "1000");
    let file = temp_file("hard.jsonl", &hard);
    let (code, text) = check(&[file.to_str().unwrap(), "--budget", "0s"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("UNKNOWN") && text.contains("budget"),
        "{text}"
    );
}

#[test]
fn bad_input_names_file_line_and_field() {
    let text = format!(
        "\n{}{}",
        op(0, 1, 1, "invoke", "write", "\"three\""),
        op(1, 2, 1, "ok", "write", "3")
    );
    let file = temp_file("bad.jsonl", &text);
    let (code, out) = check(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!("{}:2: field `value`", file.display())),
        "{out}"
    );

    let file = temp_file("notjson.jsonl", "{\"index\": 0,\n");
    let (code, out) = check(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("notjson.jsonl:1:"), "{out}");

    let file = temp_file("bad.log", "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 x]\n");
    let (code, out) = check(&["--format", "jepsen", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("bad.log:1: field `value`"), "{out}");

    let (code, out) = check(&["/nonexistent/history.jsonl"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/history.jsonl"), "{out}");
}
