//! The no-crossing judgement on synthetic captures: frames written with the pcap
//! writer, read back, parsed and judged against a connection map and fault windows.

use std::net::SocketAddr;

use rift_proxy::control::ConnectionSockets;
use rift_proxy::fault::{Fault, LinkRule};
use serde_json::json;

use super::*;
use crate::capture::pcap::{
    PcapWriter, TCP_ACK, TCP_PSH, TCP_RST, parse_tcp, read_pcap, tcp_frame,
};

const T0_MS: u64 = 1_700_000_000_000;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// n1 dialed n2 (peer endpoint): n1:40001 -> rift 20002, rift 50001 -> n2 real 30002.
/// n2 dialed n1 (peer endpoint): n2:40002 -> rift 20001, rift 50002 -> n1 real 30001.
/// n1 dialed n2 (client endpoint): n1:40003 -> rift 21002, rift 50003 -> n2 real 31002.
fn sockets() -> Vec<ConnectionSockets> {
    let record =
        |src: &str, dst: &str, endpoint: &str, client, listener, local, peer| ConnectionSockets {
            src: src.into(),
            dst: dst.into(),
            endpoint: endpoint.into(),
            client: addr(client),
            listener: addr(listener),
            upstream_local: Some(addr(local)),
            upstream_peer: Some(addr(peer)),
            opened_unix_ms: T0_MS - 5000,
            closed_unix_ms: None,
        };
    vec![
        record("n1", "n2", "peer", 40001, 20002, 50001, 30002),
        record("n2", "n1", "peer", 40002, 20001, 50002, 30001),
        record("n1", "n2", "client", 40003, 21002, 50003, 31002),
    ]
}

fn rule(from: &str, to: &str, fault: Fault, endpoints: &[&str]) -> LinkRule {
    LinkRule {
        from: from.into(),
        to: to.into(),
        fault,
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
    }
}

/// Fault applied at T0+1 s, healed at T0+3 s.
fn window(rules: Vec<LinkRule>) -> Vec<FaultWindow> {
    windows_from_events(&[
        json!({"event": "apply", "id": 7, "label": "test", "rules": rules, "ts_unix_ms": T0_MS + 1000}),
        json!({"event": "heal", "healed": [7], "ts_unix_ms": T0_MS + 3000}),
    ])
}

/// Writes (ms after T0, from port, to port, flags, payload) as a pcap, reads it back.
fn capture(frames: &[(u64, u16, u16, u8, u16)]) -> Vec<Segment> {
    let mut writer = PcapWriter::new(Vec::new(), 128).unwrap();
    for &(at_ms, from, to, flags, payload) in frames {
        writer
            .write_frame(
                (T0_MS + at_ms) * 1000,
                &tcp_frame(addr(from), addr(to), flags, payload),
            )
            .unwrap();
    }
    read_pcap(&writer.into_inner(), "synthetic.pcap")
        .unwrap()
        .iter()
        .filter_map(|r| parse_tcp(r.ts_us, &r.data))
        .collect()
}

const DATA: u8 = TCP_PSH | TCP_ACK;

/// n1 -> n2 traffic on its own connection, delivered by rift to n2's real port.
fn steady_n1_to_n2() -> Vec<(u64, u16, u16, u8, u16)> {
    vec![
        (500, 40001, 20002, DATA, 100),
        (501, 50001, 30002, DATA, 100),
        (3200, 50001, 30002, DATA, 300),
    ]
}

#[test]
fn a_held_link_with_traffic_around_the_window_passes() {
    let mut frames = steady_n1_to_n2();
    // During the hold n1 keeps sending to rift (its kernel accepts it), and acks flow.
    frames.push((1500, 40001, 20002, DATA, 1000));
    frames.push((1600, 30002, 50001, TCP_ACK, 0));
    let verdict = judge(
        &capture(&frames),
        &sockets(),
        &window(vec![rule("n1", "n2", Fault::Hold, &[])]),
        Settings::default(),
    );
    assert_eq!(verdict.status, Judgement::Pass, "{verdict:#?}");
    let link = &verdict.links[0];
    assert_eq!(link.crossed.bytes, 0);
    assert_eq!(link.outside.bytes, 400);
    assert_eq!(link.outside.packets, 2);
    assert_eq!(verdict.unmapped_payload_segments, 0);
}

#[test]
fn payload_delivered_during_the_hold_fails_naming_link_bytes_and_times() {
    let mut frames = steady_n1_to_n2();
    frames.push((2000, 50001, 30002, DATA, 1234));
    frames.push((2100, 50001, 30002, DATA, 66));
    let verdict = judge(
        &capture(&frames),
        &sockets(),
        &window(vec![rule("n1", "n2", Fault::Hold, &[])]),
        Settings::default(),
    );
    assert_eq!(verdict.status, Judgement::Fail);
    let link = &verdict.links[0];
    assert_eq!((link.from.as_str(), link.to.as_str()), ("n1", "n2"));
    assert_eq!(link.crossed.bytes, 1300);
    assert_eq!(link.crossed.packets, 2);
    assert_eq!(link.crossed.first_unix_us, Some((T0_MS + 2000) * 1000));
    assert_eq!(link.crossed.last_unix_us, Some((T0_MS + 2100) * 1000));
    assert_eq!(
        link.crossed.connections,
        vec!["127.0.0.1:50001 -> 127.0.0.1:30002 (peer)"]
    );
    assert!(
        verdict
            .summary
            .contains("1300 payload bytes in 2 packets reached n2 on n1 -> n2"),
        "{}",
        verdict.summary
    );
}

#[test]
fn bytes_on_the_connection_the_destination_dialed_count_too() {
    // n1 -> n2 bytes travel as replies on n2's own connection: rift 20001 -> n2:40002.
    let frames = vec![
        (500, 20001, 40002, DATA, 10),
        (1500, 20001, 40002, DATA, 20),
        (3500, 20001, 40002, DATA, 30),
    ];
    let verdict = judge(
        &capture(&frames),
        &sockets(),
        &window(vec![rule("n1", "n2", Fault::Hold, &[])]),
        Settings::default(),
    );
    assert_eq!(verdict.status, Judgement::Fail);
    assert_eq!(verdict.links[0].crossed.bytes, 20);
    assert_eq!(verdict.links[0].outside.bytes, 40);
}

#[test]
fn the_window_edges_are_judged_with_the_grace_margin() {
    let mut frames = steady_n1_to_n2();
    // 10 ms after the apply event and 5 ms before the heal event: inside the grace.
    frames.push((1010, 50001, 30002, DATA, 50));
    frames.push((2995, 50001, 30002, DATA, 50));
    let rules = window(vec![rule("n1", "n2", Fault::Hold, &[])]);
    let verdict = judge(&capture(&frames), &sockets(), &rules, Settings::default());
    assert_eq!(verdict.status, Judgement::Pass, "{verdict:#?}");
    let strict = Settings {
        grace_ms: 0,
        ..Settings::default()
    };
    let verdict = judge(&capture(&frames), &sockets(), &rules, strict);
    assert_eq!(verdict.status, Judgement::Fail);
    assert_eq!(verdict.links[0].crossed.packets, 2);
}

#[test]
fn a_link_never_seen_carrying_payload_is_unknown_not_pass() {
    let frames = vec![
        (500, 40001, 20002, DATA, 100),
        (1500, 30002, 50001, TCP_ACK, 0),
    ];
    let verdict = judge(
        &capture(&frames),
        &sockets(),
        &window(vec![rule("n1", "n2", Fault::Hold, &[])]),
        Settings::default(),
    );
    assert_eq!(verdict.status, Judgement::Unknown);
    assert!(
        verdict.links[0].reason.contains("cannot tell"),
        "{}",
        verdict.links[0].reason
    );
    let none = judge(&capture(&frames), &sockets(), &[], Settings::default());
    assert_eq!(none.status, Judgement::Unknown);
    assert!(none.summary.contains("no cut link"), "{}", none.summary);
}

#[test]
fn reset_faults_need_the_rsts_on_the_wire() {
    let mut frames = steady_n1_to_n2();
    frames.push((1001, 50001, 30002, TCP_RST, 0));
    frames.push((1001, 20002, 40001, TCP_RST, 0));
    let rules = window(vec![rule("n1", "n2", Fault::Reset, &[])]);
    let verdict = judge(&capture(&frames), &sockets(), &rules, Settings::default());
    assert_eq!(verdict.status, Judgement::Pass, "{verdict:#?}");
    assert_eq!(verdict.links[0].resets, 2);
    let verdict = judge(
        &capture(&steady_n1_to_n2()),
        &sockets(),
        &rules,
        Settings::default(),
    );
    assert_eq!(verdict.status, Judgement::Fail);
    assert!(
        verdict.links[0].reason.contains("no RST"),
        "{}",
        verdict.links[0].reason
    );
}

#[test]
fn a_cut_of_the_wrong_endpoint_fails_when_the_pair_is_judged() {
    // The fault cuts only `client`; the peer connection keeps delivering.
    let mut frames = steady_n1_to_n2();
    frames.push((2000, 50001, 30002, DATA, 777));
    frames.push((500, 50003, 31002, DATA, 5));
    let rules = window(vec![rule("n1", "n2", Fault::Hold, &["client"])]);
    let by_rule = judge(&capture(&frames), &sockets(), &rules, Settings::default());
    assert_eq!(
        by_rule.status,
        Judgement::Pass,
        "the client endpoint itself was held"
    );
    let pair = Settings {
        scope: Scope::Pair,
        ..Settings::default()
    };
    let verdict = judge(&capture(&frames), &sockets(), &rules, pair);
    assert_eq!(verdict.status, Judgement::Fail);
    let link = &verdict.links[0];
    assert_eq!(link.crossed.bytes, 777);
    assert_eq!(
        link.crossed.connections,
        vec!["127.0.0.1:50001 -> 127.0.0.1:30002 (peer)"]
    );
}

#[test]
fn degradations_are_not_judged_and_unknown_segments_are_counted() {
    let frames = vec![(500, 1111, 2222, DATA, 9)];
    let rules = window(vec![rule(
        "n1",
        "n2",
        Fault::Degrade(Default::default()),
        &[],
    )]);
    let verdict = judge(&capture(&frames), &sockets(), &rules, Settings::default());
    assert!(verdict.links.is_empty());
    assert_eq!(verdict.unmapped_payload_segments, 1);
}

#[test]
fn expiry_closes_a_window_and_an_open_one_runs_to_the_capture_end() {
    let windows = windows_from_events(&[
        json!({"event": "apply", "id": 1, "rules": [], "ts_unix_ms": 10}),
        json!({"event": "apply", "id": 2, "rules": [], "ts_unix_ms": 20}),
        json!({"event": "expire", "id": 1, "ts_unix_ms": 30}),
        json!({"event": "source", "ts_unix_ms": 31}),
    ]);
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].healed_unix_ms, Some(30));
    assert_eq!(windows[1].healed_unix_ms, None);
}
