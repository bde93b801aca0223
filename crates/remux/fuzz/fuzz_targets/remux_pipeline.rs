//! An arbitrary sequence of tags through the whole staged remuxer (access units, cut policy,
//! TS and CMAF writers): no panic, every TS segment is a whole number of TS packets, and every
//! segment's chunks add up to its length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use remux::{Container, FlvTag, RemuxConfig, RemuxOutput, Remuxer, TagKind};

fuzz_target!(|data: &[u8]| {
    let mut r = Remuxer::new(RemuxConfig { max_segment_bytes: 1 << 20, ..RemuxConfig::default() });
    let mut rest = data;
    // Each record: kind (1) · timestamp (4) · length (2) · payload.
    while rest.len() >= 7 {
        let kind = [TagKind::Audio, TagKind::Video, TagKind::Script][usize::from(rest[0] % 3)];
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let payload = bytes::Bytes::copy_from_slice(&rest[7..7 + len]);
        rest = &rest[7 + len..];
        let _ = r.push(FlvTag { kind, timestamp_ms: ts, payload }, 0);
        while r.poll_output().is_some() {}
    }
    r.finish();
    while let Some(o) = r.poll_output() {
        if let RemuxOutput::Segment(s) = o {
            if s.container == Container::Ts {
                assert_eq!(s.len % 188, 0);
            }
            assert_eq!(s.parts.iter().map(|p| p.len()).sum::<usize>(), s.len);
        }
    }
});
