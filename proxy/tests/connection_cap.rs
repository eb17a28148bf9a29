//! The per-listener connection cap: connections past it are reset on accept and
//! counted, and a slot freed by a closing connection is used again.

mod support;

use std::time::Duration;

use rift_proxy::server::{self, ProxyOptions};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One round trip through the echo upstream; `false` if the proxy dropped the
/// connection instead.
async fn echoes(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"ping"
}

#[tokio::test]
async fn connections_past_the_cap_are_reset_and_counted() {
    let echo = echo_server().await;
    // The metrics recorder is process-wide, so this test's node name is its own.
    let topology = topology(&[node("capped", None, vec![("peer", echo)])]);
    let options = ProxyOptions {
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        max_connections: Some(2),
        ..Default::default()
    };
    let proxy = server::start(topology, options).await.unwrap();
    let addr = listen(&proxy, "capped", "peer");

    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(echoes(&mut first).await);
    assert!(echoes(&mut second).await);
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        !echoes(&mut third).await,
        "a third connection got through a cap of 2"
    );

    // Closing one frees its slot (the relay notices the FIN and ends).
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if echoes(&mut stream).await {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the freed slot was never reused");
    assert!(
        echoes(&mut second).await,
        "the cap disturbed an open connection"
    );

    let metrics = reqwest::get(format!("{}/metrics", proxy.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = metrics
        .lines()
        .find(|l| {
            l.starts_with("rift_connections_refused_total{")
                && l.contains("dst=\"capped\"")
                && l.contains("endpoint=\"peer\"")
        })
        .unwrap_or_else(|| panic!("no refusal counted: {metrics}"));
    let count: f64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{refused}");
    proxy.shutdown().await;
}
