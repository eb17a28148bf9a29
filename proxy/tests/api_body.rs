//! The control API's request edge: bodies over the documented limit are 413s, a body
//! that is not the JSON a route expects is a 400 naming the offending field, bad query
//! strings and path segments are JSON 400s too, and a client that stalls mid-request
//! delays nobody else.

mod support;

use std::time::Duration;

use rift_proxy::api::MAX_BODY_BYTES;
use support::*;
use tokio::io::AsyncWriteExt;

async fn send(
    method: reqwest::Method,
    url: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, format!("{url}{path}"));
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {text:?}"));
    (status, value)
}

async fn post(url: &str, path: &str, body: &str) -> (u16, String) {
    let (status, value) = send(
        reqwest::Method::POST,
        url,
        path,
        Some(("application/json", body.as_bytes().to_vec())),
    )
    .await;
    (
        status,
        value["error"].as_str().unwrap_or_default().to_string(),
    )
}

async fn two_nodes() -> rift_proxy::server::RunningProxy {
    let echo = echo_server().await;
    start(&[
        node("x1", None, vec![("peer", echo)]),
        node("x2", None, vec![("peer", echo)]),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_and_the_limit_is_exact() {
    let proxy = two_nodes().await;
    let url = proxy.api_url();
    // A valid request padded with whitespace to exactly the limit is read and applied...
    let request = r#"{"groups":[["x1"],["x2"]]}"#;
    let mut body = request.as_bytes().to_vec();
    body.resize(MAX_BODY_BYTES, b' ');
    let (status, value) = send(
        reqwest::Method::POST,
        &url,
        "/partition",
        Some(("application/json", body.clone())),
    )
    .await;
    assert_eq!(status, 201, "{value}");
    // ...one byte more is refused before it is parsed, and names the limit.
    body.push(b' ');
    for path in ["/partition", "/isolate", "/faults", "/apply", "/sources"] {
        let (status, value) = send(
            reqwest::Method::POST,
            &url,
            path,
            Some(("application/json", body.clone())),
        )
        .await;
        assert_eq!(status, 413, "{path}: {value}");
        let error = value["error"].as_str().unwrap();
        assert!(error.contains(&MAX_BODY_BYTES.to_string()), "{error}");
    }
    // Only the first partition is in force.
    let status = proxy.control().status();
    assert_eq!(status.faults.len(), 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400s_naming_the_field() {
    let proxy = two_nodes().await;
    let url = proxy.api_url();
    let cases: &[(&str, &str, &str)] = &[
        ("/partition", r#"{"groups":[["x1"],[3]]}"#, "groups[1][0]"),
        ("/partition", r#"{"groups":"x1"}"#, "groups"),
        (
            "/partition",
            r#"{"groups":[["x1"],["x2"]],"duration":5}"#,
            "duration",
        ),
        (
            "/partition",
            r#"{"groups":[["x1"],["x2"]],"fault":"cut"}"#,
            "fault",
        ),
        ("/isolate", r#"{"node":5}"#, "node"),
        ("/isolate", r#"{"nod":"x1"}"#, "nod"),
        (
            "/isolate",
            r#"{"node":"x1","endpoints":[null]}"#,
            "endpoints[0]",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"nope"}}]}"#,
            "rules[0].fault",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"degrade","latency_ms":-1}}]}"#,
            // Inside the tagged fault the path stops at the fault; the value is named.
            "rules[0].fault: invalid value: integer `-1`",
        ),
        (
            "/apply",
            r#"{"profile":"split","bindings":{"leader":7}}"#,
            "bindings.leader",
        ),
        ("/sources", r#"{"node":"x1","pids":[-4]}"#, "pids[0]"),
        ("/sources", r#"{"node":"x1","ips":["300.1.1.1"]}"#, "ips[0]"),
        // Not JSON at all, or cut short: the position is named.
        ("/isolate", r#"{"node":"#, "EOF"),
        ("/isolate", "node=x1", "line 1 column 2"),
    ];
    for (path, body, named) in cases {
        let (status, error) = post(&url, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert!(
            error.contains(named),
            "{path} {body}: the error must name {named:?}: {error}"
        );
    }
    // A body that is not declared as JSON is refused with a JSON error too.
    let (status, value) = send(
        reqwest::Method::POST,
        &url,
        "/isolate",
        Some(("text/plain", br#"{"node":"x1"}"#.to_vec())),
    )
    .await;
    assert_eq!(status, 415, "{value}");
    assert!(value["error"].as_str().unwrap().contains("Content-Type"));
    // Query strings and path segments.
    for (method, path, named) in [
        (reqwest::Method::GET, "/events?after=-1", "after"),
        (reqwest::Method::GET, "/events?after=1e3", "after"),
        (reqwest::Method::DELETE, "/faults/abc", "abc"),
        (
            reqwest::Method::DELETE,
            "/faults/18446744073709551616",
            "18446744073709551616",
        ),
    ] {
        let (status, value) = send(method, &url, path, None).await;
        assert_eq!(status, 400, "{path}: {value}");
        let error = value["error"].as_str().unwrap();
        assert!(error.contains(named), "{path}: {error}");
    }
    assert!(proxy.control().status().faults.is_empty());
    proxy.shutdown().await;
}

/// One client sends half a body and stalls; another sends a request and never reads
/// the answer. Neither holds anything the next requests need: applies, heals and
/// status reads on other connections all complete while both are stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_delays_nobody_else() {
    let proxy = two_nodes().await;
    let url = proxy.api_url();
    let addr = url.trim_start_matches("http://").to_string();

    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(
        b"POST /partition HTTP/1.1\r\nhost: rift\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"groups\":[[\"x1\"],",
    )
    .await
    .unwrap();
    let mut deaf = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for _ in 0..64 {
        deaf.write_all(b"GET /status HTTP/1.1\r\nhost: rift\r\n\r\n")
            .await
            .unwrap();
    }

    // A deadlock would hang here: the bound turns it into a failure with a reason.
    let work = async {
        for round in 0..20 {
            let (status, error) = post(&url, "/isolate", r#"{"node":"x1"}"#).await;
            assert_eq!(status, 201, "round {round}: {error}");
            let (status, value) = send(reqwest::Method::GET, &url, "/status", None).await;
            assert_eq!(status, 200);
            assert_eq!(value["faults"].as_array().unwrap().len(), 1);
            let (status, error) = post(&url, "/heal", "").await;
            assert_eq!(status, 200, "{error}");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("API requests blocked behind a stalled client");
    drop(half);
    drop(deaf);
    proxy.shutdown().await;
}
