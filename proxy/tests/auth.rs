//! The control API's bearer token: refused without it or with another one (401, counted
//! in metrics), required even on loopback once set, and mandatory off loopback.

mod support;

use rift_proxy::client::{ApiClient, ClientError};
use rift_proxy::server::{self, ProxyError, ProxyOptions};
use support::NodeSpec;

fn nodes() -> Vec<NodeSpec> {
    let upstream = "127.0.0.1:9".parse().unwrap();
    vec![
        support::node("a", None, vec![("peer", upstream)]),
        support::node("b", None, vec![("peer", upstream)]),
    ]
}

fn status_of(error: ClientError) -> u16 {
    match error {
        ClientError::Api { status, .. } => status,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn requests_without_the_right_token_get_401_and_are_counted() {
    let options = ProxyOptions {
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        api_token: Some("s3cret-token".into()),
        ..Default::default()
    };
    let proxy = server::start(support::topology(&nodes()), options)
        .await
        .unwrap();
    let url = proxy.api_url();

    let anonymous = ApiClient::new(&url).with_token(None);
    let error = anonymous.status().await.unwrap_err();
    assert_eq!(status_of(error), 401);
    let error = anonymous.heal().await.unwrap_err();
    assert_eq!(status_of(error), 401);

    let wrong = ApiClient::new(&url).with_token(Some("s3cret-tokem".into()));
    let error = wrong.isolate("a", None, vec![], None).await.unwrap_err();
    assert_eq!(status_of(error), 401);
    // Refused requests changed nothing.
    assert!(proxy.control().status().faults.is_empty());

    // A raw request shows the challenge header.
    let raw = reqwest::get(format!("{url}/status")).await.unwrap();
    assert_eq!(raw.status().as_u16(), 401);
    assert_eq!(raw.headers()["www-authenticate"], "Bearer");

    let right = ApiClient::new(&url).with_token(Some("s3cret-token".into()));
    right.isolate("a", None, vec![], None).await.unwrap();
    assert_eq!(right.status().await.unwrap().faults.len(), 1);
    let metrics = right.metrics().await.unwrap();
    let count = |reason: &str| -> f64 {
        let prefix = format!("rift_api_unauthorized_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in metrics:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(count("missing") >= 3.0, "{metrics}");
    assert!(count("wrong") >= 1.0, "{metrics}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn loopback_without_a_token_stays_open() {
    let options = ProxyOptions {
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let proxy = server::start(support::topology(&nodes()), options)
        .await
        .unwrap();
    let api = ApiClient::new(&proxy.api_url()).with_token(None);
    api.status().await.unwrap();
    // A client that sends a token to an open API is not refused either.
    let api = api.with_token(Some("anything".into()));
    api.status().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_api_off_loopback_needs_a_token() {
    let options = ProxyOptions {
        api_listen: Some("0.0.0.0:0".parse().unwrap()),
        ..Default::default()
    };
    let error = match server::start(support::topology(&nodes()), options).await {
        Ok(_) => panic!("a proxy with its API on 0.0.0.0 and no token started"),
        Err(error) => error,
    };
    assert!(matches!(error, ProxyError::Auth(_)), "{error}");
    assert!(error.to_string().contains("--token-file"), "{error}");

    let options = ProxyOptions {
        api_listen: Some("0.0.0.0:0".parse().unwrap()),
        api_token: Some("t0ken".into()),
        ..Default::default()
    };
    let proxy = server::start(support::topology(&nodes()), options)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", proxy.api_addr().port());
    let error = ApiClient::new(&url)
        .with_token(None)
        .status()
        .await
        .unwrap_err();
    assert_eq!(status_of(error), 401);
    ApiClient::new(&url)
        .with_token(Some("t0ken".into()))
        .status()
        .await
        .unwrap();
    proxy.shutdown().await;
}
