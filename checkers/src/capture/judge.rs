//! The `no-crossing` judgement: from a packet capture alone (plus the proxy's map of
//! which TCP connections serve which link, and the fault windows from its event log),
//! did any payload reach the destination member of a cut link while the cut held?
//!
//! Bytes from node X to node Y reach Y on two kinds of TCP connection: on one X dialed
//! (rift's upstream connection, rift -> Y's real port) and on one Y dialed (rift's
//! listener for X -> Y's socket). Both are "delivered" segments; segments towards rift
//! are not, since a held byte is still read by rift's kernel.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use rift_proxy::control::ConnectionSockets;
use rift_proxy::fault::{Fault, LinkRule};
use serde::Serialize;
use serde_json::Value;

use super::pcap::Segment;

/// PASS, FAIL, or UNKNOWN when the capture lacks the evidence to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Judgement {
    Pass,
    Fail,
    Unknown,
}

/// One applied fault and when it ended, from the proxy's event log (ms resolution).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    pub id: u64,
    pub label: String,
    pub rules: Vec<LinkRule>,
    pub applied_unix_ms: u64,
    /// None while still active when the capture ended.
    pub healed_unix_ms: Option<u64>,
}

/// Fault windows from event-log entries (`apply`, `heal`, `expire`), in apply order.
pub fn windows_from_events(events: &[Value]) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    for event in events {
        let at = event["ts_unix_ms"].as_u64().unwrap_or(0);
        match event["event"].as_str() {
            Some("apply") => {
                let Some(id) = event["id"].as_u64() else {
                    continue;
                };
                let rules = serde_json::from_value(event["rules"].clone()).unwrap_or_default();
                windows.push(FaultWindow {
                    id,
                    label: event["label"].as_str().unwrap_or_default().to_string(),
                    rules,
                    applied_unix_ms: at,
                    healed_unix_ms: None,
                });
            }
            Some("heal") => {
                let healed: Vec<u64> = event["healed"]
                    .as_array()
                    .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                for window in windows.iter_mut().filter(|w| healed.contains(&w.id)) {
                    window.healed_unix_ms.get_or_insert(at);
                }
            }
            Some("expire") => {
                let id = event["id"].as_u64();
                for window in windows.iter_mut().filter(|w| Some(w.id) == id) {
                    window.healed_unix_ms.get_or_insert(at);
                }
            }
            _ => {}
        }
    }
    windows
}

/// What a rule's cut covers when judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The endpoints the rule names (all when it names none).
    #[default]
    Rule,
    /// Every endpoint of the (from, to) pair, whatever the rule names: a fault meant
    /// to cut the pair that cut only some endpoint fails.
    Pair,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    pub scope: Scope,
    /// Margin inside each window edge, in ms: the event time is taken just after the
    /// matrix changes, is truncated to the millisecond, and the capture stamps packets
    /// when it reads them (after the kernel delivered them).
    pub grace_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scope: Scope::Rule,
            grace_ms: 20,
        }
    }
}

/// Payload seen on one directed link in some period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Flow {
    pub packets: u64,
    pub bytes: u64,
    pub first_unix_us: Option<u64>,
    pub last_unix_us: Option<u64>,
    /// "rift ADDR -> member ADDR" of the connections that carried it (at most 5).
    pub connections: Vec<String>,
}

impl Flow {
    fn add(&mut self, segment: &Segment, endpoint: &str) {
        self.packets += 1;
        self.bytes += u64::from(segment.payload_len);
        self.first_unix_us.get_or_insert(segment.ts_us);
        self.last_unix_us = Some(segment.ts_us);
        let connection = format!("{} -> {} ({endpoint})", segment.src, segment.dst);
        if self.connections.len() < 5 && !self.connections.contains(&connection) {
            self.connections.push(connection);
        }
    }
}

/// The verdict on one directed rule of one fault window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkVerdict {
    pub fault_id: u64,
    pub from: String,
    pub to: String,
    /// Endpoints the rule covers; empty means all.
    pub endpoints: Vec<String>,
    pub fault: String,
    pub status: Judgement,
    pub reason: String,
    /// The judged period: apply + grace to heal - grace (or capture end), Unix µs.
    pub window_start_unix_us: u64,
    pub window_end_unix_us: u64,
    /// Payload delivered to `to` inside the judged period: must be empty.
    pub crossed: Flow,
    /// Payload delivered to `to` before the apply or after the heal: proves the capture saw the link.
    pub outside: Flow,
    /// RST segments on the link's connections between apply and heal (reset faults).
    pub resets: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoCrossing {
    pub status: Judgement,
    pub summary: String,
    pub links: Vec<LinkVerdict>,
    /// Segments with payload on the capture's ports that no known connection explains.
    pub unmapped_payload_segments: u64,
    pub segments: u64,
    /// Timing resolution of the judgement.
    pub resolution: String,
}

/// Which link and which way a segment goes, when it is delivered to a member.
#[derive(Debug, Clone, Copy)]
struct Delivery<'a> {
    from: &'a str,
    to: &'a str,
    endpoint: &'a str,
}

/// A connection and, when the segment is delivered to a member, the link it carries.
type Placed<'a> = (&'a ConnectionSockets, Option<Delivery<'a>>);

struct ConnectionMap<'a> {
    /// (sender, receiver) -> records using that 4-tuple direction, with whether the
    /// segment is delivered to a member (and the link direction it carries).
    by_tuple: HashMap<(SocketAddr, SocketAddr), Vec<Placed<'a>>>,
}

impl<'a> ConnectionMap<'a> {
    fn new(sockets: &'a [ConnectionSockets]) -> Self {
        let mut by_tuple: HashMap<_, Vec<_>> = HashMap::new();
        for s in sockets {
            let forward = Delivery {
                from: &s.src,
                to: &s.dst,
                endpoint: &s.endpoint,
            };
            let reverse = Delivery {
                from: &s.dst,
                to: &s.src,
                endpoint: &s.endpoint,
            };
            // The dialing member's connection to rift's listener.
            by_tuple
                .entry((s.client, s.listener))
                .or_default()
                .push((s, None));
            by_tuple
                .entry((s.listener, s.client))
                .or_default()
                .push((s, Some(reverse)));
            if let (Some(local), Some(peer)) = (s.upstream_local, s.upstream_peer) {
                by_tuple
                    .entry((local, peer))
                    .or_default()
                    .push((s, Some(forward)));
                by_tuple.entry((peer, local)).or_default().push((s, None));
            }
        }
        Self { by_tuple }
    }

    /// The connection a segment belongs to; when a 4-tuple was reused, the one open
    /// at the segment's time (or the latest opened before it).
    fn lookup(&self, segment: &Segment) -> Option<Placed<'a>> {
        let candidates = self.by_tuple.get(&(segment.src, segment.dst))?;
        let at_ms = segment.ts_us / 1000;
        candidates
            .iter()
            .filter(|(s, _)| s.opened_unix_ms <= at_ms + 1000)
            .max_by_key(|(s, _)| {
                let open_then = s.closed_unix_ms.is_none_or(|closed| closed + 1000 >= at_ms);
                (open_then, s.opened_unix_ms)
            })
            .or_else(|| candidates.first())
            .copied()
    }
}

fn covers(rule: &LinkRule, scope: Scope, from: &str, to: &str, endpoint: &str) -> bool {
    rule.from == from
        && rule.to == to
        && (scope == Scope::Pair
            || rule.endpoints.is_empty()
            || rule.endpoints.iter().any(|e| e == endpoint))
}

/// Judges every cut rule (hold, reset, blackhole) of every window; degradations are
/// not cuts and are left out.
pub fn judge(
    segments: &[Segment],
    sockets: &[ConnectionSockets],
    windows: &[FaultWindow],
    settings: Settings,
) -> NoCrossing {
    let map = ConnectionMap::new(sockets);
    let capture_end_us = segments.iter().map(|s| s.ts_us).max().unwrap_or(0);
    let mut unmapped = 0u64;
    // Resolve each segment once.
    let resolved: Vec<(&Segment, Option<Placed>)> = segments
        .iter()
        .map(|segment| {
            let found = map.lookup(segment);
            if found.is_none() && segment.payload_len > 0 {
                unmapped += 1;
            }
            (segment, found)
        })
        .collect();
    let grace_us = settings.grace_ms * 1000;
    let mut links = Vec::new();
    for window in windows {
        let applied_us = window.applied_unix_ms * 1000;
        let healed_us = window.healed_unix_ms.map(|ms| ms * 1000);
        let start = applied_us + grace_us;
        let end = healed_us.map_or(capture_end_us, |h| h.saturating_sub(grace_us));
        let mut judged = Vec::new();
        for rule in window.rules.iter().filter(|r| r.fault.is_cut()) {
            let endpoints = match settings.scope {
                Scope::Rule => rule.endpoints.clone(),
                Scope::Pair => Vec::new(),
            };
            let key = (rule.from.clone(), rule.to.clone(), endpoints.clone());
            if judged.contains(&key) {
                continue;
            }
            judged.push(key);
            let mut crossed = Flow::default();
            let mut outside = Flow::default();
            let mut resets = 0u64;
            for (segment, found) in &resolved {
                let Some((connection, delivery)) = found else {
                    continue;
                };
                let on_link = |from: &str, to: &str| {
                    covers(rule, settings.scope, from, to, &connection.endpoint)
                };
                if segment.is_rst()
                    && (on_link(&connection.src, &connection.dst)
                        || on_link(&connection.dst, &connection.src))
                    && segment.ts_us >= applied_us
                    && healed_us.is_none_or(|h| segment.ts_us <= h + grace_us)
                {
                    resets += 1;
                }
                let Some(delivery) = delivery else { continue };
                if segment.payload_len == 0
                    || !covers(
                        rule,
                        settings.scope,
                        delivery.from,
                        delivery.to,
                        delivery.endpoint,
                    )
                {
                    continue;
                }
                if segment.ts_us >= start && segment.ts_us <= end {
                    crossed.add(segment, delivery.endpoint);
                } else if segment.ts_us < applied_us || healed_us.is_some_and(|h| segment.ts_us > h)
                {
                    outside.add(segment, delivery.endpoint);
                }
            }
            let (status, reason) = link_judgement(rule, &crossed, &outside, resets);
            links.push(LinkVerdict {
                fault_id: window.id,
                from: rule.from.clone(),
                to: rule.to.clone(),
                endpoints,
                fault: rule.fault.name().to_string(),
                status,
                reason,
                window_start_unix_us: start,
                window_end_unix_us: end,
                crossed,
                outside,
                resets,
            });
        }
    }
    let status = if links.iter().any(|l| l.status == Judgement::Fail) {
        Judgement::Fail
    } else if links.is_empty() || links.iter().any(|l| l.status == Judgement::Unknown) {
        Judgement::Unknown
    } else {
        Judgement::Pass
    };
    let summary = summarize(status, &links, windows.len());
    NoCrossing {
        status,
        summary,
        links,
        unmapped_payload_segments: unmapped,
        segments: segments.len() as u64,
        resolution: format!(
            "packet times: µs, stamped when the capture read them; fault times: ms from the proxy's event log; window edges moved in by {} ms",
            settings.grace_ms
        ),
    }
}

fn link_judgement(
    rule: &LinkRule,
    crossed: &Flow,
    outside: &Flow,
    resets: u64,
) -> (Judgement, String) {
    let link = format!("{} -> {}", rule.from, rule.to);
    if crossed.bytes > 0 {
        return (
            Judgement::Fail,
            format!(
                "{} payload bytes in {} packets reached {} on {link} while the {} cut held (first at {}, last at {}; via {})",
                crossed.bytes,
                crossed.packets,
                rule.to,
                rule.fault.name(),
                rfc3339_us(crossed.first_unix_us.unwrap_or(0)),
                rfc3339_us(crossed.last_unix_us.unwrap_or(0)),
                crossed.connections.join(", ")
            ),
        );
    }
    if matches!(rule.fault, Fault::Reset) && resets == 0 {
        if outside.bytes > 0 {
            return (
                Judgement::Fail,
                format!(
                    "{link}: reset fault, but no RST on the link's connections between apply and heal"
                ),
            );
        }
        return (
            Judgement::Unknown,
            format!(
                "{link}: no RST seen and no payload outside the window: the capture may not have seen the link"
            ),
        );
    }
    if outside.bytes == 0 {
        return (
            Judgement::Unknown,
            format!(
                "{link}: no payload seen outside the fault window either, so the capture cannot tell a held link from an idle or unseen one"
            ),
        );
    }
    (
        Judgement::Pass,
        format!(
            "{link}: 0 payload bytes reached {} while cut; {} bytes in {} packets outside the window{}",
            rule.to,
            outside.bytes,
            outside.packets,
            if resets > 0 {
                format!("; {resets} RSTs")
            } else {
                String::new()
            }
        ),
    )
}

fn rfc3339_us(unix_us: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(unix_us);
    humantime::format_rfc3339_micros(at).to_string()
}

fn summarize(status: Judgement, links: &[LinkVerdict], windows: usize) -> String {
    let count = |j| links.iter().filter(|l| l.status == j).count();
    match status {
        Judgement::Pass => format!(
            "no payload crossed any of {} cut links in {windows} fault windows",
            links.len()
        ),
        Judgement::Fail => {
            let first = links
                .iter()
                .find(|l| l.status == Judgement::Fail)
                .map(|l| l.reason.clone())
                .unwrap_or_default();
            format!(
                "{} of {} cut links failed: {first}",
                count(Judgement::Fail),
                links.len()
            )
        }
        Judgement::Unknown if links.is_empty() => {
            format!("no cut link to judge ({windows} fault windows in the event log)")
        }
        Judgement::Unknown => format!(
            "{} of {} cut links lack evidence (no payload seen on them outside the window)",
            count(Judgement::Unknown),
            links.len()
        ),
    }
}

/// Per-link payload totals by delivery direction, for a capture summary.
pub fn payload_by_link(
    segments: &[Segment],
    sockets: &[ConnectionSockets],
) -> BTreeMap<String, u64> {
    let map = ConnectionMap::new(sockets);
    let mut totals = BTreeMap::new();
    for segment in segments.iter().filter(|s| s.payload_len > 0) {
        if let Some((_, Some(d))) = map.lookup(segment) {
            *totals
                .entry(format!("{} -> {} ({})", d.from, d.to, d.endpoint))
                .or_insert(0) += u64::from(segment.payload_len);
        }
    }
    totals
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
