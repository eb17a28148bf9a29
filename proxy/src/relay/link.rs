//! The vocabulary of one relayed connection: its place in the link matrix, its two
//! byte directions, its two sockets, and why it ended.

use std::io;

/// A connection's place in the link matrix: dialer, target and endpoint indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub src: usize,
    pub dst: usize,
    pub endpoint: usize,
}

/// Forward bytes flow from the dialer (`src`) to the target (`dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
        }
    }

    /// The (from, to) identities of bytes moving in this direction.
    pub fn flow(self, link: Link) -> (usize, usize) {
        match self {
            Direction::Forward => (link.src, link.dst),
            Direction::Reverse => (link.dst, link.src),
        }
    }
}

/// Which socket of the connection an I/O error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        })
    }
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reset by a `reset` fault on the {0} direction")]
    FaultReset(&'static str),
    #[error("reset on heal: a blackhole discarded {discarded} bytes of the {direction} direction")]
    Gap {
        direction: &'static str,
        discarded: u64,
    },
    #[error("closed: the {direction} direction reached its data limit of {limit} bytes")]
    DataLimit { direction: &'static str, limit: u64 },
    #[error("{side} side failed to {op}: {source}")]
    Io {
        side: Side,
        op: &'static str,
        source: io::Error,
    },
}

impl RelayError {
    /// Whether the connection should end with a RST (zero linger) rather than a close:
    /// everything but a data limit, which closes like Toxiproxy's `limit_data`.
    pub fn resets_connection(&self) -> bool {
        !matches!(self, RelayError::DataLimit { .. })
    }
}
