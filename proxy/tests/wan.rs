//! The `wan` profile through the control API, on the data plane: `delay` given at apply
//! time delays bytes between members of different regions each way, and a healed
//! link is fast again. Round trips are measured by a client identified as a member.

mod support;

use std::time::{Duration, Instant};

use rift_proxy::client::ApiClient;
use rift_proxy::fault::Fault;
use rift_proxy::profile::Bindings;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The median of 7 echo round trips of one byte on `stream`.
async fn median_rtt(stream: &mut tokio::net::TcpStream) -> Duration {
    let mut rtts = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        stream.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    rtts[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wan_delay_set_at_apply_time_delays_both_directions_between_regions() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("n1", None, vec![("peer", echo)]),
        node("n2", Some("127.0.0.2"), vec![("peer", echo)]),
    ])
    .await;
    let api = ApiClient::new(&proxy.api_url());
    // n2 dials n1's listener: bytes n2 -> n1 go out, the echo comes back n1 -> n2.
    let mut stream = connect_from("127.0.0.2", listen(&proxy, "n1", "peer")).await;
    let before = median_rtt(&mut stream).await;
    let mut bindings = Bindings::new();
    bindings.insert("delay".into(), "20ms".into());
    let applied = api.apply_profile("wan", &bindings, None).await.unwrap();
    assert_eq!(applied.rules.len(), 2, "{:?}", applied.rules);
    assert!(
        applied
            .rules
            .iter()
            .all(|r| matches!(&r.fault, Fault::Degrade(d) if d.latency_ms == 20))
    );
    let delayed = median_rtt(&mut stream).await;
    api.heal().await.unwrap();
    let after = median_rtt(&mut stream).await;
    assert!(
        delayed >= Duration::from_millis(40) && delayed < Duration::from_millis(200),
        "20 ms each way: {delayed:?} (before {before:?})"
    );
    assert!(after < Duration::from_millis(20), "healed: {after:?}");
    // A value that is no duration is refused naming the binding.
    let mut bad = Bindings::new();
    bad.insert("delay".into(), "soon".into());
    let e = api
        .apply_profile("wan", &bad, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("delay=soon"), "{e}");
    proxy.shutdown().await;
}
