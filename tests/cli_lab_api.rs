//! Right after `rift lab up etcd`, commands that drive the proxy find the lab's control
//! API on their own: from the directory the lab was started in or any directory below
//! it, or through RIFT_LAB_DIR from elsewhere; `--api` and RIFT_API still win, and
//! `--verbose` says which API was used and why. Needs etcd (scripts/setup.sh installs
//! it); missing is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rift_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rift"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RIFT_API")
        .env_remove("RIFT_LAB_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run rift")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Brings the lab down (its state is under `root`) before removing `root`, on success
/// and on panic alike.
struct Lab(PathBuf);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = rift_in(&self.0, &["lab", "down"], &[]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn commands_use_the_running_labs_api_without_rift_api() {
    let root = std::env::temp_dir().join(format!("rift-cli-lab-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sub = root.join("work/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let lab = Lab(root.clone());
    let lab_dir = root.join(".rift/lab");

    // Before any lab: the default address, and --verbose says why.
    let o = rift_in(&sub, &["status", "--verbose"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(
            "control API http://127.0.0.1:7070 (the default: no --api, no RIFT_API and no lab in"
        ),
        "{}",
        text(&o)
    );

    let o = rift_in(&root, &["lab", "up", "etcd", "--nodes", "3"], &[]);
    assert!(
        o.status.success(),
        "lab up failed (run scripts/setup.sh to install etcd): {}",
        text(&o)
    );
    assert!(
        text(&o).contains("commands run in this directory (or below) use it"),
        "{}",
        text(&o)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&rift_in(&root, &["lab", "status", "--json"], &[]).stdout).unwrap();
    let api = status["api_url"].as_str().unwrap().to_string();
    assert_ne!(api, "http://127.0.0.1:7070");

    // From a sub-directory, with no RIFT_API: the lab's proxy is driven.
    let o = rift_in(&sub, &["isolate", "etcd1", "--verbose"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let expected = format!(
        "control API {api} (from the running lab in {})",
        lab_dir.display()
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&expected),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("applied fault 1"), "{}", text(&o));
    // Without --verbose nothing extra is printed.
    let o = rift_in(&sub, &["status", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["faults"].as_array().unwrap().len(), 1, "{st:#}");

    // From elsewhere, RIFT_LAB_DIR names the lab.
    let lab_dir_text = lab_dir.to_str().unwrap();
    let o = rift_in(
        &std::env::temp_dir(),
        &["heal", "--verbose"],
        &[("RIFT_LAB_DIR", lab_dir_text)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("healed 1 fault(s)"), "{}", text(&o));
    assert!(text(&o).contains("from the running lab in"), "{}", text(&o));

    // RIFT_API and --api win over the lab, and --verbose names the source.
    let o = rift_in(
        &sub,
        &["status", "--verbose"],
        &[("RIFT_API", "http://127.0.0.1:1")],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("control API http://127.0.0.1:1 (from RIFT_API)"),
        "{}",
        text(&o)
    );
    let o = rift_in(&sub, &["status", "--verbose", "--api", &api], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("(from --api)"), "{}", text(&o));

    // A lab whose proxy died is not used, and --verbose says why.
    let proxy_pid = std::fs::read_to_string(lab_dir.join("rift-proxy.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", proxy_pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = rift_in(&sub, &["status", "--verbose"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not usable (its proxy (pid"),
        "{}",
        text(&o)
    );
    drop(lab);
    assert!(!root.exists());
}
