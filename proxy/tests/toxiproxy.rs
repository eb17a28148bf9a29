//! `rift toxiproxy`'s API as Toxiproxy 2.12 defines it (status codes, JSON shapes,
//! errors) and the toxics' effect on real traffic, including connections that were
//! open before the toxic was added.

mod support;

use std::time::{Duration, Instant};

use rift_proxy::toxiproxy::{Toxiproxy, api};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    url: String,
    http: reqwest::Client,
    toxiproxy: Toxiproxy,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let toxiproxy = Toxiproxy::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, toxiproxy.clone(), async move {
            let _ = stopped.await;
        }));
        Server {
            url,
            http: reqwest::Client::new(),
            toxiproxy,
            stop: Some(stop),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"))
        };
        (status, value)
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, Some(&body.to_string())).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} {body}: {status} {value}"
        );
        value
    }

    async fn shutdown(mut self) {
        self.toxiproxy.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn listen_of(proxy: &Value) -> String {
    proxy["listen"].as_str().unwrap().to_string()
}

fn assert_error(result: (u16, Value), status: u16, message: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["status"], status, "{}", result.1);
    let text = result.1["error"].as_str().unwrap_or_default();
    assert!(text.contains(message), "expected {message:?} in {text:?}");
}

async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, data);
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_are_created_listed_changed_and_deleted_as_toxiproxy_does() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let (status, version) = server.call("GET", "/version", None).await;
    assert_eq!((status, version["version"].as_str()), (200, Some("2.12.0")));

    let (status, created) = server
        .call(
            "POST",
            "/proxies",
            Some(
                &json!({"name": "echo", "listen": "localhost:0", "upstream": echo.to_string()})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["toxics"], json!([]));
    let listen = listen_of(&created);
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );

    let mut client = TcpStream::connect(&listen).await.unwrap();
    round_trip(&mut client, b"hello").await;

    server
        .ok("POST", "/proxies", json!({"name": "another", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": false}))
        .await;
    let all = server.ok("GET", "/proxies", Value::Null).await;
    let names: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(names, ["another", "echo"]);
    assert_eq!(all["another"]["enabled"], false);
    assert_eq!(all["another"]["listen"], "127.0.0.1:0");

    // Disabling closes the listener and the connections; the address is kept.
    let disabled = server
        .ok("PATCH", "/proxies/echo", json!({"enabled": false}))
        .await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(listen_of(&disabled), listen);
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(TcpStream::connect(&listen).await.is_err());
    // POST works as PATCH (clients older than 2.6 use it).
    let enabled = server
        .ok("POST", "/proxies/echo", json!({"enabled": true}))
        .await;
    assert_eq!(listen_of(&enabled), listen);
    let mut client = TcpStream::connect(&listen).await.unwrap();
    round_trip(&mut client, b"again").await;

    // A new upstream restarts the proxy on the same address.
    let moved = server
        .ok("PATCH", "/proxies/echo", json!({"upstream": "127.0.0.1:1"}))
        .await;
    assert_eq!(
        (moved["upstream"].as_str(), moved["enabled"].as_bool()),
        (Some("127.0.0.1:1"), Some(true))
    );
    assert_eq!(listen_of(&moved), listen);

    let (status, body) = server.call("DELETE", "/proxies/echo", None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_error(
        server.call("GET", "/proxies/echo", None).await,
        404,
        "proxy not found",
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_toxiproxy_status_and_a_clear_error() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let proxy = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": echo.to_string()});
    server.ok("POST", "/proxies", proxy.clone()).await;
    assert_error(
        server
            .call("POST", "/proxies", Some(&proxy.to_string()))
            .await,
        409,
        "proxy already exists",
    );
    assert_error(
        server.call("POST", "/proxies", Some("{\"name\": ")).await,
        400,
        "bad request body",
    );
    assert_error(
        server.call("POST", "/proxies", Some("")).await,
        400,
        "bad request body: EOF",
    );
    assert_error(
        server
            .call("POST", "/proxies", Some(r#"{"upstream": "x:1"}"#))
            .await,
        400,
        "missing required field: name",
    );
    assert_error(
        server
            .call("POST", "/proxies", Some(r#"{"name": "q"}"#))
            .await,
        400,
        "missing required field: upstream",
    );
    assert_error(
        server
            .call("POST", "/proxies", Some(r#"{"name": "q", "upstream": 5}"#))
            .await,
        400,
        "upstream: expected a string",
    );
    // Port already in use: Toxiproxy answers 500 with the bind error.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let (status, body) = server
        .call(
            "POST",
            "/proxies",
            Some(&json!({"name": "q", "listen": format!("127.0.0.1:{port}"), "upstream": echo.to_string()}).to_string()),
        )
        .await;
    assert_error((status, body), 500, "address already in use");
    assert_error(
        server.call("GET", "/proxies/q", None).await,
        404,
        "proxy not found",
    );

    assert_error(
        server.call("GET", "/proxies/nope/toxics", None).await,
        404,
        "proxy not found",
    );
    assert_error(
        server
            .call(
                "POST",
                "/proxies/nope/toxics",
                Some(r#"{"type": "latency"}"#),
            )
            .await,
        404,
        "proxy not found",
    );
    assert_error(
        server
            .call(
                "POST",
                "/proxies/p/toxics",
                Some(r#"{"type": "latency", "stream": "sideways"}"#),
            )
            .await,
        400,
        "stream was invalid, can be either upstream or downstream",
    );
    assert_error(
        server
            .call(
                "POST",
                "/proxies/p/toxics",
                Some(r#"{"type": "packet_loss"}"#),
            )
            .await,
        400,
        "invalid toxic type",
    );
    assert_error(
        server.call("POST", "/proxies/p/toxics", Some("[1,")).await,
        400,
        "bad request body",
    );
    for (attrs, field) in [
        (json!({"latency": 1_000_000_000_000i64}), "latency"),
        (json!({"latency": -1}), "latency"),
        (json!({"latency": "100"}), "latency"),
    ] {
        let body = json!({"type": "latency", "attributes": attrs}).to_string();
        assert_error(
            server.call("POST", "/proxies/p/toxics", Some(&body)).await,
            400,
            &format!("attributes.{field}"),
        );
    }
    for (kind, attrs, field) in [
        ("bandwidth", json!({"rate": i64::MAX}), "rate"),
        ("limit_data", json!({"bytes": u64::MAX}), "bytes"),
        ("slicer", json!({"average_size": 0}), "average_size"),
        ("timeout", json!({"timeout": 10_000_000_000i64}), "timeout"),
    ] {
        let body = json!({"type": kind, "attributes": attrs}).to_string();
        assert_error(
            server.call("POST", "/proxies/p/toxics", Some(&body)).await,
            400,
            &format!("attributes.{field}"),
        );
    }
    assert_error(
        server
            .call(
                "POST",
                "/proxies/p/toxics",
                Some(r#"{"type": "noop", "toxicity": 2}"#),
            )
            .await,
        400,
        "toxicity",
    );
    // Names are unique across both streams.
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"name": "t", "type": "noop", "stream": "upstream"}),
        )
        .await;
    assert_error(
        server
            .call(
                "POST",
                "/proxies/p/toxics",
                Some(r#"{"name": "t", "type": "latency", "stream": "downstream"}"#),
            )
            .await,
        409,
        "toxic already exists",
    );
    assert_error(
        server.call("GET", "/proxies/p/toxics/none", None).await,
        404,
        "toxic not found",
    );
    assert_error(
        server
            .call("PATCH", "/proxies/p/toxics/none", Some("{}"))
            .await,
        404,
        "toxic not found",
    );
    assert_error(
        server.call("DELETE", "/proxies/p/toxics/none", None).await,
        404,
        "toxic not found",
    );
    assert_error(
        server.call("DELETE", "/proxies/none", None).await,
        404,
        "proxy not found",
    );
    assert_error(
        server.call("PATCH", "/proxies/p/toxics/t", Some("{")).await,
        400,
        "bad request body",
    );
    // Nothing above disturbed the proxy.
    let shown = server.ok("GET", "/proxies/p", Value::Null).await;
    assert_eq!(shown["toxics"].as_array().unwrap().len(), 1);
    let mut client = TcpStream::connect(listen_of(&shown)).await.unwrap();
    round_trip(&mut client, b"still fine").await;
    // Browsers are refused, as Toxiproxy does.
    let response = server
        .http
        .get(format!("{}/proxies", server.url))
        .header("user-agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_have_toxiproxy_defaults_and_partial_updates_keep_attributes() {
    let echo = echo_server().await;
    let server = Server::start().await;
    server
        .ok(
            "POST",
            "/proxies",
            json!({"name": "p", "listen": "127.0.0.1:0", "upstream": echo.to_string()}),
        )
        .await;
    let toxic = server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "latency", "attributes": {"latency": 10, "jitter": 2}}),
        )
        .await;
    assert_eq!(
        toxic,
        json!({"attributes": {"latency": 10, "jitter": 2}, "name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0})
    );
    let updated = server
        .ok(
            "PATCH",
            "/proxies/p/toxics/latency_downstream",
            json!({"attributes": {"latency": 50}}),
        )
        .await;
    assert_eq!(updated["attributes"], json!({"latency": 50, "jitter": 2}));
    assert_eq!(updated["toxicity"], 1.0);
    let updated = server
        .ok(
            "POST",
            "/proxies/p/toxics/latency_downstream",
            json!({"toxicity": 0.5}),
        )
        .await;
    assert_eq!(updated["attributes"], json!({"latency": 50, "jitter": 2}));
    assert_eq!(updated["toxicity"], 0.5);
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 100}}),
        )
        .await;
    // Upstream toxics are listed first, as Toxiproxy's chains are.
    let list = server.ok("GET", "/proxies/p/toxics", Value::Null).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bandwidth_upstream", "latency_downstream"]);

    // /reset enables every proxy and removes every toxic.
    server
        .ok("PATCH", "/proxies/p", json!({"enabled": false}))
        .await;
    let (status, _) = server.call("POST", "/reset", None).await;
    assert_eq!(status, 204);
    let shown = server.ok("GET", "/proxies/p", Value::Null).await;
    assert_eq!(
        (shown["enabled"].as_bool(), shown["toxics"].clone()),
        (Some(true), json!([]))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populate_keeps_unchanged_proxies_and_replaces_changed_ones() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let (status, body) = server
        .call(
            "POST",
            "/populate",
            Some(&json!([
                {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.to_string()},
                {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": false}
            ])
            .to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let a_listen = listen_of(&body["proxies"][0]);
    server
        .ok("POST", "/proxies/a/toxics", json!({"type": "noop"}))
        .await;
    // Same listen and upstream: kept with its toxic. A new upstream: replaced.
    let (status, body) = server
        .call(
            "POST",
            "/populate",
            Some(
                &json!([
                    {"name": "a", "listen": a_listen, "upstream": echo.to_string()},
                    {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
                ])
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["proxies"][0]["toxics"].as_array().unwrap().len(), 1);
    assert_eq!(body["proxies"][1]["upstream"], "127.0.0.1:1");
    assert_eq!(body["proxies"][1]["enabled"], true);
    // Every entry is checked before any is applied.
    let (status, body) = server
        .call(
            "POST",
            "/populate",
            Some(r#"[{"name": "c", "upstream": "x:1"}, {"name": "d"}]"#),
        )
        .await;
    assert_error(
        (status, body),
        400,
        "missing required field: upstream at proxy 2",
    );
    assert_error(
        server.call("GET", "/proxies/c", None).await,
        404,
        "proxy not found",
    );
    // Not atomic: entries before a failing one stay.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (status, body) = server
        .call(
            "POST",
            "/populate",
            Some(&json!([
                {"name": "c", "listen": "127.0.0.1:0", "upstream": echo.to_string()},
                {"name": "d", "listen": taken.local_addr().unwrap().to_string(), "upstream": echo.to_string()}
            ])
            .to_string()),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("address already in use"),
        "{body}"
    );
    assert_eq!(body["proxies"].as_array().unwrap().len(), 1);
    server.ok("GET", "/proxies/c", Value::Null).await;
    server.shutdown().await;
}

async fn proxy_to(server: &Server, name: &str, upstream: std::net::SocketAddr) -> String {
    let created = server
        .ok(
            "POST",
            "/proxies",
            json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()}),
        )
        .await;
    listen_of(&created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_applies_to_a_connection_opened_before_it_and_goes_with_it() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let listen = proxy_to(&server, "p", echo).await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    round_trip(&mut client, b"warm").await;
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 150}}),
        )
        .await;
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 100}}),
        )
        .await;
    let slow = round_trip(&mut client, b"slow").await;
    assert!(
        slow >= Duration::from_millis(250),
        "latency not applied: {slow:?}"
    );
    // Toxicity 0: the toxic is there but this connection never draws it.
    server
        .ok(
            "PATCH",
            "/proxies/p/toxics/latency_upstream",
            json!({"toxicity": 0.0}),
        )
        .await;
    server
        .ok(
            "DELETE",
            "/proxies/p/toxics/latency_downstream",
            Value::Null,
        )
        .await;
    let mut fast = Duration::MAX;
    for _ in 0..3 {
        fast = fast.min(round_trip(&mut client, b"fast").await);
    }
    assert!(
        fast < Duration::from_millis(100),
        "latency not removed: {fast:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_zero_stalls_without_closing_and_delivers_everything_when_removed() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let listen = proxy_to(&server, "p", echo).await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "bandwidth", "attributes": {"rate": 0}}),
        )
        .await;
    let data = pattern(200_000, 3);
    let (mut reader, mut writer) = client.split();
    writer.write_all(&data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    let stalled = tokio::time::timeout(Duration::from_millis(300), reader.read(&mut back)).await;
    assert!(
        stalled.is_err(),
        "bytes crossed a rate-0 bandwidth toxic: {stalled:?}"
    );
    server
        .ok(
            "DELETE",
            "/proxies/p/toxics/bandwidth_downstream",
            Value::Null,
        )
        .await;
    reader.read_exact(&mut back).await.unwrap();
    assert_eq!(back, data);

    // A finite rate paces the stream: 50 KB/s for 20 KB takes at least ~0.4 s.
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "bandwidth", "attributes": {"rate": 50}}),
        )
        .await;
    let paced = round_trip(&mut client, &pattern(20_000, 4)).await;
    assert!(
        paced >= Duration::from_millis(300),
        "bandwidth not applied: {paced:?}"
    );
    server.shutdown().await;
}

async fn read_end(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let result = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the connection did not end");
    (got, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_swallows_data_and_its_removal_closes_the_connection() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let listen = proxy_to(&server, "p", echo).await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}}),
        )
        .await;
    client.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    let held = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
    assert!(
        held.is_err(),
        "timeout 0 must hold the connection open: {held:?}"
    );
    server
        .ok("DELETE", "/proxies/p/toxics/timeout_upstream", Value::Null)
        .await;
    let (got, _) = read_end(&mut client, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "swallowed bytes came back: {got:?}");

    // With a timeout, the connection closes by itself.
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "timeout", "attributes": {"timeout": 100}}),
        )
        .await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    let (got, _) = read_end(&mut client, Duration::from_secs(5)).await;
    assert!(got.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_limit_data_closes_slicer_and_slow_close_deliver() {
    let echo = echo_server().await;
    let server = Server::start().await;
    let listen = proxy_to(&server, "p", echo).await;

    server.ok("POST", "/proxies/p/toxics", json!({"name": "rst", "type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 50}})).await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    client.write_all(b"boom").await.unwrap();
    let (_, result) = read_end(&mut client, Duration::from_secs(5)).await;
    let error = result.expect_err("reset_peer must reset, not close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    server
        .ok("DELETE", "/proxies/p/toxics/rst", Value::Null)
        .await;

    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "limit_data", "attributes": {"bytes": 1000}}),
        )
        .await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    client.write_all(&pattern(5000, 1)).await.unwrap();
    let (got, _) = read_end(&mut client, Duration::from_secs(5)).await;
    assert_eq!(got, pattern(5000, 1)[..1000]);
    server
        .ok(
            "DELETE",
            "/proxies/p/toxics/limit_data_downstream",
            Value::Null,
        )
        .await;

    server.ok("POST", "/proxies/p/toxics", json!({"type": "slicer", "attributes": {"average_size": 100, "size_variation": 50, "delay": 100}})).await;
    server
        .ok(
            "POST",
            "/proxies/p/toxics",
            json!({"type": "slow_close", "attributes": {"delay": 200}}),
        )
        .await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    let data = pattern(10_000, 2);
    round_trip(&mut client, &data).await;
    let start = Instant::now();
    client.shutdown().await.unwrap();
    let (rest, result) = read_end(&mut client, Duration::from_secs(5)).await;
    assert!(rest.is_empty() && result.is_ok());
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "close not delayed: {:?}",
        start.elapsed()
    );
    server.shutdown().await;
}
