//! Extreme and malformed input at the control API's edge: every number is bounded with
//! a 400 naming the field and value, and no request, however bad, takes the control
//! plane down for the requests after it.

mod support;

use support::*;

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

/// A request that once panicked the control thread while formatting its expiry time
/// poisoned the control lock: every later call failed. Each such request must now be a
/// 400 naming the field and value, and the API must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_numbers_are_400s_and_the_api_keeps_answering() {
    let echo = echo_server().await;
    let proxy = start(&[
        node("x1", None, vec![("peer", echo)]),
        node("x2", None, vec![("peer", echo)]),
    ])
    .await;
    let url = proxy.api_url();
    let cases: &[(&str, &str, &str)] = &[
        (
            "/partition",
            r#"{"groups":[["x1"],["x2"]],"duration":"100000000years"}"#,
            "100000000years",
        ),
        (
            "/isolate",
            r#"{"node":"x1","duration":"584542046090years"}"#,
            "584542046090years",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"hold"}}],"duration":"9000years"}"#,
            "9000years",
        ),
        (
            "/apply",
            r#"{"profile":"split","duration":"20000years"}"#,
            "20000years",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"degrade","latency_ms":18446744073709551615}}]}"#,
            "latency_ms",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"degrade","jitter_ms":9223372036854775808}}]}"#,
            "jitter_ms",
        ),
        (
            "/faults",
            r#"{"rules":[{"from":"x1","to":"x2","fault":{"kind":"degrade","slow_close_ms":18446744073709551615}}]}"#,
            "slow_close_ms",
        ),
    ];
    for (path, body, named) in cases {
        let (status, message) = post_raw(&url, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {message}");
        assert!(
            message.contains(named),
            "{path}: the error must name {named:?}: {message}"
        );
        // The control plane still answers, and nothing was applied.
        let status = reqwest::get(format!("{url}/status")).await.unwrap();
        assert_eq!(status.status().as_u16(), 200, "after {path} {body}");
        let status: serde_json::Value = status.json().await.unwrap();
        assert_eq!(status["faults"], serde_json::json!([]), "after {body}");
    }
    // The largest accepted duration still works end to end, and heals.
    let (status, message) = post_raw(
        &url,
        "/partition",
        r#"{"groups":[["x1"],["x2"]],"duration":"365days"}"#,
    )
    .await;
    assert_eq!(status, 201, "{message}");
    let (status, message) = post_raw(&url, "/heal", "").await;
    assert_eq!(status, 200, "{message}");
    assert!(message.contains("\"healed\":1"), "{message}");
    proxy.shutdown().await;
}
