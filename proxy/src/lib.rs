//! rift's data plane and control plane.
//!
//! The proxy knows nothing about Kafka or etcd: it relays TCP between named nodes and
//! applies directed faults from a link matrix.
//!
//! - [`topology`]: which nodes exist, their endpoints, and how to recognise them as sources.
//! - [`fault`]: the one fault model shared by the API, the CLI and profiles.
//! - [`matrix`]: the compiled, versioned (src, dst, endpoint) link matrix relays consult.
//! - [`profile`]: partition profiles as data, resolved against a topology.
//! - [`identity`]: who is dialing (source IP, or owning process on loopback).
//! - [`relay`]: the per-connection copy loop that obeys live fault changes.
//! - [`control`]: applying, expiring and healing faults; the event log.
//! - [`api`] / [`client`]: the HTTP control API and its client; [`auth`]: its bearer token.
//! - [`toxiproxy`]: Toxiproxy 2.12's HTTP API over runtime-created proxies and toxics.
//! - [`cluster`]: `rift controller` and `rift agent`, the matrix across hosts.
//! - [`server`]: wires listeners, relays, the control plane and metrics together.

pub mod api;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod control;
pub mod events;
pub mod fault;
pub mod harness;
pub mod identity;
pub mod matrix;
pub mod metrics;
pub mod profile;
pub mod relay;
pub mod server;
pub mod sys;
pub mod topology;
pub mod toxiproxy;

pub use sys::restore_default_sigpipe;
