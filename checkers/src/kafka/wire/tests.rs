//! Encoding and decoding of the wire requests, on hand-built bytes.
use super::*;

#[test]
fn request_is_framed_and_flexible() {
    let req = encode_request(7);
    let size = i32::from_be_bytes(req[0..4].try_into().unwrap()) as usize;
    assert_eq!(size, req.len() - 4);
    assert_eq!(&req[4..6], &55i16.to_be_bytes());
    assert!(
        req.windows(METADATA_TOPIC.len())
            .any(|w| w == METADATA_TOPIC.as_bytes())
    );
}

#[test]
fn decodes_leader_and_error_answers() {
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.push(2);
    body.push(METADATA_TOPIC.len() as u8 + 1);
    body.extend_from_slice(METADATA_TOPIC.as_bytes());
    body.push(2);
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&5i32.to_be_bytes());
    body.extend_from_slice(&99i64.to_be_bytes());
    let view = decode_response(&body, 1).unwrap();
    assert!(view.is_leader());
    assert_eq!(
        (view.leader_id, view.leader_epoch, view.high_watermark),
        (2, 5, 99)
    );

    assert!(decode_response(&body, 2).is_err());
    assert!(decode_response(&body[..20], 1).is_err());
}

#[test]
fn decodes_metadata_v1() {
    let mut b = Vec::new();
    b.extend_from_slice(&4i32.to_be_bytes());
    b.extend_from_slice(&2i32.to_be_bytes());
    for id in [2i32, 1] {
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&9i16.to_be_bytes());
        b.extend_from_slice(b"127.0.0.1");
        b.extend_from_slice(&9092i32.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
    }
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(b't');
    b.push(0);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&2i32.to_be_bytes());
    for arr in [&[2i32, 1][..], &[2][..]] {
        b.extend_from_slice(&(arr.len() as i32).to_be_bytes());
        for x in arr {
            b.extend_from_slice(&x.to_be_bytes());
        }
    }
    let v = decode_metadata(&b, 4).unwrap();
    assert_eq!(v.brokers, vec![1, 2]);
    assert_eq!(v.topics.len(), 1);
    assert_eq!(v.topics[0].name, "t");
    assert_eq!(
        v.topics[0].partitions,
        vec![PartitionView {
            partition: 0,
            leader: 2,
            replicas: vec![2, 1],
            isr: vec![2]
        }]
    );
    assert!(v.topics[0].error.is_none());
    assert!(decode_metadata(&b[..b.len() - 3], 4).is_err());
    let req = encode_metadata(4, Topics::Some(Some("t")));
    assert_eq!(&req[4..8], &[0, 3, 0, 1]);
    // Every topic: a null topics array, right after the client id.
    let all = encode_metadata(4, Topics::All);
    assert_eq!(&all[all.len() - 4..], &(-1i32).to_be_bytes());
    let none = encode_metadata(4, Topics::Some(None));
    assert_eq!(&none[none.len() - 4..], &0i32.to_be_bytes());
}

#[test]
fn create_topics_round_trip_shapes() {
    let req = encode_create_topics(3, "t1", 3, Duration::from_secs(4));
    assert_eq!(&req[4..8], &[0, 19, 0, 5]);
    let mut body = Vec::new();
    body.extend_from_slice(&3i32.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&0i32.to_be_bytes());
    body.push(2);
    put_compact_str(&mut body, "t1");
    body.extend_from_slice(&7i16.to_be_bytes());
    assert_eq!(decode_create_topics(&body, 3).unwrap(), 7);
    let mut v = Vec::new();
    put_uvarint(&mut v, 300);
    assert_eq!(v, vec![0xac, 0x02]);
}
