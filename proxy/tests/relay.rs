//! The relay against real sockets: byte-exact forwarding, half-close, and faults
//! applied to live connections.

mod support;

use std::time::Duration;

use rand::Rng;
use rift_proxy::fault::{Degradation, Fault, FaultRequest, LinkRule};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rule(from: &str, to: &str, fault: Fault, endpoints: &[&str]) -> LinkRule {
    LinkRule {
        from: from.into(),
        to: to.into(),
        fault,
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
    }
}

fn both_ways(a: &str, b: &str, fault: Fault, endpoints: &[&str]) -> FaultRequest {
    FaultRequest {
        label: "test".into(),
        rules: vec![
            rule(a, b, fault.clone(), endpoints),
            rule(b, a, fault, endpoints),
        ],
        duration: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_bytes_exactly_over_many_connections_with_half_close() {
    let echo = echo_server().await;
    let proxy = start(&[node("n1", None, vec![("peer", echo)])]).await;
    let addr = listen(&proxy, "n1", "peer");
    let mut tasks = Vec::new();
    for seed in 0..64u8 {
        tasks.push(tokio::spawn(async move {
            let len = rand::rng().random_range(1..400_000);
            let data = pattern(len, seed);
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut r, mut w) = stream.into_split();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                let mut at = 0;
                while at < sent.len() {
                    let chunk = rand::rng().random_range(1..=65_536).min(sent.len() - at);
                    w.write_all(&sent[at..at + chunk]).await.unwrap();
                    at += chunk;
                    if rand::rng().random_bool(0.1) {
                        tokio::task::yield_now().await;
                    }
                }
                // Half-close: the echo server answers everything, then closes.
                w.shutdown().await.unwrap();
            });
            let mut echoed = Vec::new();
            r.read_to_end(&mut echoed).await.unwrap();
            writer.await.unwrap();
            assert_eq!(echoed.len(), data.len(), "connection {seed} length");
            assert!(echoed == data, "connection {seed} content differs");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_live_bytes_and_heal_delivers_all_in_order() {
    let (sink, recorder) = recording_server(None).await;
    let proxy = start(&[
        node("n1", Some("127.0.0.2"), vec![("peer", sink)]),
        node("n2", None, vec![("peer", sink)]),
    ])
    .await;
    let control = proxy.control();
    let total = 3_000_000;
    let data = pattern(total, 7);
    let mut stream = connect_from("127.0.0.2", listen(&proxy, "n2", "peer")).await;
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(16 * 1024) {
            stream.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        stream.shutdown().await.unwrap();
        stream
    });
    eventually("first bytes", Duration::from_secs(5), || {
        recorder.len() > 100_000
    })
    .await;
    control
        .apply(both_ways("n1", "n2", Fault::Hold, &[]))
        .unwrap();
    // Bytes already in the kernel's loopback queue may still land; then nothing moves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = recorder.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(recorder.len(), frozen, "bytes crossed a held link");
    assert!(
        frozen < total,
        "the whole stream went through before the hold"
    );
    assert_eq!(control.heal(), 1);
    eventually("every held byte", Duration::from_secs(20), || {
        recorder.len() == total
    })
    .await;
    assert!(
        recorder.bytes() == data,
        "held bytes arrived altered or out of order"
    );
    let _ = writer.await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_resets_live_and_new_connections() {
    let echo = echo_server().await;
    let proxy = start(&[node("n1", None, vec![("peer", echo)])]).await;
    let addr = listen(&proxy, "n1", "peer");
    let mut live = tokio::net::TcpStream::connect(addr).await.unwrap();
    live.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    live.read_exact(&mut buf).await.unwrap();
    proxy
        .control()
        .apply(both_ways("client", "n1", Fault::Reset, &[]))
        .unwrap();
    let err = live
        .read(&mut buf)
        .await
        .expect_err("a reset connection must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // The handshake completes in the kernel before rift accepts, so the RST lands
    // either on connect or on the first read.
    let outcome = match tokio::net::TcpStream::connect(addr).await {
        Ok(mut fresh) => fresh.read(&mut buf).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        matches!(&outcome, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{outcome:?}"
    );
    proxy.control().heal();
    let mut healed = tokio::net::TcpStream::connect(addr).await.unwrap();
    healed.write_all(b"pong").await.unwrap();
    healed.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_fault_cuts_only_one_byte_direction() {
    // The upstream both records and ticks a byte every 10 ms back to the dialer.
    let (talker, recorder) = recording_server(Some(Duration::from_millis(10))).await;
    let proxy = start(&[
        node("n1", Some("127.0.0.2"), vec![("peer", talker)]),
        node("n2", None, vec![("peer", talker)]),
    ])
    .await;
    let stream = connect_from("127.0.0.2", listen(&proxy, "n2", "peer")).await;
    let (mut r, mut w) = stream.into_split();
    // Wait until rift dialed upstream: a new connection on a cut link would be held.
    let mut first = [0u8; 1];
    r.read_exact(&mut first).await.unwrap();
    proxy
        .control()
        .apply(FaultRequest {
            label: "one-way".into(),
            rules: vec![rule("n1", "n2", Fault::Hold, &[])],
            duration: None,
        })
        .unwrap();
    w.write_all(b"held-bytes").await.unwrap();
    // n2 -> n1 still flows: ticks keep arriving.
    let mut ticks = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut ticks))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.len(), 0, "n1 -> n2 bytes crossed a one-way cut");
    proxy.control().heal();
    eventually("held bytes after heal", Duration::from_secs(5), || {
        recorder.bytes() == b"held-bytes"
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_limited_fault_leaves_other_endpoints_flowing() {
    let echo = echo_server().await;
    let proxy = start(&[
        node(
            "n1",
            Some("127.0.0.2"),
            vec![("replication", echo), ("controller", echo)],
        ),
        node(
            "n2",
            Some("127.0.0.3"),
            vec![("replication", echo), ("controller", echo)],
        ),
    ])
    .await;
    proxy
        .control()
        .apply(both_ways("n1", "n2", Fault::Hold, &["replication"]))
        .unwrap();
    let mut buf = [0u8; 5];
    let mut controller = connect_from("127.0.0.2", listen(&proxy, "n2", "controller")).await;
    controller.write_all(b"hello").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), controller.read_exact(&mut buf))
        .await
        .expect("controller flows")
        .unwrap();
    let mut replication = connect_from("127.0.0.2", listen(&proxy, "n2", "replication")).await;
    replication.write_all(b"hello").await.unwrap();
    let held =
        tokio::time::timeout(Duration::from_millis(400), replication.read_exact(&mut buf)).await;
    assert!(
        held.is_err(),
        "replication bytes crossed an endpoint-limited cut"
    );
    // The reverse pair (n2 dialing n1) is cut too, on that endpoint only.
    let mut reverse = connect_from("127.0.0.3", listen(&proxy, "n1", "replication")).await;
    reverse.write_all(b"hello").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), reverse.read_exact(&mut buf))
            .await
            .is_err()
    );
    proxy.control().heal();
    tokio::time::timeout(Duration::from_secs(5), replication.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello");
    tokio::time::timeout(Duration::from_secs(5), reverse.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connection_on_held_link_is_not_dialed_until_heal() {
    let (sink, recorder) = recording_server(None).await;
    let proxy = start(&[
        node("n1", Some("127.0.0.2"), vec![("peer", sink)]),
        node("n2", None, vec![("peer", sink)]),
    ])
    .await;
    proxy
        .control()
        .apply(both_ways("n1", "n2", Fault::Hold, &[]))
        .unwrap();
    let mut stream = connect_from("127.0.0.2", listen(&proxy, "n2", "peer")).await;
    stream.write_all(b"early").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        recorder.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "dialed upstream during hold"
    );
    // Another source is not affected by the n1/n2 cut.
    let _other = connect_from("127.0.0.9", listen(&proxy, "n2", "peer")).await;
    eventually("client dial", Duration::from_secs(5), || {
        recorder.accepted.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    proxy.control().heal();
    eventually("held dial and bytes", Duration::from_secs(5), || {
        recorder.bytes() == b"early"
    })
    .await;
    assert_eq!(
        recorder.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_discards_and_resets_on_heal() {
    let echo = echo_server().await;
    let proxy = start(&[node("n1", None, vec![("peer", echo)])]).await;
    let mut stream = tokio::net::TcpStream::connect(listen(&proxy, "n1", "peer"))
        .await
        .unwrap();
    let mut buf = [0u8; 4];
    stream.write_all(b"live").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();
    proxy
        .control()
        .apply(both_ways("client", "n1", Fault::Blackhole, &[]))
        .unwrap();
    stream.write_all(b"lost").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut buf))
            .await
            .is_err()
    );
    proxy.control().heal();
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{outcome:?}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_with_jitter_keeps_order_and_adds_latency() {
    let echo = echo_server().await;
    let proxy = start(&[node("n1", None, vec![("peer", echo)])]).await;
    let slow = Fault::Degrade(Degradation {
        latency_ms: 60,
        jitter_ms: 40,
        ..Default::default()
    });
    proxy
        .control()
        .apply(both_ways("client", "n1", slow, &[]))
        .unwrap();
    let stream = tokio::net::TcpStream::connect(listen(&proxy, "n1", "peer"))
        .await
        .unwrap();
    let (mut r, mut w) = stream.into_split();
    let started = tokio::time::Instant::now();
    let data = pattern(200 * 50, 3);
    let sent = data.clone();
    tokio::spawn(async move {
        for chunk in sent.chunks(200) {
            w.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        w.shutdown().await.unwrap();
    });
    let mut first = [0u8; 1];
    r.read_exact(&mut first).await.unwrap();
    // Two delayed hops of at least 60 - 40 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await.unwrap();
    let mut all = first.to_vec();
    all.extend(rest);
    assert!(all == data, "jitter reordered or lost bytes");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limit_paces_the_stream() {
    let (sink, recorder) = recording_server(None).await;
    let proxy = start(&[node("n1", None, vec![("peer", sink)])]).await;
    let limited = Fault::Degrade(Degradation {
        bandwidth_bytes_per_sec: 100_000,
        ..Default::default()
    });
    proxy
        .control()
        .apply(FaultRequest {
            label: "bw".into(),
            rules: vec![rule("client", "n1", limited, &[])],
            duration: None,
        })
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(listen(&proxy, "n1", "peer"))
        .await
        .unwrap();
    stream.write_all(&pattern(200_000, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // At 100 kB/s, half a second moves about 50 kB, never the whole 200 kB.
    let moved = recorder.len();
    assert!(
        moved > 0 && moved < 150_000,
        "moved {moved} bytes in 0.5 s at 100 kB/s"
    );
    proxy.control().heal();
    eventually("the rest after heal", Duration::from_secs(5), || {
        recorder.len() == 200_000
    })
    .await;
    assert!(recorder.bytes() == pattern(200_000, 1));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_limit_closes_after_the_limit_and_slow_close_delays_fin() {
    let (sink, recorder) = recording_server(None).await;
    let proxy = start(&[
        node("n1", None, vec![("peer", sink)]),
        node("n2", None, vec![("peer", sink)]),
    ])
    .await;
    let limited = Fault::Degrade(Degradation {
        limit_data_bytes: 1000,
        ..Default::default()
    });
    proxy
        .control()
        .apply(FaultRequest {
            label: "limit".into(),
            rules: vec![rule("client", "n1", limited, &[])],
            duration: None,
        })
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(listen(&proxy, "n1", "peer"))
        .await
        .unwrap();
    let _ = stream.write_all(&pattern(5000, 2)).await;
    eventually("the first 1000 bytes", Duration::from_secs(5), || {
        recorder.len() >= 1000
    })
    .await;
    let mut buf = [0u8; 1];
    // The connection ends: EOF, or a RST when rift closes with client bytes unread.
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        recorder.bytes(),
        pattern(1000, 2),
        "exactly the limit crosses, then a close"
    );

    // slow close: the echo of a FIN is held back by the configured delay.
    let echo = echo_server().await;
    let proxy2 = start(&[node("n3", None, vec![("peer", echo)])]).await;
    let slow = Fault::Degrade(Degradation {
        slow_close_ms: 400,
        ..Default::default()
    });
    proxy2
        .control()
        .apply(FaultRequest {
            label: "slow-close".into(),
            rules: vec![rule("client", "n3", slow, &[])],
            duration: None,
        })
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(listen(&proxy2, "n3", "peer"))
        .await
        .unwrap();
    stream.write_all(b"bye").await.unwrap();
    let closed_at = tokio::time::Instant::now();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"bye");
    assert!(
        closed_at.elapsed() >= Duration::from_millis(400),
        "FIN crossed after {:?}",
        closed_at.elapsed()
    );
    proxy.shutdown().await;
    proxy2.shutdown().await;
}
