//! Classic pcap files (magic `a1b2c3d4`, microsecond timestamps, link type 1 =
//! Ethernet) and the Ethernet/IP/TCP header parsing the no-crossing judgement needs.
//! Pure code over bytes: the live capture writes with [`PcapWriter`], the checker
//! reads with [`read_pcap`] and [`parse_tcp`], and tests build frames with
//! [`tcp_frame`].

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// The classic pcap magic number, microsecond timestamps.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// The same with nanosecond timestamps (written by some tools; read here too).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET (DLT_EN10MB): what pnet yields on `lo` (zero MACs) and bridges.
pub const LINKTYPE_ETHERNET: u32 = 1;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

#[derive(Debug, Error)]
pub enum PcapError {
    #[error("{what}: not a pcap file (magic {magic:#010x}; expected a1b2c3d4)")]
    Magic { what: String, magic: u32 },
    #[error("{what}: link type {linktype} is not Ethernet (1)")]
    LinkType { what: String, linktype: u32 },
    #[error("{what}: truncated at byte {offset}")]
    Truncated { what: String, offset: usize },
    #[error("{what}: record at byte {offset} claims {len} bytes (snap length {snaplen})")]
    Oversized {
        what: String,
        offset: usize,
        len: u32,
        snaplen: u32,
    },
    #[error("cannot write pcap: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
}

/// Writes a classic little-endian pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header; frames longer than `snaplen` are cut to it (their
    /// original length is kept in the record header).
    pub fn new(mut out: W, snaplen: u32) -> Result<Self, PcapError> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&snaplen.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)
            .map_err(|source| PcapError::Write { source })?;
        Ok(Self { out, snaplen })
    }

    /// One frame seen at `ts_us` (microseconds since the Unix epoch).
    pub fn write_frame(&mut self, ts_us: u64, frame: &[u8]) -> Result<(), PcapError> {
        let kept = frame.len().min(self.snaplen as usize);
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        header[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        header[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .write_all(&header)
            .and_then(|()| self.out.write_all(&frame[..kept]))
            .map_err(|source| PcapError::Write { source })
    }

    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.out
            .flush()
            .map_err(|source| PcapError::Write { source })
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub ts_us: u64,
    /// The frame's length on the wire (the record may hold fewer bytes).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Reads a classic pcap (either byte order, micro- or nanosecond timestamps) of
/// Ethernet frames. `what` names the file in errors.
pub fn read_pcap(bytes: &[u8], what: &str) -> Result<Vec<Record>, PcapError> {
    let truncated = |offset| PcapError::Truncated {
        what: what.to_string(),
        offset,
    };
    if bytes.len() < 24 {
        return Err(truncated(bytes.len()));
    }
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let raw = le(&bytes[0..4]);
    let (swap, nanos) = match raw {
        MAGIC => (false, false),
        MAGIC_NANOS => (false, true),
        m if m.swap_bytes() == MAGIC => (true, false),
        m if m.swap_bytes() == MAGIC_NANOS => (true, true),
        magic => {
            return Err(PcapError::Magic {
                what: what.to_string(),
                magic,
            });
        }
    };
    let word = |b: &[u8]| if swap { le(b).swap_bytes() } else { le(b) };
    let snaplen = word(&bytes[16..20]);
    let linktype = word(&bytes[20..24]);
    if linktype != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType {
            what: what.to_string(),
            linktype,
        });
    }
    let mut records = Vec::new();
    let mut offset = 24;
    while offset < bytes.len() {
        if bytes.len() - offset < 16 {
            return Err(truncated(offset));
        }
        let h = &bytes[offset..offset + 16];
        let (secs, frac, incl, orig) = (
            word(&h[0..4]),
            word(&h[4..8]),
            word(&h[8..12]),
            word(&h[12..16]),
        );
        // Some writers put 0 or 262144 in the header; bound by the larger of it and 256 KiB.
        if incl > snaplen.max(262_144) {
            return Err(PcapError::Oversized {
                what: what.to_string(),
                offset,
                len: incl,
                snaplen,
            });
        }
        let start = offset + 16;
        let end = start + incl as usize;
        if end > bytes.len() {
            return Err(truncated(offset));
        }
        let micros = if nanos { frac / 1000 } else { frac };
        records.push(Record {
            ts_us: u64::from(secs) * 1_000_000 + u64::from(micros),
            orig_len: orig,
            data: bytes[start..end].to_vec(),
        });
        offset = end;
    }
    Ok(records)
}

/// A TCP segment's addressing, flags and payload length (from the IP lengths, so a
/// frame cut at the snap length still counts all its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub ts_us: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub payload_len: u32,
}

impl Segment {
    pub fn is_rst(&self) -> bool {
        self.flags & TCP_RST != 0
    }
}

/// The TCP segment in an Ethernet frame, if it carries IPv4 or IPv6 with TCP (no IPv6
/// extension headers, which loopback and bridge traffic do not use).
pub fn parse_tcp(ts_us: u64, frame: &[u8]) -> Option<Segment> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src_ip, dst_ip, tcp, ip_payload_len): (IpAddr, IpAddr, &[u8], usize) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != PROTO_TCP {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], *ip.get(15)?);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], *ip.get(19)?);
            (
                src.into(),
                dst.into(),
                ip.get(ihl..)?,
                total.checked_sub(ihl)?,
            )
        }
        ETHERTYPE_IPV6 => {
            if ip.first()? >> 4 != 6 || *ip.get(6)? != PROTO_TCP {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                ip.get(40..)?,
                len,
            )
        }
        _ => return None,
    };
    let src_port = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dst_port = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    if data_offset < 20 {
        return None;
    }
    Some(Segment {
        ts_us,
        src: SocketAddr::new(src_ip, src_port),
        dst: SocketAddr::new(dst_ip, dst_port),
        flags,
        payload_len: ip_payload_len.saturating_sub(data_offset) as u32,
    })
}

/// Drops the second copy of each loopback frame. A packet socket on `lo` sees every
/// frame twice, once leaving and once arriving (libpcap drops the outgoing copy; pnet
/// cannot tell them apart), and the two copies are byte for byte the same.
#[derive(Default)]
pub struct LoopbackDedup {
    recent: std::collections::VecDeque<(u64, u64)>,
}

impl LoopbackDedup {
    /// Copies arrive within microseconds of each other; a frame older than this is
    /// never a partner.
    const WINDOW_US: u64 = 50_000;
    const KEPT: usize = 512;

    /// Whether `frame` (seen at `ts_us`) is the second copy of a recent one.
    pub fn is_copy(&mut self, ts_us: u64, frame: &[u8]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        frame.hash(&mut hasher);
        let hash = hasher.finish();
        while self
            .recent
            .front()
            .is_some_and(|&(_, at)| at + Self::WINDOW_US < ts_us)
        {
            self.recent.pop_front();
        }
        if let Some(i) = self.recent.iter().position(|&(h, _)| h == hash) {
            // Paired: a third identical frame is a real retransmission.
            self.recent.remove(i);
            return true;
        }
        self.recent.push_back((hash, ts_us));
        if self.recent.len() > Self::KEPT {
            self.recent.pop_front();
        }
        false
    }
}

/// An Ethernet/IPv4/TCP frame with zero MACs (as pnet yields on `lo`) carrying
/// `payload_len` zero bytes: for synthetic captures in tests and tools.
pub fn tcp_frame(src: SocketAddr, dst: SocketAddr, flags: u8, payload_len: u16) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("tcp_frame builds IPv4 frames only, got {src} -> {dst}");
    };
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let total = 20 + 20 + payload_len;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0]);
    ip.extend_from_slice(&s.octets());
    ip.extend_from_slice(&d.octets());
    let checksum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&src.port().to_be_bytes());
    frame.extend_from_slice(&dst.port().to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    frame.resize(frame.len() + usize::from(payload_len), 0);
    frame
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn written_frames_read_back_with_times_lengths_and_tcp_fields() {
        let a = addr("127.0.0.1:40000");
        let b = addr("127.0.0.1:2380");
        let mut writer = PcapWriter::new(Vec::new(), 96).unwrap();
        writer
            .write_frame(
                1_700_000_000_123_456,
                &tcp_frame(a, b, TCP_PSH | TCP_ACK, 500),
            )
            .unwrap();
        writer
            .write_frame(1_700_000_001_000_001, &tcp_frame(b, a, TCP_RST, 0))
            .unwrap();
        let bytes = writer.into_inner();
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 1);
        let records = read_pcap(&bytes, "test.pcap").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].ts_us, 1_700_000_000_123_456);
        assert_eq!(records[0].orig_len, 14 + 40 + 500);
        assert_eq!(records[0].data.len(), 96, "cut at the snap length");
        let first = parse_tcp(records[0].ts_us, &records[0].data).unwrap();
        assert_eq!((first.src, first.dst), (a, b));
        assert_eq!(first.payload_len, 500, "payload comes from the IP length");
        assert!(!first.is_rst());
        let second = parse_tcp(records[1].ts_us, &records[1].data).unwrap();
        assert!(second.is_rst());
        assert_eq!(second.payload_len, 0);
    }

    #[test]
    fn big_endian_and_nanosecond_files_are_read() {
        let frame = tcp_frame(addr("10.0.0.1:1"), addr("10.0.0.2:2"), TCP_ACK, 3);
        let mut bytes = Vec::new();
        for v in [MAGIC_NANOS, 0x0002_0004, 0, 0, 65535, 1] {
            bytes.extend_from_slice(&u32::to_be_bytes(v));
        }
        for v in [5u32, 7_000, frame.len() as u32, frame.len() as u32] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(&frame);
        let records = read_pcap(&bytes, "be.pcap").unwrap();
        assert_eq!(records[0].ts_us, 5_000_007);
    }

    #[test]
    fn bad_files_are_errors_naming_the_file_and_the_problem() {
        let error = read_pcap(&[0u8; 24], "zeros.pcap").unwrap_err().to_string();
        assert!(
            error.contains("zeros.pcap") && error.contains("not a pcap"),
            "{error}"
        );
        let mut header = PcapWriter::new(Vec::new(), 64).unwrap().into_inner();
        header[20] = 113;
        let error = read_pcap(&header, "sll.pcap").unwrap_err().to_string();
        assert!(error.contains("link type 113"), "{error}");
        let mut writer = PcapWriter::new(Vec::new(), 64).unwrap();
        writer
            .write_frame(
                1,
                &tcp_frame(addr("127.0.0.1:1"), addr("127.0.0.1:2"), 0, 0),
            )
            .unwrap();
        let bytes = writer.into_inner();
        let error = read_pcap(&bytes[..bytes.len() - 3], "cut.pcap")
            .unwrap_err()
            .to_string();
        assert!(error.contains("truncated at byte 24"), "{error}");
    }

    #[test]
    fn loopback_copies_are_dropped_once_and_only_when_close_in_time() {
        let a = tcp_frame(addr("127.0.0.1:1"), addr("127.0.0.1:2"), TCP_ACK, 10);
        let b = tcp_frame(addr("127.0.0.1:2"), addr("127.0.0.1:1"), TCP_ACK, 10);
        let mut dedup = LoopbackDedup::default();
        assert!(!dedup.is_copy(1_000, &a));
        assert!(!dedup.is_copy(1_002, &b));
        assert!(dedup.is_copy(1_004, &a), "the arriving copy of a");
        assert!(dedup.is_copy(1_006, &b));
        assert!(!dedup.is_copy(1_008, &a), "a third identical frame is real");
        assert!(!dedup.is_copy(900_000, &b), "too late to be a copy");
    }

    #[test]
    fn non_tcp_frames_are_skipped() {
        let mut frame = tcp_frame(addr("127.0.0.1:1"), addr("127.0.0.1:2"), 0, 0);
        frame[14 + 9] = 17;
        assert_eq!(parse_tcp(0, &frame), None, "UDP");
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse_tcp(0, &arp), None, "ARP");
        assert_eq!(parse_tcp(0, &frame[..20]), None, "runt");
    }
}
