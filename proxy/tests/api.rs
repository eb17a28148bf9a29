//! The control API over HTTP: answers under traffic and during faults, rejects bad
//! input with messages that name the field and value, auto-heals, logs events, and
//! identifies sources by IP and by owning process.

mod support;

use std::time::Duration;

use rift_proxy::client::{ApiClient, ClientError};
use rift_proxy::fault::{Fault, FaultRequest, LinkRule};
use rift_proxy::profile::Bindings;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn api_error(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn post_raw(url: &str, path: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_under_traffic_and_while_faults_are_active() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("busy1", None, vec![("peer", echo)]),
        node("busy2", Some("127.0.0.2"), vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    let addr = listen(&proxy, "busy1", "peer");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pumps = Vec::new();
    for source in ["127.0.0.1", "127.0.0.2"] {
        for _ in 0..4 {
            let stop = stop.clone();
            pumps.push(tokio::spawn(async move {
                let stream = connect_from(source, addr).await;
                let (mut r, mut w) = stream.into_split();
                let reader = tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
                });
                let chunk = vec![7u8; 65536];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                drop(w);
                reader.abort();
            }));
        }
    }
    let limit = Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::time::timeout(limit, api.status())
        .await
        .expect("status hangs under traffic")
        .unwrap();
    let moving: u64 = status.connections.iter().map(|c| c.bytes_forward).sum();
    assert!(
        moving > 0,
        "byte counters must move while connections are open: {status:?}"
    );
    // The metrics recorder is process-wide, so this test's node names are its own.
    // Cut the busy2-sourced connections, then keep asking.
    let cut = tokio::time::timeout(limit, api.isolate("busy2", None, vec![], None))
        .await
        .expect("apply hangs")
        .unwrap();
    assert_eq!(cut.summary, "busy1 | busy2");
    for _ in 0..5 {
        let status = tokio::time::timeout(limit, api.status())
            .await
            .expect("status hangs during a fault")
            .unwrap();
        assert_eq!(status.faults.len(), 1);
        assert!(
            status
                .links
                .iter()
                .any(|l| l.from == "busy2" && l.to == "busy1" && l.state == 1)
        );
    }
    let cells: Vec<serde_json::Value> = reqwest::get(format!("{}/links", proxy.api_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state = |from: &str, to: &str| {
        cells
            .iter()
            .find(|c| c["from"] == from && c["to"] == to)
            .map(|c| c["state"].as_u64().unwrap())
    };
    assert_eq!(
        cells.len(),
        6,
        "every directed pair of busy1, busy2, client"
    );
    assert_eq!(state("busy2", "busy1"), Some(1));
    assert_eq!(state("busy1", "busy2"), Some(1));
    assert_eq!(state("client", "busy1"), Some(0));
    let metrics = tokio::time::timeout(limit, api.metrics())
        .await
        .unwrap()
        .unwrap();
    assert!(metrics.contains("rift_bytes_total{"), "{metrics}");
    assert!(
        metrics.contains("rift_link_state{src=\"busy2\",dst=\"busy1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rift_relay_delay_seconds_bucket"),
        "histogram, not summary"
    );
    assert_eq!(
        tokio::time::timeout(limit, api.heal())
            .await
            .expect("heal hangs")
            .unwrap(),
        1
    );
    // Healing again is fine.
    assert_eq!(api.heal().await.unwrap(), 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pumps {
        let _ = tokio::time::timeout(limit, p).await;
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_field_and_value() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("n1", None, vec![("peer", echo)]),
        node("n2", None, vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    let (status, message) = api_error(
        api.partition(
            vec![vec!["n1".into()], vec!["n9".into()]],
            None,
            vec![],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.contains("groups") && message.contains("n9"),
        "{message}"
    );
    let (status, message) = api_error(api.isolate("nx", None, vec![], None).await).await;
    assert!(status == 400 && message.contains("\"nx\""), "{message}");
    let (status, message) =
        api_error(api.isolate("n1", None, vec!["raft".into()], None).await).await;
    assert!(status == 400 && message.contains("\"raft\""), "{message}");
    let (status, message) =
        api_error(api.apply_profile("nope", &Bindings::new(), None).await).await;
    assert!(
        status == 404 && message.contains("nope") && message.contains("split"),
        "{message}"
    );
    let (status, message) = api_error(
        api.apply_profile("leader-isolation", &Bindings::new(), None)
            .await,
    )
    .await;
    assert!(status == 400 && message.contains("leader"), "{message}");
    let (status, message) = api_error(
        api.apply_profile_toml(
            "mine",
            "kind = \"split\"\ndescription = \"x\"\nminorty = 1\n",
            &Bindings::new(),
            None,
        )
        .await,
    )
    .await;
    assert!(status == 400 && message.contains("minorty"), "{message}");
    let (status, message) = post_raw(
        &proxy.api_url(),
        "/faults",
        r#"{"rules":[{"from":"n1","to":"n2","fault":{"kind":"drop"}}]}"#,
    )
    .await;
    assert!(status == 400 && message.contains("drop"), "{message}");
    let (status, message) = post_raw(
        &proxy.api_url(),
        "/partition",
        r#"{"groups":[["n1"],["n2"]],"duration":"soon"}"#,
    )
    .await;
    assert!(status == 400 && message.contains("soon"), "{message}");
    let (status, message) = post_raw(
        &proxy.api_url(),
        "/isolate",
        r#"{"node":"n1","fualt":{"kind":"hold"}}"#,
    )
    .await;
    assert!(status == 400 && message.contains("fualt"), "{message}");
    let (status, _) = post_raw(&proxy.api_url(), "/heal", "not json").await;
    assert_eq!(status, 200, "heal takes no body");
    let (status, message) = api_error(api.register_source("n7", &[1], &[]).await).await;
    assert!(status == 400 && message.contains("n7"), "{message}");
    let (status, message) = api_error(api.heal_fault(99).await).await;
    assert!(status == 404 && message.contains("99"), "{message}");
    // Nothing was applied by any of that.
    assert!(api.status().await.unwrap().faults.is_empty());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_auto_heals_and_every_change_is_an_event() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("n1", None, vec![("peer", echo)]),
        node("n2", None, vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    let rules = vec![LinkRule {
        from: "n1".into(),
        to: "n2".into(),
        fault: Fault::Hold,
        endpoints: vec![],
    }];
    let applied = api
        .apply(&FaultRequest {
            label: "short".into(),
            rules,
            duration: Some(Duration::from_millis(300)),
        })
        .await
        .unwrap();
    assert!(applied.expires_at.is_some());
    assert_eq!(api.status().await.unwrap().faults.len(), 1);
    let mut bindings = Bindings::new();
    bindings.insert("target".into(), "n1".into());
    let long = api
        .apply_profile("minority-isolation", &bindings, None)
        .await
        .unwrap();
    eventually_async(&api).await;
    let status = api.status().await.unwrap();
    assert_eq!(status.faults.len(), 1, "only the timed fault expires");
    assert_eq!(status.faults[0].id, long.id);
    api.heal().await.unwrap();
    let events = api.events(0).await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["start", "apply", "apply", "expire", "heal"]);
    assert_eq!(events[2]["label"], "minority-isolation");
    assert!(events[1]["ts"].as_str().unwrap().contains('T'));
    proxy.shutdown().await;
}

async fn eventually_async(api: &ApiClient) {
    for _ in 0..300 {
        if api.status().await.unwrap().faults.len() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the timed fault never expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_identified_by_ip_and_by_owning_process() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("n1", Some("127.0.0.2"), vec![("peer", echo)]),
        node("n2", Some("127.0.0.3"), vec![("peer", echo)]),
        node("n3", None, vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    let target = listen(&proxy, "n3", "peer");
    let mut by_ip = connect_from("127.0.0.2", target).await;
    let mut other_ip = connect_from("127.0.0.3", target).await;
    let mut unknown = connect_from("127.0.0.4", target).await;
    // A separate process dials from 127.0.0.1; rift learns its PID at runtime.
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("sleep 0.5; exec 3<>/dev/tcp/127.0.0.1/{}; echo hi >&3; read -r line <&3; echo \"$line\"", target.port()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    api.register_source("n2", &[child.id().unwrap()], &[])
        .await
        .unwrap();
    for s in [&mut by_ip, &mut other_ip, &mut unknown] {
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
    }
    let mut line = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "hi");
    let _ = child.wait().await;
    let events = api.events(0).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "source" && e["node"] == "n2")
    );
    let count = |status: &rift_proxy::control::Status, src: &str| {
        status
            .connections
            .iter()
            .filter(|c| c.src == src && c.dst == "n3")
            .map(|c| c.active)
            .sum::<u64>()
    };
    // The child has exited; rift drops its connection once it sees the FIN.
    let mut status = api.status().await.unwrap();
    for _ in 0..200 {
        if count(&status, "n2") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = api.status().await.unwrap();
    }
    assert_eq!(count(&status, "n1"), 1, "{status:?}");
    assert_eq!(count(&status, "client"), 1, "{status:?}");
    // n2: the 127.0.0.3 connection is still open; the child's shows in the metric.
    assert_eq!(count(&status, "n2"), 1, "{status:?}");
    let metrics = api.metrics().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("rift_connections_total{")
                && l.contains("src=\"n2\"")
                && l.contains("dst=\"n3\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.ends_with(" 2"),
        "one connection by IP and one by PID: {line}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_sockets_of_open_and_closed_connections() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("sock1", None, vec![("peer", echo)]),
        node("sock2", Some("127.0.0.2"), vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    let addr = listen(&proxy, "sock1", "peer");
    let mut stream = connect_from("127.0.0.2", addr).await;
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    let client = stream.local_addr().unwrap();
    let status = api.status().await.unwrap();
    let open = status
        .sockets
        .iter()
        .find(|s| s.client == client)
        .unwrap_or_else(|| panic!("no socket record for {client}: {:?}", status.sockets));
    assert_eq!((open.src.as_str(), open.dst.as_str()), ("sock2", "sock1"));
    assert_eq!(open.endpoint, "peer");
    assert_eq!(open.listener, addr);
    assert_eq!(open.upstream_peer, Some(echo));
    assert!(open.upstream_local.is_some_and(|a| a.port() != 0));
    assert_eq!(open.closed_unix_ms, None);
    drop(stream);
    let mut closed = None;
    for _ in 0..100 {
        let status = api.status().await.unwrap();
        closed = status
            .sockets
            .into_iter()
            .find(|s| s.client == client && s.closed_unix_ms.is_some());
        if closed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed = closed.expect("a closed connection stays listed");
    assert!(closed.closed_unix_ms.unwrap() >= closed.opened_unix_ms);
    assert_eq!(closed.upstream_local, open.upstream_local);
}
