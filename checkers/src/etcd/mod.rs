//! etcd support: observers (one etcd-client per member), the Put and register
//! workloads, checkers,
//! and etcd as a scenario [`Cluster`](crate::scenario::Cluster).

pub mod checks;
pub mod final_reads;
pub mod observer;
pub mod register;
pub mod system;
pub mod workload;
