//! The two Kafka requests rift's checkers send on the wire themselves, to one broker.
//!
//! - DescribeQuorum v0 (API key 55) for partition 0 of `__cluster_metadata`: rdkafka
//!   has no such call and a Metadata response's `controller_id` is a random live broker
//!   under KRaft. Only the Raft leader answers it without error, which makes it a
//!   direct "do you lead the quorum right now?" probe: after check-quorum an isolated
//!   leader resigns and answers NOT_LEADER_OR_FOLLOWER.
//! - Metadata v1 (API key 3) answered by exactly the broker asked: librdkafka sends
//!   an application's metadata request to whichever broker it likes once it has
//!   learned the cluster, but during a partition brokers disagree and a checker must
//!   know whose view it reads.
//! - CreateTopics v5 (API key 19) sent to one chosen broker: librdkafka always sends it
//!   to the Metadata `controller_id`, a random broker, so it cannot ask "can a client
//!   next to broker X create a topic?". The broker forwards the request to the active
//!   controller it knows of, through rift, so the answer reflects X's side of a cut.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::KafkaCheckError;
use super::client::{MetadataView, PartitionView};

const DESCRIBE_QUORUM: i16 = 55;
const CREATE_TOPICS: i16 = 19;
const METADATA: i16 = 3;
const METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka's NOT_LEADER_OR_FOLLOWER error code.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// One controller's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumView {
    /// Kafka error code of the partition (0 = this controller leads the quorum).
    pub error_code: i16,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
}

impl QuorumView {
    pub fn is_leader(&self) -> bool {
        self.error_code == 0
    }
}

/// Sends DescribeQuorum to the controller listener at `addr`.
pub async fn describe_quorum(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<QuorumView, KafkaCheckError> {
    let body = roundtrip(addr, &encode_request(1), timeout, "DescribeQuorum").await?;
    decode_response(&body, 1)
        .map_err(|m| KafkaCheckError::Protocol(format!("DescribeQuorum from {addr}: {m}")))
}

/// Asks the broker at `addr` (a real client listener) to create `topic` with one
/// partition of replication factor `rf`; returns Kafka's error code (0 = created).
/// `server_timeout` bounds how long the broker waits for the controller.
pub async fn create_topic_at(
    addr: SocketAddr,
    topic: &str,
    rf: i16,
    server_timeout: Duration,
) -> Result<i16, KafkaCheckError> {
    let request = encode_create_topics(2, topic, rf, server_timeout);
    let body = roundtrip(
        addr,
        &request,
        // The broker forwards to the controller and may first wait request.timeout.ms
        // on a connection to a controller that is gone.
        server_timeout + Duration::from_secs(8),
        "CreateTopics",
    )
    .await?;
    decode_create_topics(&body, 2)
        .map_err(|m| KafkaCheckError::Protocol(format!("CreateTopics from {addr}: {m}")))
}

/// Asks the broker at `addr` (a real client listener) for its metadata: live brokers
/// and, with `topic`, that topic's partitions.
pub async fn metadata_at(
    addr: SocketAddr,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<MetadataView, KafkaCheckError> {
    let body = roundtrip(
        addr,
        &encode_metadata(4, Topics::Some(topic)),
        timeout,
        "Metadata",
    )
    .await?;
    let all = decode_metadata(&body, 4)
        .map_err(|m| KafkaCheckError::Protocol(format!("Metadata from {addr}: {m}")))?;
    let first = all.topics.into_iter().next();
    Ok(MetadataView {
        answered_by: addr.to_string(),
        brokers: all.brokers,
        topic_error: first.as_ref().and_then(|t| t.error.clone()),
        partitions: first.map(|t| t.partitions).unwrap_or_default(),
    })
}

/// One topic in a broker's metadata answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicView {
    pub name: String,
    /// The topic's error, e.g. UnknownTopicOrPartition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub partitions: Vec<PartitionView>,
}

/// A broker's whole metadata answer: live brokers and every topic it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterMetadata {
    /// Live (unfenced) brokers as this broker sees them.
    pub brokers: Vec<i32>,
    pub topics: Vec<TopicView>,
}

/// Asks the broker at `addr` for its metadata of every topic (the poller's view).
pub async fn metadata_all_at(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<ClusterMetadata, KafkaCheckError> {
    let body = roundtrip(addr, &encode_metadata(4, Topics::All), timeout, "Metadata").await?;
    decode_metadata(&body, 4)
        .map_err(|m| KafkaCheckError::Protocol(format!("Metadata from {addr}: {m}")))
}

/// Which topics a Metadata request asks about.
enum Topics<'a> {
    /// One topic, or none (brokers only).
    Some(Option<&'a str>),
    /// Every topic (a null array in Metadata v1).
    All,
}

fn encode_metadata(correlation_id: i32, topics: Topics<'_>) -> Vec<u8> {
    // Non-flexible request header v1: no tagged fields.
    let mut b = header(METADATA, 1, correlation_id);
    b.pop();
    match topics {
        Topics::Some(Some(t)) => {
            b.extend_from_slice(&1i32.to_be_bytes());
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        Topics::Some(None) => b.extend_from_slice(&0i32.to_be_bytes()),
        Topics::All => b.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    frame(b)
}

fn decode_metadata(body: &[u8], correlation_id: i32) -> Result<ClusterMetadata, String> {
    let mut r = Reader { buf: body, pos: 0 };
    let got = r.i32()?;
    if got != correlation_id {
        return Err(format!("correlation id {got}, expected {correlation_id}"));
    }
    let mut view = ClusterMetadata {
        brokers: Vec::new(),
        topics: Vec::new(),
    };
    for _ in 0..r.count()? {
        view.brokers.push(r.i32()?);
        r.string()?;
        r.i32()?;
        r.string()?;
    }
    view.brokers.sort_unstable();
    let _controller = r.i32()?;
    for _ in 0..r.count()? {
        let error = r.i16()?;
        let name = r.name()?;
        r.take(1)?;
        let mut topic = TopicView {
            name,
            error: (error != 0).then(|| error_code_name(error)),
            partitions: Vec::new(),
        };
        for _ in 0..r.count()? {
            let _perror = r.i16()?;
            let partition = r.i32()?;
            let leader = r.i32()?;
            let replicas = r.i32_array()?;
            let isr = r.i32_array()?;
            topic.partitions.push(PartitionView {
                partition,
                leader,
                replicas,
                isr,
            });
        }
        topic.partitions.sort_by_key(|p| p.partition);
        view.topics.push(topic);
    }
    Ok(view)
}

/// Names of the Kafka error codes the checkers report.
pub fn error_code_name(code: i16) -> String {
    match code {
        0 => "None".into(),
        3 => "UnknownTopicOrPartition".into(),
        5 => "LeaderNotAvailable".into(),
        6 => "NotLeaderOrFollower".into(),
        7 => "RequestTimedOut".into(),
        19 => "NotEnoughReplicas".into(),
        20 => "NotEnoughReplicasAfterAppend".into(),
        36 => "TopicAlreadyExists".into(),
        41 => "NotController".into(),
        other => format!("KafkaError({other})"),
    }
}

async fn roundtrip(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
    what: &str,
) -> Result<Vec<u8>, KafkaCheckError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(request).await?;
        let len = stream.read_i32().await?;
        if !(0..=1 << 20).contains(&len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("response size {len}"),
            ));
        }
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| KafkaCheckError::Timeout(format!("{what} to {addr} after {timeout:?}")))?
        .map_err(|e| KafkaCheckError::Protocol(format!("{what} to {addr}: {e}")))
}

/// Request header v2: key, version, correlation id, client id (a classic nullable
/// string even in flexible versions), tagged fields.
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&api_key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    let client_id = b"rift-checker";
    b.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    b.extend_from_slice(client_id);
    b.push(0);
    b
}

fn frame(b: Vec<u8>) -> Vec<u8> {
    let mut framed = (b.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&b);
    framed
}

/// Compact strings and arrays carry length + 1 as an unsigned varint.
fn put_uvarint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_compact_str(b: &mut Vec<u8>, s: &str) {
    put_uvarint(b, s.len() as u64 + 1);
    b.extend_from_slice(s.as_bytes());
}

fn encode_create_topics(correlation_id: i32, topic: &str, rf: i16, timeout: Duration) -> Vec<u8> {
    let mut b = header(CREATE_TOPICS, 5, correlation_id);
    put_uvarint(&mut b, 2);
    put_compact_str(&mut b, topic);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&rf.to_be_bytes());
    put_uvarint(&mut b, 1); // no assignments
    put_uvarint(&mut b, 1); // no configs
    b.push(0);
    b.extend_from_slice(&(timeout.as_millis().min(i32::MAX as u128) as i32).to_be_bytes());
    b.push(0); // validate_only = false
    b.push(0);
    frame(b)
}

fn decode_create_topics(body: &[u8], correlation_id: i32) -> Result<i16, String> {
    let mut r = Reader { buf: body, pos: 0 };
    let got = r.i32()?;
    if got != correlation_id {
        return Err(format!("correlation id {got}, expected {correlation_id}"));
    }
    r.skip_tags()?;
    let _throttle = r.i32()?;
    if r.uvarint()? < 2 {
        return Err("no topic in the response".into());
    }
    let name_len = r.uvarint()?.saturating_sub(1) as usize;
    r.take(name_len)?;
    r.i16()
}

fn encode_request(correlation_id: i32) -> Vec<u8> {
    let mut b = header(DESCRIBE_QUORUM, 0, correlation_id);
    // topics[ name, partitions[ index, tags ], tags ], tags
    put_uvarint(&mut b, 2);
    put_compact_str(&mut b, METADATA_TOPIC);
    put_uvarint(&mut b, 2);
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(0);
    b.push(0);
    b.push(0);
    frame(b)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos + n;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos = end;
        Ok(slice)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A classic (non-compact) array length; null arrays count as empty.
    fn count(&mut self) -> Result<usize, String> {
        Ok(self.i32()?.max(0) as usize)
    }
    /// A classic nullable string (null reads as empty).
    fn name(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        if len <= 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(self.take(len as usize)?).into_owned())
    }
    /// A classic nullable string, skipped.
    fn string(&mut self) -> Result<(), String> {
        let len = self.i16()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }
    fn i32_array(&mut self) -> Result<Vec<i32>, String> {
        (0..self.count()?).map(|_| self.i32()).collect()
    }
    fn uvarint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    fn skip_tags(&mut self) -> Result<(), String> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

fn decode_response(body: &[u8], correlation_id: i32) -> Result<QuorumView, String> {
    let mut r = Reader { buf: body, pos: 0 };
    let got = r.i32()?;
    if got != correlation_id {
        return Err(format!("correlation id {got}, expected {correlation_id}"));
    }
    r.skip_tags()?;
    let top_error = r.i16()?;
    let topics = r.uvarint()?;
    if topics < 2 {
        // A top-level error (e.g. the listener refused the request) has no topics.
        return Ok(QuorumView {
            error_code: top_error,
            leader_id: -1,
            leader_epoch: -1,
            high_watermark: -1,
        });
    }
    let name_len = r.uvarint()?.saturating_sub(1) as usize;
    r.take(name_len)?;
    let partitions = r.uvarint()?;
    if partitions < 2 {
        return Err("no partition in the response".into());
    }
    let _index = r.i32()?;
    let error_code = r.i16()?;
    let leader_id = r.i32()?;
    let leader_epoch = r.i32()?;
    let high_watermark = r.i64()?;
    Ok(QuorumView {
        error_code: if top_error != 0 {
            top_error
        } else {
            error_code
        },
        leader_id,
        leader_epoch,
        high_watermark,
    })
}

#[cfg(test)]
mod tests;
