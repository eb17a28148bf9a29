//! Restarts of a real `rift proxy` process: faults survive `kill -9` and SIGTERM (the
//! state file), keep their ids and expiry times, still act on the data plane, heal on
//! schedule; `rift heal` and `--heal-on-exit` clear them.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    dir: PathBuf,
    api: String,
    n3: SocketAddr,
    _upstream: TcpListener,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("rift-restart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let api = format!("127.0.0.1:{}", free_port());
        let mut text = format!("[api]\nlisten = \"{api}\"\n");
        let mut n3 = None;
        // n1 is identified by 127.0.0.1, so the test's own connections are n1's.
        for n in 1..=3 {
            let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            n3 = Some(listen);
            text.push_str(&format!(
                "[[node]]\nname = \"n{n}\"\nsource_ips = [\"127.0.0.{}\"]\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"{listen}\"\nupstream = \"{upstream_addr}\"\n",
                if n == 1 { 1 } else { n + 1 }
            ));
        }
        std::fs::write(dir.join("topology.toml"), text).unwrap();
        Setup {
            dir,
            api,
            n3: n3.unwrap(),
            _upstream: upstream,
        }
    }

    /// `rift proxy` with `extra` arguments, in the setup's directory, with relative paths
    /// so the command line is the same every time.
    fn start(&self, extra: &[&str]) -> Proxy {
        let child = Command::new(env!("CARGO_BIN_EXE_rift"))
            .args([
                "proxy",
                "--topology",
                "topology.toml",
                "--events",
                "events.jsonl",
            ])
            .args(extra)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proxy = Proxy(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.api).is_err() {
            assert!(Instant::now() < deadline, "rift proxy did not open its API");
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    fn rift(&self, args: &[&str]) -> Output {
        let url = format!("http://{}", self.api);
        let out = Command::new(env!("CARGO_BIN_EXE_rift"))
            .args(args)
            .args(["--api", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "rift {args:?}: {}", text(&out));
        out
    }

    fn faults(&self) -> Vec<Value> {
        let out = self.rift(&["status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        status["faults"].as_array().unwrap().clone()
    }

    fn state_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.dir.join(".rift/proxy")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sigterm(proxy: &mut Proxy) -> std::process::ExitStatus {
    let pid = proxy.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "rift proxy did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection from n1 (127.0.0.1) to n3's listener: `true` when rift resets it (the
/// restored `reset` fault acts on the data plane).
fn n1_to_n3_is_reset(n3: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(n3).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn unix(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

#[test]
fn faults_survive_kill_9_and_sigterm_and_heal_on_schedule() {
    let setup = Setup::new("kill");
    let mut proxy = setup.start(&[]);
    setup.rift(&["isolate", "n2", "--duration", "6s"]);
    setup.rift(&["partition", "--groups", "n1,n2", "n3", "--fault", "reset"]);
    let before = setup.faults();
    assert_eq!(before.len(), 2);
    assert!(n1_to_n3_is_reset(setup.n3));
    assert_eq!(
        setup.state_files().len(),
        1,
        "one state file for this command line"
    );

    // kill -9 in the middle of the fault, then the same command line again.
    proxy.0.kill().unwrap();
    proxy.0.wait().unwrap();
    let mut proxy = setup.start(&[]);
    let after = setup.faults();
    let key = |f: &Value| {
        (
            f["id"].clone(),
            f["label"].clone(),
            f["rules"].clone(),
            f["expires_at"].clone(),
        )
    };
    assert_eq!(
        after.iter().map(key).collect::<Vec<_>>(),
        before.iter().map(key).collect::<Vec<_>>(),
        "the restarted proxy has the same faults"
    );
    assert!(
        n1_to_n3_is_reset(setup.n3),
        "the restored fault acts on new connections"
    );

    // The isolation heals at its original expiry, not 6 s after the restart; the
    // partition has no expiry and stays.
    let expires = unix(before[0]["expires_at"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.faults().len() == 2 {
        assert!(
            Instant::now() < deadline,
            "the restored fault never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Never early; the file's times have millisecond resolution.
    assert!(SystemTime::now() + Duration::from_millis(1) >= expires);
    let left = setup.faults();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], before[1]["id"]);

    // SIGTERM: a clean exit that keeps the faults for the next start.
    let status = sigterm(&mut proxy);
    assert!(status.success(), "{status}");
    let _proxy = setup.start(&[]);
    assert_eq!(setup.faults().len(), 1);
    assert!(n1_to_n3_is_reset(setup.n3));

    // `rift heal` clears the state: nothing comes back after another kill -9.
    setup.rift(&["heal"]);
    assert!(setup.state_files().is_empty());
    drop(_proxy);
    let _proxy = setup.start(&[]);
    assert!(setup.faults().is_empty());
    assert!(!n1_to_n3_is_reset(setup.n3));

    let log = std::fs::read_to_string(setup.dir.join("events.jsonl")).unwrap();
    let restores: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "restore")
        .collect();
    assert_eq!(restores.len(), 2, "{log}");
    assert!(log.contains("\"event\":\"expire\""), "{log}");
}

#[test]
fn heal_on_exit_heals_before_a_clean_exit() {
    let setup = Setup::new("heal-on-exit");
    let mut proxy = setup.start(&["--heal-on-exit"]);
    setup.rift(&["partition", "--groups", "n1,n2", "n3", "--fault", "reset"]);
    assert_eq!(setup.state_files().len(), 1);
    let status = sigterm(&mut proxy);
    assert!(status.success(), "{status}");
    assert!(setup.state_files().is_empty());
    let _proxy = setup.start(&["--heal-on-exit"]);
    assert!(setup.faults().is_empty());
    let log = std::fs::read_to_string(setup.dir.join("events.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"heal\""), "{log}");
}
