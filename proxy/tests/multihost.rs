//! rift across hosts: a controller and one agent per node, each on its own loopback
//! address, peers identified by source address. Changes reach every agent in two
//! phases; an unreachable agent blocks the switch and is named with the version each
//! agent holds; a restarted agent fetches the committed matrix before it accepts a
//! connection; heal converges once the agent is back.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use rift_proxy::client::{ApiClient, ClientError};
use rift_proxy::cluster::ClusterTopology;
use rift_proxy::cluster::agent::{self, AgentOptions};
use rift_proxy::cluster::controller::{self, ControllerOptions, RunningController};
use rift_proxy::server::RunningProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn ip(i: usize) -> String {
    format!("127.0.1.{}", i + 1)
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    controller: RunningController,
    agents: Vec<Option<RunningProxy>>,
}

async fn start_cluster() -> Cluster {
    let mut text = String::new();
    for (i, node) in NODES.iter().enumerate() {
        text.push_str(&format!(
            "[[agent]]\nname = \"h{}\"\napi = \"{}:{}\"\nnodes = [\"{node}\"]\n\n",
            i + 1,
            ip(i),
            free_port(&ip(i)),
        ));
    }
    for (i, node) in NODES.iter().enumerate() {
        let upstream = support::echo_server().await;
        text.push_str(&format!(
            "[[node]]\nname = \"{node}\"\nsource_ips = [\"{}\"]\n[[node.endpoint]]\nname = \"peer\"\nlisten = \"{}:0\"\nupstream = \"{upstream}\"\n\n",
            ip(i),
            ip(i)
        ));
    }
    let config = ClusterTopology::parse(&text, "test cluster").unwrap();
    let controller = controller::start(
        config,
        ControllerOptions {
            api_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut cluster = Cluster {
        controller,
        agents: Vec::new(),
    };
    for i in 0..NODES.len() {
        let agent = cluster.start_agent(i).await;
        cluster.agents.push(Some(agent));
    }
    let c = cluster.controller.controller();
    eventually_async("every agent to hold the first version", || {
        let c = c.clone();
        async move { c.converged() }
    })
    .await;
    cluster
}

impl Cluster {
    async fn start_agent(&self, i: usize) -> RunningProxy {
        agent::start(AgentOptions {
            name: format!("h{}", i + 1),
            controller: self.controller.api_url(),
            api_listen: None,
            token: None,
            events_path: None,
            fetch_deadline: Some(Duration::from_secs(5)),
            tls: Default::default(),
        })
        .await
        .unwrap()
    }

    fn agent(&self, i: usize) -> &RunningProxy {
        self.agents[i].as_ref().expect("agent running")
    }

    /// Where agent `i` listens for its node's peer endpoint.
    fn listen(&self, i: usize) -> SocketAddr {
        support::listen(self.agent(i), NODES[i], "peer")
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(&self.controller.api_url()).with_token(None)
    }

    fn versions(&self) -> Vec<Option<u64>> {
        self.agents
            .iter()
            .map(|a| a.as_ref().map(|a| a.control().snapshot().0))
            .collect()
    }

    async fn shutdown(mut self) {
        for agent in self.agents.drain(..).flatten() {
            agent.shutdown().await;
        }
        self.controller.shutdown().await;
    }
}

async fn eventually_async<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `byte` and says whether it came back within `wait`.
async fn echoes(stream: &mut TcpStream, byte: u8, wait: Duration) -> bool {
    stream.write_all(&[byte]).await.unwrap();
    let mut buf = [0u8; 1];
    match tokio::time::timeout(wait, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => {
            assert_eq!(buf[0], byte);
            true
        }
        Ok(Err(e)) => panic!("connection failed: {e}"),
        Err(_) => false,
    }
}

async fn read_byte(stream: &mut TcpStream) -> u8 {
    let mut buf = [0u8; 1];
    tokio::time::timeout(LONG, stream.read_exact(&mut buf))
        .await
        .expect("a byte within 5 s")
        .expect("the connection is open");
    buf[0]
}

fn api_error(error: ClientError) -> (u16, String) {
    match error {
        ClientError::Api {
            status, message, ..
        } => (status, message),
        other => panic!("expected an API error, got {other}"),
    }
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_against_the_controller_and_agents_switch_together() {
    let cluster = start_cluster().await;
    let client = cluster.client();
    // n1 dials n2 and n3 through their agents, recognised by its source address.
    let mut n1_n2 = support::connect_from(&ip(0), cluster.listen(1)).await;
    let mut n1_n3 = support::connect_from(&ip(0), cluster.listen(2)).await;
    assert!(echoes(&mut n1_n2, 1, LONG).await);
    assert!(echoes(&mut n1_n3, 2, LONG).await);

    let fault = client.isolate("n2", None, vec![], None).await.unwrap();
    let version = cluster.controller.control().snapshot().0;
    // The answer came after every agent switched.
    assert_eq!(cluster.versions(), vec![Some(version); 3]);
    assert!(
        !echoes(&mut n1_n2, 3, SHORT).await,
        "n1 -> n2 should be held"
    );
    assert!(echoes(&mut n1_n3, 4, LONG).await, "n1 -> n3 is not cut");
    // The agents report the controller's fault.
    let on_h1 = cluster.agent(0).control().status();
    assert_eq!(on_h1.faults.len(), 1);
    assert_eq!(on_h1.faults[0].id, fault.id);

    let status = client.status().await.unwrap();
    let c = status
        .cluster
        .expect("the controller's status has a cluster part");
    assert!(c.converged, "{c:?}");
    assert!(c.agents.iter().all(|a| a.up && a.version == Some(version)));
    let last = c.changes.last().expect("a switch record");
    assert_eq!((last.version, last.agents), (version, 3));
    assert!(last.skew_us <= last.window_us + 1000.0, "{last:?}");
    assert!(c.skew.p99_us.is_some());
    // Connections are read from the agents.
    assert!(
        status
            .connections
            .iter()
            .any(|g| g.src == "n1" && g.dst == "n3" && g.active == 1),
        "{:?}",
        status.connections
    );

    // A profile, a partition, and one fault healed by id.
    let mut bindings = rift_proxy::profile::Bindings::new();
    bindings.insert("target".into(), "n3".into());
    let minority = client
        .apply_profile("minority-isolation", &bindings, None)
        .await
        .unwrap();
    assert!(
        !echoes(&mut n1_n3, 5, SHORT).await,
        "n1 -> n3 should be held"
    );
    client.heal_fault(minority.id).await.unwrap();
    assert_eq!(read_byte(&mut n1_n3).await, 5, "the held byte arrives");
    client
        .partition(
            vec![vec!["n1".into()], vec!["n2".into(), "n3".into()]],
            None,
            vec![],
            None,
        )
        .await
        .unwrap();
    assert!(!echoes(&mut n1_n3, 6, SHORT).await);

    let healed = client.heal().await.unwrap();
    assert_eq!(healed, 2);
    assert_eq!(read_byte(&mut n1_n2).await, 3);
    assert_eq!(read_byte(&mut n1_n3).await, 6);
    let v = cluster.controller.control().snapshot().0;
    assert_eq!(cluster.versions(), vec![Some(v); 3]);

    let events = client.events(0).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "distribute" && e["switched"] == true),
        "{events:?}"
    );
    let metrics = client.metrics().await.unwrap();
    assert!(
        metrics.contains("rift_cluster_switch_skew_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rift_cluster_agent_version{agent=\"h3\"}"),
        "{metrics}"
    );

    // An agent takes changes only from its controller.
    let agent_api = ApiClient::new(&cluster.agent(0).api_url()).with_token(None);
    let (status, message) = api_error(
        agent_api
            .isolate("n1", None, vec![], None)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 409);
    assert!(message.contains(&cluster.controller.api_url()), "{message}");
    assert!(agent_api.status().await.unwrap().faults.is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_during_a_fault_restarts_holding_it_and_heal_converges() {
    let mut cluster = start_cluster().await;
    let client = cluster.client();
    client.isolate("n2", None, vec![], None).await.unwrap();
    let faulted = cluster.controller.control().snapshot().0;
    // n2 dials n1 through h1: held.
    let mut n2_n1 = support::connect_from(&ip(1), cluster.listen(0)).await;
    assert!(!echoes(&mut n2_n1, 7, SHORT).await);

    // Kill h2 (its listeners, connections and API go away) while n2 is isolated.
    cluster.agents[1].take().unwrap().shutdown().await;
    let (status, message) = api_error(client.heal().await.unwrap_err());
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("h2 is unreachable"), "{message}");
    assert!(
        message.contains(&format!("h1 holds version {faulted}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("h3 holds version {faulted}")),
        "{message}"
    );
    assert!(message.contains("no agent switched"), "{message}");
    // No agent switched: n2 -> n1 is still held on h1.
    assert_eq!(cluster.versions(), vec![Some(faulted), None, Some(faulted)]);
    assert!(!echoes(&mut n2_n1, 8, SHORT).await);
    let c = client.status().await.unwrap().cluster.unwrap();
    assert!(!c.converged);
    let h2 = c.agents.iter().find(|a| a.name == "h2").unwrap();
    assert!(!h2.up && h2.last_error.is_some(), "{h2:?}");

    // Restarted, h2 fetches the committed version (the isolation, which h1 and h3 still
    // hold) before its listener accepts anything.
    let restarted = cluster.start_agent(1).await;
    let (version, faults) = restarted.control().snapshot();
    assert_eq!(version, faulted);
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].label, "isolate");
    cluster.agents[1] = Some(restarted);

    // Then the controller brings every agent to the heal, all together.
    let controller = cluster.controller.controller();
    eventually_async("the heal to reach every agent", || {
        let c = controller.clone();
        async move { c.converged() }
    })
    .await;
    let healed = cluster.controller.control().snapshot().0;
    assert!(healed > faulted);
    assert_eq!(cluster.versions(), vec![Some(healed); 3]);
    assert_eq!(read_byte(&mut n2_n1).await, 7);
    assert_eq!(read_byte(&mut n2_n1).await, 8);
    let mut n1_n2 = support::connect_from(&ip(0), cluster.listen(1)).await;
    assert!(echoes(&mut n1_n2, 9, LONG).await);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_an_agent_is_down_names_the_versions_and_lands_when_it_returns() {
    let mut cluster = start_cluster().await;
    let client = cluster.client();
    let before = cluster.controller.control().snapshot().0;
    cluster.agents[2].take().unwrap().shutdown().await;
    let (status, message) = api_error(client.isolate("n1", None, vec![], None).await.unwrap_err());
    assert_eq!(status, 503);
    assert!(message.contains("h3 is unreachable"), "{message}");
    assert!(
        message.contains(&format!("h1 holds version {before}")),
        "{message}"
    );
    // The fault stays the controller's wish; the healthy agents did not switch.
    assert_eq!(client.status().await.unwrap().faults.len(), 1);
    let mut n1_n2 = support::connect_from(&ip(0), cluster.listen(1)).await;
    assert!(
        echoes(&mut n1_n2, 1, LONG).await,
        "h2 must not switch alone"
    );

    let restarted = cluster.start_agent(2).await;
    cluster.agents[2] = Some(restarted);
    let controller = cluster.controller.controller();
    eventually_async("the isolation to reach every agent", || {
        let c = controller.clone();
        async move { c.converged() }
    })
    .await;
    assert!(
        !echoes(&mut n1_n2, 2, SHORT).await,
        "now every agent holds n1's isolation"
    );
    client.heal().await.unwrap();
    assert_eq!(read_byte(&mut n1_n2).await, 2);
    cluster.shutdown().await;
}
