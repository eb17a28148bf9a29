//! The control plane of a controller and its agents: the bearer token (missing, wrong,
//! enforced on loopback, required off loopback) and TLS between them (a peer signed by
//! another CA is refused, by name).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rift_proxy::cluster::ClusterTopology;
use rift_proxy::cluster::agent::{self, AgentOptions};
use rift_proxy::cluster::controller::{self, ControllerOptions, RunningController};
use rift_proxy::cluster::tls::TlsFiles;
use rift_proxy::server::RunningProxy;
use serde_json::{Value, json};

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn config(agents: usize) -> ClusterTopology {
    let mut text = String::new();
    for n in 1..=agents {
        let ip = format!("127.0.1.{n}");
        text.push_str(&format!(
            "[[agent]]\nname = \"h{n}\"\napi = \"{ip}:{}\"\nnodes = [\"n{n}\"]\n",
            free_port(&ip)
        ));
    }
    for n in 1..=agents {
        let upstream = support::echo_server().await;
        text.push_str(&format!(
            "[[node]]\nname = \"n{n}\"\nsource_ips = [\"127.0.1.{n}\"]\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.1.{n}:0\"\nupstream = \"{upstream}\"\n"
        ));
    }
    ClusterTopology::parse(&text, "test cluster").unwrap()
}

async fn start_controller(
    config: &ClusterTopology,
    token: Option<&str>,
    tls: TlsFiles,
) -> RunningController {
    controller::start(
        config.clone(),
        ControllerOptions {
            api_listen: Some("127.0.0.1:0".parse().unwrap()),
            api_token: token.map(str::to_string),
            tls,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn start_agent(
    name: &str,
    controller: &str,
    token: Option<&str>,
    tls: TlsFiles,
) -> Result<RunningProxy, agent::AgentError> {
    agent::start(AgentOptions {
        name: name.into(),
        controller: controller.into(),
        api_listen: None,
        token: token.map(str::to_string),
        events_path: None,
        fetch_deadline: Some(Duration::from_secs(3)),
        tls,
    })
    .await
}

/// An HTTP client with an optional token and CA.
fn http(tls: &TlsFiles) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    match tls.client().unwrap() {
        Some(config) => builder.use_preconfigured_tls(config),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = client.request(method, url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_agents_refuse_requests_without_the_token() {
    let config = config(2).await;
    let controller = start_controller(&config, Some("right-token"), TlsFiles::default()).await;
    let url = controller.api_url();
    let h1 = start_agent("h1", &url, Some("right-token"), TlsFiles::default())
        .await
        .unwrap();
    let h2 = start_agent("h2", &url, Some("right-token"), TlsFiles::default())
        .await
        .unwrap();
    let client = http(&TlsFiles::default());
    let post = reqwest::Method::POST;

    // No token: 401 from the controller and from an agent, even on loopback, and
    // nobody can push a version to an agent.
    let (status, _) = call(
        &client,
        post.clone(),
        format!("{url}/isolate"),
        None,
        json!({"node": "n1"}),
    )
    .await;
    assert_eq!(status, 401);
    let forged = json!({"epoch": 1, "version": 99, "faults": []});
    let (status, _) = call(
        &client,
        post.clone(),
        format!("{}/cluster/prepare", h1.api_url()),
        None,
        forged.clone(),
    )
    .await;
    assert_eq!(status, 401);
    // A wrong token: 401 too.
    let (status, _) = call(
        &client,
        post.clone(),
        format!("{}/cluster/prepare", h1.api_url()),
        Some("wrong-token"),
        forged,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &client,
        post.clone(),
        format!("{url}/heal"),
        Some("wrong-token"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(h1.control().snapshot().0, controller.control().snapshot().0);

    // An agent with a wrong token cannot fetch the matrix and says why.
    let error = start_agent("h2", &url, Some("wrong-token"), TlsFiles::default())
        .await
        .err()
        .expect("a wrong token is refused");
    let text = error.to_string();
    assert!(text.contains("401"), "{text}");

    // The right token works end to end: the change reaches both agents.
    let (status, body) = call(
        &client,
        post,
        format!("{url}/isolate"),
        Some("right-token"),
        json!({"node": "n1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["distribution"]["switched"], true, "{body}");
    assert_eq!(h2.control().snapshot().1.len(), 1);
    let metrics = client
        .get(format!("{url}/metrics"))
        .bearer_auth("right-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rift_api_unauthorized_total{reason=\"missing\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rift_api_unauthorized_total{reason=\"wrong\"}"),
        "{metrics}"
    );
    h1.shutdown().await;
    h2.shutdown().await;
    controller.shutdown().await;
}

#[tokio::test]
async fn off_loopback_the_controller_and_agents_need_a_token() {
    let config = config(1).await;
    let error = controller::start(
        config.clone(),
        ControllerOptions {
            api_listen: Some("0.0.0.0:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("no token off loopback");
    assert!(error.to_string().contains("0.0.0.0:0"), "{error}");
    assert!(error.to_string().contains("token"), "{error}");

    let controller = start_controller(&config, None, TlsFiles::default()).await;
    let error = agent::start(AgentOptions {
        name: "h1".into(),
        controller: controller.api_url(),
        api_listen: Some("0.0.0.0:0".parse().unwrap()),
        token: None,
        events_path: None,
        fetch_deadline: Some(Duration::from_secs(3)),
        tls: TlsFiles::default(),
    })
    .await
    .err()
    .expect("no token off loopback");
    assert!(error.to_string().contains("0.0.0.0:0"), "{error}");
    controller.shutdown().await;

    // With a token, off loopback is fine.
    let open = controller::start(
        config,
        ControllerOptions {
            api_listen: Some("0.0.0.0:0".parse().unwrap()),
            api_token: Some("a-token".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    open.shutdown().await;
}

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a certificate it signed for the loopback addresses, and another CA.
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("rift-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("rift test CA");
        let (other_cert, _) = ca("another CA");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for ip in ["127.0.0.1", "127.0.1.1", "127.0.1.2"] {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().unwrap()));
        }
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("other-ca.pem"), other_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn files(&self, ca: &str) -> TlsFiles {
        TlsFiles {
            cert: Some(self.dir.join("cert.pem")),
            key: Some(self.dir.join("key.pem")),
            ca: Some(self.dir.join(ca)),
        }
    }

    fn path(&self, name: &str) -> &Path {
        Box::leak(self.dir.join(name).into_boxed_path())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_between_controller_and_agents_refuses_a_peer_of_another_ca() {
    let pki = Pki::new();
    let config = config(2).await;
    let token = Some("tls-token");
    let controller = start_controller(&config, token, pki.files("ca.pem")).await;
    let url = controller.api_url();
    assert!(url.starts_with("https://"), "{url}");
    let h1 = start_agent("h1", &url, token, pki.files("ca.pem"))
        .await
        .unwrap();
    assert!(h1.api_url().starts_with("https://"));

    // An agent trusting another CA refuses the controller's certificate.
    let error = start_agent("h2", &url, token, pki.files("other-ca.pem"))
        .await
        .err()
        .expect("the controller's certificate is not from the other CA");
    let text = error.to_string();
    assert!(text.contains("certificate"), "{text}");
    let h2 = start_agent("h2", &url, token, pki.files("ca.pem"))
        .await
        .unwrap();

    // Over TLS with the right CA, a change reaches both agents.
    let client = http(&pki.files("ca.pem"));
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/isolate"),
        token,
        json!({"node": "n2"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["distribution"]["switched"], true, "{body}");
    assert_eq!(h1.control().snapshot().1.len(), 1);
    assert_eq!(h2.control().snapshot().1.len(), 1);
    // Plain HTTP to the TLS API gets nothing.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/status", controller.api_addr()))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A controller trusting another CA cannot prepare on the agents, and says so.
    let rogue = start_controller(&config, token, pki.files("other-ca.pem")).await;
    let rogue_client = http(&TlsFiles {
        ca: Some(pki.path("ca.pem").to_path_buf()),
        ..Default::default()
    });
    let (status, body) = call(
        &rogue_client,
        reqwest::Method::POST,
        format!("{}/heal", rogue.api_url()),
        token,
        Value::Null,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("no agent switched"), "{message}");
    assert!(message.contains("certificate"), "{message}");
    // The agents kept the real controller's version.
    assert_eq!(h1.control().snapshot().1.len(), 1);
    rogue.shutdown().await;
    h1.shutdown().await;
    h2.shutdown().await;
    controller.shutdown().await;
}
