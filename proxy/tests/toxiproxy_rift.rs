//! rift's own control plane over Toxiproxy proxies: each proxy is a rift node, so a
//! fault applied through rift's API cuts the clients of one proxy from its member and
//! not those of another, holds bytes without losing them, survives proxies being added,
//! and resets with a `reset` fault.

mod support;

use std::time::Duration;

use rift_proxy::client::ApiClient;
use rift_proxy::fault::{Fault, FaultRequest, LinkRule};
use rift_proxy::toxiproxy::rift::Bridge;
use rift_proxy::toxiproxy::{Toxiproxy, api};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn create(
    http: &reqwest::Client,
    url: &str,
    name: &str,
    upstream: std::net::SocketAddr,
) -> String {
    let response = http
        .post(format!("{url}/proxies"))
        .json(&json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let proxy: Value = response.json().await.unwrap();
    proxy["listen"].as_str().unwrap().to_string()
}

fn cut(node: &str, fault: Fault) -> FaultRequest {
    let rule = |from: &str, to: &str| LinkRule {
        from: from.into(),
        to: to.into(),
        fault: fault.clone(),
        endpoints: vec![],
    };
    FaultRequest {
        label: format!("cut-{node}"),
        rules: vec![rule("client", node), rule(node, "client")],
        duration: None,
    }
}

async fn echoes(stream: &mut TcpStream, data: &[u8], within: Duration) -> bool {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    match tokio::time::timeout(within, stream.read_exact(&mut back)).await {
        Ok(Ok(_)) => {
            assert_eq!(back, data);
            true
        }
        Ok(Err(e)) => panic!("connection failed: {e}"),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rift_faults_cut_toxiproxy_proxies_one_member_at_a_time() {
    let (echo1, echo2, echo3) = (
        echo_server().await,
        echo_server().await,
        echo_server().await,
    );
    let bridge = Bridge::new(None);
    let rift_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rift_url = format!("http://{}", rift_listener.local_addr().unwrap());
    tokio::spawn(axum::serve(rift_listener, bridge.router()).into_future());
    let toxiproxy = Toxiproxy::with_rift(bridge.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(
        listener,
        toxiproxy.clone(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let rift = ApiClient::new(&rift_url);

    // Before any proxy exists rift's API says why it cannot answer.
    let early = http.get(format!("{rift_url}/status")).send().await.unwrap();
    assert_eq!(early.status().as_u16(), 503);

    let n1 = create(&http, &url, "n1", echo1).await;
    let n2 = create(&http, &url, "n2", echo2).await;
    let status = rift.status().await.unwrap();
    assert_eq!(status.nodes, ["n1", "n2"]);
    let mut c1 = TcpStream::connect(&n1).await.unwrap();
    let mut c2 = TcpStream::connect(&n2).await.unwrap();
    assert!(echoes(&mut c1, b"one", Duration::from_secs(5)).await);
    assert!(echoes(&mut c2, b"two", Duration::from_secs(5)).await);

    // Cut the clients from n1 only: n1's connection holds, n2's flows.
    rift.apply(&cut("n1", Fault::Hold)).await.unwrap();
    let held = pattern(1000, 9);
    c1.write_all(&held).await.unwrap();
    let mut back = vec![0u8; held.len()];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c1.read_exact(&mut back))
            .await
            .is_err(),
        "bytes crossed a held link"
    );
    assert!(echoes(&mut c2, b"still", Duration::from_secs(5)).await);

    // A proxy created while the fault is in force: the fault stays, the new one flows.
    let n3 = create(&http, &url, "n3", echo3).await;
    let status = rift.status().await.unwrap();
    assert_eq!(status.nodes, ["n1", "n2", "n3"]);
    assert_eq!(status.faults.len(), 1, "{:?}", status.faults);
    let mut c3 = TcpStream::connect(&n3).await.unwrap();
    assert!(echoes(&mut c3, b"three", Duration::from_secs(5)).await);
    // A new connection to the cut member is accepted but not dialed until heal.
    let mut late = TcpStream::connect(&n1).await.unwrap();
    assert!(!echoes(&mut late, b"late", Duration::from_millis(300)).await);

    // Heal: every held byte arrives, in order, on the old and the held connection.
    assert_eq!(rift.heal().await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(5), c1.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, held);
    let mut four = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), late.read_exact(&mut four))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&four, b"late");

    // A `reset` fault resets live connections of that member only.
    rift.apply(&cut("n2", Fault::Reset)).await.unwrap();
    // (Read, not write: a write would consume the reset as its own error.)
    let mut buf = [0u8; 1];
    let result = tokio::time::timeout(Duration::from_secs(5), c2.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{result:?}"
    );
    assert!(echoes(&mut c1, b"fine", Duration::from_secs(5)).await);
    rift.heal().await.unwrap();

    // Toxics and rift faults compose: a toxic still applies after a heal.
    let toxic = http
        .post(format!("{url}/proxies/n1/toxics"))
        .json(&json!({"type": "latency", "attributes": {"latency": 200}}))
        .send()
        .await
        .unwrap();
    assert_eq!(toxic.status().as_u16(), 200);
    assert!(!echoes(&mut c1, b"slow", Duration::from_millis(100)).await);
    toxiproxy.shutdown().await;
}
