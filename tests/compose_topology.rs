//! The rift topologies shipped beside the compose files load with rift's own parser and
//! validation (compose/tests checks them against the compose services; this checks
//! rift would accept them at all).

use std::path::Path;

use rift_proxy::topology::Topology;

fn load(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compose")
        .join(name);
    Topology::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn compose_topologies_are_valid_rift_topologies() {
    for (file, endpoints) in [
        ("rift-etcd.toml", vec!["peer", "client"]),
        (
            "rift-kafka.toml",
            vec!["replication", "controller", "client"],
        ),
    ] {
        let t = load(file);
        assert_eq!(t.nodes.len(), 3, "{file}");
        assert_eq!(t.endpoint_names(), endpoints, "{file}");
        assert!(
            t.nodes.iter().all(|n| n.source_ips.len() == 1),
            "{file}: one static IP per node"
        );
        assert_eq!(
            t.api.as_ref().map(|a| a.listen.port()),
            Some(7070),
            "{file}"
        );
        // What rift writes back is what it read.
        assert_eq!(Topology::parse(&t.to_toml(), file).unwrap(), t);
    }
}

#[test]
fn a_drifted_topology_with_a_reused_listen_port_is_rejected_naming_the_field() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/rift-kafka.toml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("0.0.0.0:12093", "0.0.0.0:11093");
    let err = Topology::parse(&text, "drifted rift-kafka.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("drifted rift-kafka.toml") && err.contains("listen") && err.contains("11093"),
        "{err}"
    );
}

#[test]
fn a_drifted_topology_giving_two_nodes_one_ip_is_rejected() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/rift-etcd.toml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("172.28.0.13", "172.28.0.12");
    let err = Topology::parse(&text, "drifted rift-etcd.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source_ips") && err.contains("172.28.0.12"),
        "{err}"
    );
}
