//! Toxiproxy compatibility judged by a third party: the official Go client
//! (github.com/Shopify/toxiproxy/v2/client v2.12.0, tests/toxiproxy-go) drives a real
//! `rift toxiproxy` process, started with toxiproxy-server's single-dash flags,
//! through every endpoint and toxic and checks the effect on real traffic.
//! The Go module is fetched by scripts/setup.d/45-toxiproxy-go.sh; without Go this
//! test fails rather than skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `go` from PATH or Go's default install location.
fn go_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("go"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the Go toolchain is required for the Toxiproxy client test; run scripts/setup.sh (it installs nothing for Go itself: install Go 1.23+ on PATH or in /usr/local/go)")
        })
}

fn wait_for_api(port: u16, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("rift toxiproxy exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "rift toxiproxy did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn official_go_client_drives_rift_toxiproxy() {
    let go = go_binary();
    let port = free_port();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_rift"))
            .args([
                "toxiproxy",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rift toxiproxy"),
    );
    wait_for_api(port, &mut server);
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/toxiproxy-go");
    let output = Command::new(&go)
        .args(["test", "-count=1", "-v", "./..."])
        .current_dir(&module)
        .env("TOXIPROXY_URL", format!("http://127.0.0.1:{port}"))
        // Use the module cache filled by the installer; never switch toolchains.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=readonly")
        .output()
        .expect("run go test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "go test failed:\n{text}");
    // Every test of the suite ran (none skipped or filtered out).
    for name in [
        "TestVersionIsAtLeast212",
        "TestProxyEndpoints",
        "TestPopulateAndReset",
        "TestToxicEndpoints",
        "TestLatencyOnALiveConnection",
        "TestBandwidthLimitsAndRateZeroStallsThenReleases",
        "TestResetPeerResets",
        "TestTimeoutHoldsThenClosesOnRemoval",
        "TestLimitDataClosesAfterBytes",
        "TestSlicerAndSlowCloseKeepEveryByte",
    ] {
        assert!(
            text.contains(&format!("--- PASS: {name} ")),
            "{name} did not pass:\n{text}"
        );
    }
}
