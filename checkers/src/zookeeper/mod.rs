//! ZooKeeper support: a lab of real ZooKeeper 3.9 servers behind rift, the `srvr`
//! observer, the register workload's ZooKeeper client, and ZooKeeper as a scenario
//! [`Cluster`](crate::scenario::Cluster) in the system registry. The checks it offers
//! are the shared history checks of [`crate::register`].

pub mod client;
pub mod lab;
pub mod observer;
pub mod plan;
pub mod system;
