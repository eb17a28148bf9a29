//! Evidence from the wire: packet captures of the traffic between rift and the
//! members, and the `no-crossing` judgement that reads them.
//!
//! - [`pcap`]: classic pcap writing/reading and TCP header parsing (pure).
//! - [`judge`]: did payload reach the destination of a cut link while it was cut (pure).
//! - [`files`]: a recording directory's files, judged after the fact (pure).
//! - `live` (feature `capture`): the pnet capture on an interface, filtered to ports.
//! - `record` (feature `capture`): capture plus the proxy's socket map and events.
//! - [`scenario`]: `no-crossing` tables of scenario files, judged after a captured run.

pub mod files;
pub mod judge;
#[cfg(feature = "capture")]
pub mod live;
pub mod pcap;
#[cfg(feature = "capture")]
pub mod record;
pub mod scenario;
