//! `rift controller` and `rift agent` as processes, driven by the unchanged commands:
//! an agent killed with SIGKILL during a fault makes `rift heal` fail naming it and
//! the versions the others hold; restarted, it holds the fault, and the heal lands.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rift(api: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rift"))
        .args(args)
        .env("RIFT_API", api)
        .env_remove("RIFT_TOKEN")
        .env_remove("RIFT_TOKEN_FILE")
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

fn spawn(args: &[&str], log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    Process(
        Command::new(env!("CARGO_BIN_EXE_rift"))
            .args(args)
            .env_remove("RIFT_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn wait_for_port(address: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_json(api: &str) -> serde_json::Value {
    let out = rift(api, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_agent_killed_during_a_fault_is_named_restarts_holding_it_and_heals() {
    let dir = std::env::temp_dir().join(format!("rift-cli-multihost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let api = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = upstream.local_addr().unwrap();
    let mut text_topology = format!("[api]\nlisten = \"{api}\"\n");
    let mut agent_apis = Vec::new();
    for n in 1..=3 {
        let ip = format!("127.0.1.{n}");
        let agent_api = format!("{ip}:{}", free_port(&ip));
        text_topology.push_str(&format!(
            "[[agent]]\nname = \"h{n}\"\napi = \"{agent_api}\"\nnodes = [\"n{n}\"]\n"
        ));
        agent_apis.push(agent_api);
    }
    for n in 1..=3 {
        let ip = format!("127.0.1.{n}");
        text_topology.push_str(&format!(
            "[[node]]\nname = \"n{n}\"\nsource_ips = [\"{ip}\"]\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"{ip}:{}\"\nupstream = \"{upstream}\"\n",
            free_port(&ip)
        ));
    }
    let topology: PathBuf = dir.join("cluster.toml");
    std::fs::write(&topology, text_topology).unwrap();
    let url = format!("http://{api}");
    let _controller = spawn(
        &["controller", "--topology", topology.to_str().unwrap()],
        &dir.join("controller.log"),
    );
    wait_for_port(&api, "the controller");
    let start_agent = |n: usize| {
        let agent = spawn(
            &["agent", "--name", &format!("h{n}"), "--controller", &url],
            &dir.join(format!("agent{n}.log")),
        );
        wait_for_port(&agent_apis[n - 1], "an agent");
        agent
    };
    let mut agents: Vec<Option<Process>> = (1..=3).map(|n| Some(start_agent(n))).collect();

    let out = rift(&url, &["isolate", "n2"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = status_json(&url);
    let version = status["version"].as_u64().unwrap();
    assert_eq!(status["cluster"]["converged"], true, "{status}");

    // SIGKILL h2 while n2 is isolated.
    let mut h2 = agents[1].take().unwrap();
    h2.0.kill().unwrap();
    h2.0.wait().unwrap();
    let out = rift(&url, &["heal"]);
    assert!(
        !out.status.success(),
        "heal must not claim success: {}",
        text(&out)
    );
    let message = text(&out);
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("h2 is unreachable"), "{message}");
    assert!(
        message.contains(&format!("h1 holds version {version}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("h3 holds version {version}")),
        "{message}"
    );
    let out = rift(&url, &["status"]);
    assert!(
        text(&out).contains("NOT every agent holds it"),
        "{}",
        text(&out)
    );

    // Restarted, h2 holds the isolation (what h1 and h3 still hold) ...
    agents[1] = Some(start_agent(2));
    // Its first switch, made before it accepted anything, was to the faulted version.
    let events = rift(&format!("http://{}", agent_apis[1]), &["events"]);
    let first_switch: serde_json::Value = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "switch")
        .expect("a switch event");
    assert_eq!(
        first_switch["version"].as_u64(),
        Some(version),
        "{first_switch}"
    );
    assert_eq!(
        first_switch["faults"].as_array().map(Vec::len),
        Some(1),
        "{first_switch}"
    );
    // ... then the heal reaches every agent.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_json(&url);
        if status["cluster"]["converged"] == true {
            assert!(status["faults"].as_array().unwrap().is_empty());
            assert!(status["cluster"]["version"].as_u64().unwrap() > version);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the heal did not converge: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for api in &agent_apis {
        let on_agent = rift(&format!("http://{api}"), &["status", "--json"]);
        let on_agent: serde_json::Value = serde_json::from_slice(&on_agent.stdout).unwrap();
        assert!(
            on_agent["faults"].as_array().unwrap().is_empty(),
            "{on_agent}"
        );
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&dir);
}
