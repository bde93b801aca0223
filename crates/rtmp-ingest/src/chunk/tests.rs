//! Decoder/encoder tests: table-driven headers, chunking at every chunk size, extended timestamps.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::decoder::DecoderLimits;
use super::*;
use crate::error::IngestError;

fn limits() -> DecoderLimits {
    DecoderLimits {
        max_message_bytes: 1 << 20,
        max_chunk_size: 1 << 24,
        max_chunk_streams: 8,
        max_partial_bytes: 1 << 26,
    }
}

fn decode_all(bytes: &[u8]) -> Result<Vec<RawMessage>, IngestError> {
    let mut d = ChunkDecoder::new(limits());
    d.handle_input(bytes)?;
    Ok(std::iter::from_fn(|| d.poll_message()).collect())
}

/// Feeds one byte at a time (header bytes split at every position).
fn decode_bytewise(bytes: &[u8]) -> Result<Vec<RawMessage>, IngestError> {
    let mut d = ChunkDecoder::new(limits());
    for b in bytes {
        d.handle_input(std::slice::from_ref(b))?;
    }
    Ok(std::iter::from_fn(|| d.poll_message()).collect())
}

fn set_chunk_size_msg(size: u32) -> BytesMut {
    let mut out = BytesMut::new();
    ChunkEncoder::new().write_message(
        &mut out,
        2,
        0,
        message_type::SET_CHUNK_SIZE,
        0,
        &size.to_be_bytes(),
    );
    out
}

#[test]
fn basic_header_forms() {
    // (raw bytes, expected csid): 1-, 2- and 3-byte basic headers, fmt 0, zero-length message.
    let cases: &[(&[u8], u32)] = &[
        (&[0x03, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 3),
        (&[0x3f, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 63),
        (&[0x00, 0x00, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 64),
        (&[0x00, 0xff, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 319),
        (&[0x01, 0x00, 0x00, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 64),
        (&[0x01, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0], 65599),
        (
            &[0x01, 0x02, 0x01, 0, 0, 1, 0, 0, 0, 8, 1, 0, 0, 0],
            64 + 2 + 256,
        ),
    ];
    for (bytes, csid) in cases {
        let msgs = decode_all(bytes).unwrap();
        assert_eq!(msgs.len(), 1, "{bytes:02x?}");
        assert_eq!(msgs[0].csid, *csid);
        assert_eq!(msgs[0].timestamp_ms, 1);
        assert_eq!(msgs[0].type_id, 8);
        assert_eq!(msgs[0].stream_id, 1, "stream id is little-endian");
        assert!(msgs[0].payload.is_empty(), "zero-length audio = silence");
        assert_eq!(decode_bytewise(bytes).unwrap(), msgs);
    }
}

#[test]
fn header_fmts_accumulate_timestamps() {
    // fmt 0 ts=1000 len=1, fmt 1 delta=40 len=2, fmt 2 delta=20, fmt 3 (delta 20 again).
    let bytes: &[u8] = &[
        0x04, 0x00, 0x03, 0xe8, 0, 0, 1, 9, 1, 0, 0, 0, 0xAA, // fmt 0
        0x44, 0x00, 0x00, 0x28, 0, 0, 2, 9, 0xBB, 0xBB, // fmt 1
        0x84, 0x00, 0x00, 0x14, 0xCC, 0xCC, // fmt 2
        0xC4, 0xDD, 0xDD, // fmt 3 new message
    ];
    let msgs = decode_all(bytes).unwrap();
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp_ms).collect();
    assert_eq!(ts, vec![1000, 1040, 1060, 1080]);
    assert!(msgs.iter().all(|m| m.stream_id == 1 && m.type_id == 9));
    assert_eq!(&msgs[3].payload[..], &[0xDD, 0xDD]);
    assert_eq!(decode_bytewise(bytes).unwrap(), msgs);
}

#[test]
fn type3_after_type0_uses_the_type0_timestamp_as_delta() {
    let bytes: &[u8] = &[
        0x04, 0x00, 0x00, 0x0a, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA, 0xC4, 0xBB,
    ];
    let ts: Vec<u32> = decode_all(bytes)
        .unwrap()
        .iter()
        .map(|m| m.timestamp_ms)
        .collect();
    assert_eq!(ts, vec![10, 20]);
}

#[test]
fn malformed_headers_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x84, 0, 0, 1], "fmt 2 without previous header"),
        (&[0xC4], "fmt 3 without previous header"),
        // fmt 0 with 200 bytes announced, chunk size 128, then a fmt 1 header on the same csid mid-message.
        (&[0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0], "placeholder"),
    ];
    for (bytes, what) in &cases[..2] {
        assert!(decode_all(bytes).is_err(), "{what}");
    }
    let mut v = cases[2].0.to_vec();
    v.extend_from_slice(&[0u8; 128]);
    v.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 1, 8, 0]);
    assert!(matches!(
        decode_all(&v),
        Err(IngestError::MalformedChunk { csid: 4, .. })
    ));
}

#[test]
fn set_chunk_size_validation() {
    let cases: &[(u32, bool)] = &[
        (0, false),
        (0x8000_0001, false),
        (1, true),
        (4096, true),
        (1 << 24, true),
        ((1 << 24) + 1, false),
    ];
    for &(size, ok) in cases {
        let r = decode_all(&set_chunk_size_msg(size));
        assert_eq!(r.is_ok(), ok, "size {size}: {r:?}");
    }
}

#[test]
fn message_length_limit_is_checked_before_allocating() {
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_message_bytes: 100,
        max_chunk_size: 1 << 24,
        max_chunk_streams: 8,
        max_partial_bytes: 1 << 26,
    });
    let err = d
        .handle_input(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0])
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::LimitExceeded {
                csid: Some(4),
                type_id: Some(9),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn partial_message_streams_are_limited() {
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_message_bytes: 1000,
        max_chunk_size: 1 << 24,
        max_chunk_streams: 3,
        max_partial_bytes: 1 << 26,
    });
    let mut bytes = Vec::new();
    for csid in 3u8..7 {
        // 200-byte messages, only the first 128-byte chunk sent.
        bytes.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 128]);
    }
    let err = d.handle_input(&bytes).unwrap_err();
    assert!(
        matches!(err, IngestError::LimitExceeded { csid: Some(6), .. }),
        "{err}"
    );
}

#[test]
fn bytes_in_partial_messages_are_budgeted_per_connection() {
    // Four chunk streams each hold 128 bytes of a 1000-byte message: 512 bytes > the 400 budget,
    // although each message alone is within max_message_bytes.
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_message_bytes: 1000,
        max_chunk_size: 1 << 24,
        max_chunk_streams: 16,
        max_partial_bytes: 400,
    });
    let mut bytes = Vec::new();
    for csid in 3u8..7 {
        bytes.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 128]);
    }
    let err = d.handle_input(&bytes).unwrap_err();
    assert!(
        matches!(err, IngestError::LimitExceeded { limit, csid: Some(6), .. } if limit.starts_with("max_partial_bytes")),
        "{err}"
    );
    // Completed messages release their bytes: the same traffic spread over time fits.
    let mut d = ChunkDecoder::new(DecoderLimits {
        max_message_bytes: 1000,
        max_chunk_size: 1 << 24,
        max_chunk_streams: 16,
        max_partial_bytes: 400,
    });
    for _ in 0..10 {
        let mut m = vec![3u8, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
        m.extend_from_slice(&[0u8; 128]);
        m.push(0xC3);
        m.extend_from_slice(&[0u8; 72]);
        d.handle_input(&m).unwrap();
    }
}

#[test]
fn abort_discards_the_partial_message() {
    let mut bytes = vec![0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[0u8; 128]);
    let mut abort = BytesMut::new();
    ChunkEncoder::new().write_message(
        &mut abort,
        2,
        0,
        message_type::ABORT,
        0,
        &4u32.to_be_bytes(),
    );
    bytes.extend_from_slice(&abort);
    // New message on csid 4 with fmt 0 is fine after the abort.
    bytes.extend_from_slice(&[0x04, 0, 0, 5, 0, 0, 1, 9, 1, 0, 0, 0, 0x17]);
    let msgs = decode_all(&bytes).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].type_id, message_type::ABORT);
    assert_eq!(&msgs[1].payload[..], &[0x17]);
}

fn encode_messages(enc: &mut ChunkEncoder, msgs: &[(u32, u32, u8, Vec<u8>)]) -> BytesMut {
    let mut out = BytesMut::new();
    for (csid, ts, ty, payload) in msgs {
        enc.write_message(&mut out, *csid, *ts, *ty, 1, payload);
    }
    out
}

#[test]
fn extended_timestamps_with_and_without_repeated_field_on_type3() {
    // Timestamps crossing 0xFFFFFF, 300-byte messages (3 chunks each at 128).
    let stamps = [
        0xFF_FFF0u32,
        0xFF_FFFE,
        0xFF_FFFF,
        0x100_0000,
        0x100_0028,
        0x100_0050,
        0x100_0078,
    ];
    for repeat in [true, false] {
        for compress in [true, false] {
            let mut enc = ChunkEncoder::new().repeat_extended_on_type3(repeat);
            if compress {
                enc = enc.with_header_compression();
            }
            let msgs: Vec<_> = stamps
                .iter()
                .map(|&ts| (6, ts, 9, vec![(ts & 0xff) as u8; 300]))
                .collect();
            let bytes = encode_messages(&mut enc, &msgs);
            for decoded in [
                decode_all(&bytes).unwrap(),
                decode_bytewise(&bytes).unwrap(),
            ] {
                let got: Vec<u32> = decoded.iter().map(|m| m.timestamp_ms).collect();
                assert_eq!(got, stamps, "repeat={repeat} compress={compress}");
                assert!(decoded.iter().all(|m| m.payload.len() == 300));
            }
        }
    }
}

#[test]
fn large_fmt1_delta_uses_extended_delta() {
    let mut enc = ChunkEncoder::new().with_header_compression();
    let bytes = encode_messages(
        &mut enc,
        &[(6, 5, 9, vec![1; 10]), (6, 5 + 0x0100_0000, 9, vec![2; 20])],
    );
    let got: Vec<u32> = decode_all(&bytes)
        .unwrap()
        .iter()
        .map(|m| m.timestamp_ms)
        .collect();
    assert_eq!(got, vec![5, 5 + 0x0100_0000]);
}

#[test]
fn interleaved_chunk_streams() {
    // Two 300-byte messages on csids 6 and 7 interleaved chunk by chunk (chunk size 128).
    let a = vec![0xAAu8; 300];
    let b = vec![0xBBu8; 300];
    let mut enc = ChunkEncoder::new();
    let mut ma = BytesMut::new();
    enc.write_message(&mut ma, 6, 100, 8, 1, &a);
    let mut mb = BytesMut::new();
    enc.write_message(&mut mb, 7, 90, 9, 1, &b);
    // Split each into chunks: header 12 + 128, then 1 + 128, then 1 + 44.
    let split = |m: &BytesMut| vec![m[..140].to_vec(), m[140..269].to_vec(), m[269..].to_vec()];
    let (ca, cb) = (split(&ma), split(&mb));
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend_from_slice(&ca[i]);
        bytes.extend_from_slice(&cb[i]);
    }
    let msgs = decode_all(&bytes).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].csid, msgs[0].timestamp_ms, &msgs[0].payload[..]),
        (6, 100, &a[..])
    );
    assert_eq!(
        (msgs[1].csid, msgs[1].timestamp_ms, &msgs[1].payload[..]),
        (7, 90, &b[..])
    );
}

proptest! {
    #[test]
    fn chunking_at_every_chunk_size_reassembles(len in 0usize..700, seed in any::<u8>(), ts in any::<u32>()) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(seed)).collect();
        for chunk_size in 1..=(len as u32 + 1).min(300) {
            let mut out = set_chunk_size_msg(chunk_size);
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk_size);
            enc.write_message(&mut out, 5, ts, 9, 1, &payload);
            enc.write_message(&mut out, 5, ts.wrapping_add(33), 9, 1, &payload);
            let msgs = decode_all(&out).unwrap();
            prop_assert_eq!(msgs.len(), 3);
            prop_assert_eq!(&msgs[1].payload, &Bytes::from(payload.clone()));
            prop_assert_eq!(msgs[1].timestamp_ms, ts);
            prop_assert_eq!(msgs[2].timestamp_ms, ts.wrapping_add(33));
        }
    }

    #[test]
    fn compressed_headers_round_trip(
        msgs in prop::collection::vec((3u32..8, 0u32..50_000, prop::sample::select(vec![8u8, 9, 18]), 0usize..400), 1..20),
        repeat in any::<bool>(),
        base in prop::sample::select(vec![0u32, 0xFF_FF00, 0xFFFF_F000]),
    ) {
        // Monotonic timestamps per csid, possibly crossing the extended boundary.
        let mut enc = ChunkEncoder::new().with_header_compression().repeat_extended_on_type3(repeat);
        let mut out = BytesMut::new();
        let mut want = Vec::new();
        let mut last_ts = std::collections::HashMap::new();
        for (i, (csid, step, ty, len)) in msgs.into_iter().enumerate() {
            let ts = last_ts.get(&csid).copied().unwrap_or(base).wrapping_add(step);
            last_ts.insert(csid, ts);
            let payload: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            enc.write_message(&mut out, csid, ts, ty, 1, &payload);
            want.push((csid, ts, ty, payload));
        }
        // A sentinel on another chunk stream: a type-3 chunk after an extended header may wait for
        // 4 more bytes (compare-and-rewind), which in a live stream always arrive.
        ChunkEncoder::new().write_message(&mut out, 20, 0, 18, 0, b"sentinel");
        let mut got = decode_bytewise(&out).unwrap();
        prop_assert_eq!(got.pop().map(|m| m.csid), Some(20));
        let got: Vec<_> = got.into_iter().map(|m| (m.csid, m.timestamp_ms, m.type_id, m.payload.to_vec())).collect();
        prop_assert_eq!(got, want);
    }

    /// The read hint is a lower bound: from any prefix, no message completes before the hinted
    /// number of further bytes.
    #[test]
    fn bytes_to_complete_message_is_a_lower_bound(
        msgs in prop::collection::vec((3u32..60, prop::sample::select(vec![8u8, 9]), 0usize..3000), 1..8),
        chunk_size in prop::sample::select(vec![128u32, 300, 1000, 4096]),
    ) {
        let mut out = set_chunk_size_msg(chunk_size);
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(chunk_size);
        for (i, (csid, ty, len)) in msgs.iter().enumerate() {
            enc.write_message(&mut out, *csid, i as u32 * 20, *ty, 1, &vec![7u8; *len]);
        }
        // Offsets (bytes consumed) at which each message completes.
        let mut d = ChunkDecoder::new(limits());
        let mut done_at = Vec::new();
        let mut hints = Vec::new();
        for (i, b) in out.iter().enumerate() {
            hints.push((i, d.bytes_to_complete_message(), d.partial_messages()));
            d.handle_input(std::slice::from_ref(b)).unwrap();
            while d.poll_message().is_some() {
                done_at.push(i + 1);
            }
        }
        prop_assert_eq!(d.bytes_to_complete_message(), None);
        for (consumed, hint, partials) in hints {
            prop_assert_eq!(hint.is_some(), partials > 0);
            if let Some(h) = hint {
                let next = done_at.iter().copied().find(|&o| o > consumed).unwrap();
                prop_assert!(consumed + h <= next, "hint {} at {} but a message completed at {}", h, consumed, next);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_all(&bytes);
    }
}

#[test]
fn bytes_to_complete_message_is_exact_with_one_byte_continuation_headers() {
    let mut out = set_chunk_size_msg(4096);
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(4096);
    enc.write_message(&mut out, 6, 40, 9, 1, &[1u8; 10_000]);
    let mut d = ChunkDecoder::new(limits());
    assert_eq!(d.bytes_to_complete_message(), None);
    let first = out.len() - 10_000 - 2; // set-chunk-size message + 12-byte header
    d.handle_input(&out[..first]).unwrap();
    assert!(d.poll_message().is_some(), "set chunk size");
    assert_eq!(d.bytes_to_complete_message(), Some(10_000 + 2));
    d.handle_input(&out[first..first + 5000]).unwrap();
    assert_eq!(
        d.bytes_to_complete_message(),
        Some(out.len() - first - 5000)
    );
    d.handle_input(&out[first + 5000..]).unwrap();
    assert_eq!(d.poll_message().map(|m| m.payload.len()), Some(10_000));
    assert_eq!(d.bytes_to_complete_message(), None);
}

#[test]
fn csid_encoding_forms_round_trip() {
    for csid in [2u32, 63, 64, 319, 320, 65599] {
        let mut out = BytesMut::new();
        ChunkEncoder::new().write_message(&mut out, csid, 7, 20, 0, b"x");
        let msgs = decode_all(&out).unwrap();
        assert_eq!(msgs[0].csid, csid);
    }
    let mut out = BytesMut::new();
    out.put_u8(0);
    assert!(
        decode_all(&out).unwrap().is_empty(),
        "incomplete header is not an error"
    );
}
