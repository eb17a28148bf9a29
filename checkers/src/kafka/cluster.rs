//! Who is who in a Kafka cluster behind rift: node name, Kafka node id, the address
//! each listener has through rift and the real one. Built from a lab, or by hand for a
//! cluster rift did not start.

use std::net::SocketAddr;

use serde::Serialize;

use crate::lab::kafka::KafkaLab;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerInfo {
    pub name: String,
    pub id: i32,
    /// The client listener through rift (what workloads use).
    pub client: SocketAddr,
    /// The real client listener (what observers use).
    pub direct_client: SocketAddr,
    /// The real controller listener (DescribeQuorum).
    pub direct_controller: SocketAddr,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterInfo {
    pub brokers: Vec<BrokerInfo>,
}

impl ClusterInfo {
    pub fn from_lab(lab: &KafkaLab) -> Self {
        Self {
            brokers: lab
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    name: b.name.clone(),
                    id: b.id,
                    client: b.client,
                    direct_client: b.direct_client,
                    direct_controller: b.direct_controller,
                })
                .collect(),
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.name == name)
    }

    pub fn by_id(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// Node name of Kafka node `id`, or `id=N` for an id the lab does not know.
    pub fn name_of(&self, id: i32) -> String {
        self.by_id(id)
            .map(|b| b.name.clone())
            .unwrap_or_else(|| format!("id={id}"))
    }

    pub fn names_of(&self, ids: &[i32]) -> Vec<String> {
        ids.iter().map(|id| self.name_of(*id)).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.brokers.iter().map(|b| b.name.clone()).collect()
    }

    /// Bootstrap list through rift, for all brokers.
    pub fn bootstrap(&self) -> String {
        join(self.brokers.iter().map(|b| b.client))
    }

    /// Bootstrap list through rift for some brokers (a client on their side).
    pub fn bootstrap_of(&self, names: &[String]) -> String {
        join(
            self.brokers
                .iter()
                .filter(|b| names.contains(&b.name))
                .map(|b| b.client),
        )
    }

    /// Real client listeners of all brokers, for observers.
    pub fn direct_bootstrap(&self) -> String {
        join(self.brokers.iter().map(|b| b.direct_client))
    }
}

fn join(addrs: impl Iterator<Item = SocketAddr>) -> String {
    addrs.map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}
