//! Nodes named by DNS (`source_hosts`), as the Helm chart names pods: an agent resolves
//! the names of the topology it fetched from the controller before it accepts a
//! connection, so a peer dialing from a resolved address is that node (and its faults
//! apply), while an address no name resolves to stays `client`.

mod support;

use std::time::Duration;

use rift_proxy::client::ApiClient;
use rift_proxy::cluster::ClusterTopology;
use rift_proxy::cluster::agent::{self, AgentOptions};
use rift_proxy::cluster::controller::{self, ControllerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_agent(name: &str, controller: &str) -> rift_proxy::server::RunningProxy {
    agent::start(AgentOptions {
        name: name.into(),
        controller: controller.into(),
        api_listen: None,
        token: None,
        events_path: None,
        fetch_deadline: Some(Duration::from_secs(5)),
        tls: Default::default(),
    })
    .await
    .unwrap()
}

async fn echoes(stream: &mut TcpStream, byte: u8, wait: Duration) -> bool {
    stream.write_all(&[byte]).await.unwrap();
    let mut buf = [0u8; 1];
    match tokio::time::timeout(wait, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => buf[0] == byte,
        Ok(Err(e)) => panic!("connection failed: {e}"),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_identifies_peers_by_resolved_host_names() {
    let upstream = support::echo_server().await;
    // n1 is whoever `localhost` resolves to (127.0.0.1); n2 is named by its IP.
    let text = format!(
        "[[agent]]\nname = \"h1\"\napi = \"127.0.1.1:{}\"\nnodes = [\"n1\"]\n\n\
         [[agent]]\nname = \"h2\"\napi = \"127.0.1.2:{}\"\nnodes = [\"n2\"]\n\n\
         [[node]]\nname = \"n1\"\nsource_hosts = [\"localhost\"]\n\
         [[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.1.1:0\"\nupstream = \"{upstream}\"\n\n\
         [[node]]\nname = \"n2\"\nsource_ips = [\"127.0.1.2\"]\n\
         [[node.endpoint]]\nname = \"peer\"\nlisten = \"127.0.1.2:0\"\nupstream = \"{upstream}\"\n",
        free_port("127.0.1.1"),
        free_port("127.0.1.2"),
    );
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
    let h1 = start_agent("h1", &controller.api_url()).await;
    let h2 = start_agent("h2", &controller.api_url()).await;
    let listen = support::listen(&h2, "n2", "peer");
    let mut from_n1 = support::connect_from("127.0.0.1", listen).await;
    let mut from_other = support::connect_from("127.0.0.3", listen).await;
    assert!(echoes(&mut from_n1, 1, Duration::from_secs(5)).await);
    assert!(echoes(&mut from_other, 2, Duration::from_secs(5)).await);

    let status = h2.control().status();
    let sources: Vec<(String, String)> = status
        .connections
        .iter()
        .filter(|g| g.active > 0)
        .map(|g| (g.src.clone(), g.dst.clone()))
        .collect();
    assert!(sources.contains(&("n1".into(), "n2".into())), "{sources:?}");
    assert!(
        sources.contains(&("client".into(), "n2".into())),
        "{sources:?}"
    );

    // Cut n1 -> n2 only: the connection from the resolved address is held, the other
    // source's is not.
    let client = ApiClient::new(&controller.api_url()).with_token(None);
    client
        .partition(
            vec![vec!["n1".into()], vec!["n2".into()]],
            None,
            vec![],
            None,
        )
        .await
        .unwrap();
    assert!(
        !echoes(&mut from_n1, 3, Duration::from_millis(300)).await,
        "n1 -> n2 should be held"
    );
    assert!(
        echoes(&mut from_other, 4, Duration::from_secs(5)).await,
        "client -> n2 is not cut"
    );
    client.heal().await.unwrap();
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), from_n1.read_exact(&mut buf))
        .await
        .expect("the held byte arrives after heal")
        .unwrap();
    assert_eq!(buf[0], 3);

    h1.shutdown().await;
    h2.shutdown().await;
    controller.shutdown().await;
}
