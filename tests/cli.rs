//! The `rift` binary end to end: a real `rift proxy` process driven by the other
//! sub-commands, and the errors a user sees for bad input.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rift"))
        .args(args)
        .output()
        .expect("run rift")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rift-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_proxy(dir: &std::path::Path, api: &str) -> Proxy {
    let upstream = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let topology = dir.join("topology.toml");
    let mut text = format!("[api]\nlisten = \"{api}\"\n");
    for n in 1..=3 {
        text.push_str(&format!(
            "[[node]]\nname = \"n{n}\"\nsource_ips = [\"127.0.0.{}\"]\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.0.1:{}\"\nupstream = \"{upstream}\"\n",
            n + 1,
            free_port()
        ));
    }
    std::fs::write(&topology, text).unwrap();
    let events = dir.join("events.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_rift"))
        .args([
            "proxy",
            "--topology",
            topology.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ])
        // The proxy's state file (.rift/proxy/) goes in the test's directory.
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "rift proxy did not open its API");
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy
}

#[test]
fn help_teaches_the_commands() {
    let out = rift(&["--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for command in [
        "proxy",
        "partition",
        "isolate",
        "apply",
        "heal",
        "status",
        "profiles",
    ] {
        assert!(help.contains(command), "--help lacks {command}: {help}");
    }
    let help = text(&rift(&["proxy", "--help"]));
    assert!(help.contains("[[node.endpoint]]"), "{help}");
}

#[test]
fn profiles_are_listed_without_a_proxy() {
    let out = rift(&["profiles"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    for name in [
        "split",
        "minority-isolation",
        "two-vs-two",
        "bridge",
        "one-way",
        "majorities-ring",
        "flaky",
    ] {
        assert!(listing.contains(name), "{listing}");
    }
    let out = rift(&["profiles", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "two-vs-two" && p["kind"] == "two-vs-two")
    );
}

#[test]
fn bad_topology_names_the_file_and_field() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[node]]\nname = \"n1\"\nsorce_ips = []\n").unwrap();
    let out = rift(&["proxy", "--topology", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("bad.toml") && message.contains("sorce_ips"),
        "{message}"
    );
    let out = rift(&["proxy", "--topology", "/nonexistent/topology.toml"]);
    assert!(!out.status.success() && text(&out).contains("/nonexistent/topology.toml"));
    let profile = dir.join("p.toml");
    std::fs::write(
        &profile,
        "description = \"x\"\nkind = \"split\"\nminority = \"two\"\n",
    )
    .unwrap();
    let out = rift(&[
        "apply",
        profile.to_str().unwrap(),
        "--api",
        "http://127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("p.toml") && text(&out).contains("minority"),
        "{}",
        text(&out)
    );
}

#[test]
fn drive_a_running_proxy_from_the_cli() {
    let dir = temp_dir("drive");
    let api_addr = format!("127.0.0.1:{}", free_port());
    let api_url = format!("http://{api_addr}");
    let _proxy = start_proxy(&dir, &api_addr);
    let api = ["--api", api_url.as_str()];

    let out = rift(&[&["isolate", "n2", "--duration", "1h"][..], &api].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("n1,n3 | n2"), "{}", text(&out));

    let out = rift(&[&["status"][..], &api].concat());
    let table = text(&out);
    assert!(
        table.contains("FAULTS") && table.contains("isolate") && table.contains("hold"),
        "{table}"
    );

    let out = rift(&[&["status", "--json"][..], &api].concat());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["faults"].as_array().unwrap().len(), 1);

    let out = rift(
        &[
            &["partition", "--groups", "n1,n2", "n3", "--fault", "reset"][..],
            &api,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = rift(&[&["apply", "split", "--json"][..], &api].concat());
    let applied: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(applied["label"], "split");

    let out = rift(&[&["partition", "--groups", "n1,n2", "n4"][..], &api].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("n4"), "{}", text(&out));
    let out = rift(
        &[
            &["partition", "--groups", "n1", "n2,n3", "--fault", "drop"][..],
            &api,
        ]
        .concat(),
    );
    assert!(
        !out.status.success() && text(&out).contains("drop"),
        "{}",
        text(&out)
    );
    let out = rift(&[&["apply", "leader-isolation"][..], &api].concat());
    assert!(
        !out.status.success() && text(&out).contains("--set leader=NODE"),
        "{}",
        text(&out)
    );

    let out = rift(&[&["heal"][..], &api].concat());
    assert!(
        out.status.success() && text(&out).contains("healed 3"),
        "{}",
        text(&out)
    );
    let out = rift(&[&["heal"][..], &api].concat());
    assert!(
        out.status.success() && text(&out).contains("healed 0"),
        "{}",
        text(&out)
    );

    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["start", "apply", "apply", "apply", "heal", "heal"]);
}

#[test]
fn unreachable_api_says_how_to_fix_it() {
    let out = rift(&["status", "--api", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("rift proxy"), "{}", text(&out));
}

#[test]
fn an_unreachable_api_is_named_with_its_cause_once() {
    let api = format!("http://127.0.0.1:{}", free_port());
    let out = rift(&["status", "--api", &api]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!("cannot reach the rift control API at {api}")),
        "{all}"
    );
    assert!(all.contains("Connection refused"), "{all}");
    assert_eq!(all.matches("error sending request").count(), 1, "{all}");
}
