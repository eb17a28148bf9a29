//! `rift history check --html` in a real browser: Debian's chromium, headless, loads
//! the page from disk, and the test reads back what the page's script drew (the
//! `#summary` data attributes and the drawn elements in the DOM) and every console
//! message the browser logged. chromium is installed by scripts/setup.d/60-browser.sh;
//! a missing browser fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rift-html-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rift"))
        .args(args)
        .output()
        .expect("run rift")
}

/// What the browser saw: the DOM after the scripts ran and its console lines.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

fn load_in_chromium(page: &Path, work: &Path) -> Loaded {
    let browser = std::env::var("RIFT_CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let profile = work.join("chromium-profile");
    let output = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {browser} ({e}): scripts/setup.sh installs it (60-browser.sh)")
        });
    assert!(
        output.status.success(),
        "{browser} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

fn attr(dom: &str, name: &str) -> String {
    let start = dom.find("id=\"summary\"").expect("summary element");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[at..at + tag[at..].find('"').unwrap()].to_string()
}

/// A linearizable two-key history: 4 processes, 120 operations (some failed, some
/// indeterminate, one never completed), two fault windows, three members polled.
fn recorded_history() -> String {
    let mut lines = vec![json!({"index": 0, "time": 0, "phase": "baseline"})];
    let mut state = [None::<i64>, None];
    let mut t: u64 = 1_000_000;
    for n in 0..120u64 {
        let next_value = n as i64 + 1;
        let process = n % 4;
        let key = (n / 4 % 2) as usize;
        let key_name = ["a", "b"][key];
        let (f, invoke_value, done_value, outcome) = match n % 5 {
            0 | 3 => ("read", json!(null), json!(state[key]), "ok"),
            4 if n % 3 == 0 => ("write", json!(next_value), json!(next_value), "fail"),
            _ => {
                let v = next_value;
                let outcome = if n % 7 == 1 { "info" } else { "ok" };
                state[key] = Some(v);
                ("write", json!(v), json!(v), outcome)
            }
        };
        let node = format!("n{}", process % 3 + 1);
        lines.push(
            json!({"time": t, "process": process, "type": "invoke", "f": f,
            "key": key_name, "value": invoke_value, "node": node}),
        );
        if n != 119 {
            lines.push(
                json!({"time": t + 400_000, "process": process, "type": outcome,
                "f": f, "key": key_name, "value": done_value, "node": node}),
            );
        }
        if n % 10 == 0 {
            for member in 1..=3 {
                let leader = if (30..70).contains(&n) { 2 } else { 1 };
                lines.push(json!({"time": t + 100, "started": t, "observation": "etcd-status",
                    "node": format!("n{member}"), "value": {"leader": format!("n{leader}"), "term": 2 + leader}}));
            }
        }
        for (at, f, id) in [
            (20, "start", 1),
            (45, "stop", 1),
            (80, "start", 2),
            (100, "stop", 2),
        ] {
            if n == at {
                lines.push(
                    json!({"time": t + 200, "invoked": t + 150, "process": "nemesis",
                    "type": "info", "f": f, "value": {"id": id, "profile": "leader-isolation"}}),
                );
            }
        }
        t += 1_000_000;
    }
    for (i, line) in lines.iter_mut().enumerate() {
        line["index"] = json!(i);
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn the_report_page_draws_every_operation_and_fault_window_without_console_errors() {
    let dir = temp_dir("recorded");
    let file = dir.join("history.jsonl");
    std::fs::write(&file, recorded_history()).unwrap();
    let page = dir.join("report.html");
    let out = rift(&[
        "history",
        "check",
        file.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS: linearizable"), "{text}");

    let loaded = load_in_chromium(&page, &dir);
    assert!(loaded.console.is_empty(), "console: {:#?}", loaded.console);
    assert_eq!(attr(&loaded.dom, "data-errors"), "0");
    assert_eq!(attr(&loaded.dom, "data-ops"), "120");
    assert_eq!(attr(&loaded.dom, "data-drawn-ops"), "120");
    assert_eq!(attr(&loaded.dom, "data-faults"), "2");
    assert_eq!(attr(&loaded.dom, "data-processes"), "4");
    assert_eq!(attr(&loaded.dom, "data-members"), "3");
    assert_eq!(attr(&loaded.dom, "data-verdict"), "PASS");
    // The script really drew them: one bar per operation, one shaded window per fault.
    assert_eq!(loaded.dom.matches("class=\"op ").count(), 120);
    assert_eq!(loaded.dom.matches("class=\"fault\"").count(), 2);
    assert!(
        loaded.dom.contains("class=\"op pending"),
        "the unfinished write is drawn"
    );
    assert!(loaded.dom.contains("leader-isolation"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_linearizable_jepsen_log_highlights_the_stuck_read_in_the_browser() {
    let dir = temp_dir("jepsen");
    let file = dir.join("etcd.log");
    std::fs::write(
        &file,
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
         INFO  jepsen.util - 0\t:ok\t:write\t1\n\
         INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
         INFO  jepsen.util - :nemesis\t:info\t:start\t\"Cut off {:n1 #{:n2 :n3}}\"\n\
         INFO  jepsen.util - 1\t:invoke\t:write\t2\n\
         INFO  jepsen.util - 1\t:ok\t:write\t2\n\
         INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
         INFO  jepsen.util - 2\t:ok\t:read\t1\n",
    )
    .unwrap();
    let page = dir.join("report.html");
    let out = rift(&[
        "history",
        "check",
        "--format",
        "jepsen",
        file.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("process 2 read → 1 (lines 7–8): it read 1, but the register holds 2"),
        "{text}"
    );

    let loaded = load_in_chromium(&page, &dir);
    assert!(loaded.console.is_empty(), "console: {:#?}", loaded.console);
    assert_eq!(attr(&loaded.dom, "data-verdict"), "FAIL");
    assert_eq!(attr(&loaded.dom, "data-ops"), "3");
    assert_eq!(attr(&loaded.dom, "data-faults"), "1");
    assert_eq!(
        loaded.dom.matches("class=\"op ok lin\"").count(),
        2,
        "the two writes linearized"
    );
    assert_eq!(
        loaded.dom.matches("class=\"op ok cand stuck\"").count(),
        1,
        "the stale read"
    );
    assert!(
        loaded
            .dom
            .contains("longest partial linearization (2 operations)")
    );
    assert!(loaded.dom.contains("it read 1, but the register holds 2"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_browser_harness_sees_console_errors() {
    // Control: a page that throws must be caught, or the checks above prove nothing.
    let dir = temp_dir("control");
    let page = dir.join("broken.html");
    std::fs::write(
        &page,
        "<html><body><script>throw new Error('broken page');</script></body></html>",
    )
    .unwrap();
    let loaded = load_in_chromium(&page, &dir);
    assert!(
        loaded
            .console
            .iter()
            .any(|l| l.contains("Uncaught Error: broken page")),
        "{:#?}",
        loaded.console
    );
    let _ = std::fs::remove_dir_all(&dir);
}
