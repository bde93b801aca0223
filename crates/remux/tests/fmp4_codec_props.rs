//! Property tests for the codec configuration parsers (`remux::codec`): arbitrary bytes, and
//! valid records with arbitrary mutations and truncations, never panic, and whatever parses is
//! self-consistent (parameter sets inside the record, dimensions non-zero, codec strings in the
//! RFC 6381 shape).

use proptest::prelude::*;
use remux::codec::{av1, hevc, opus, vp9};

/// Real records (FFmpeg 9 output, see the unit tests of each module) to mutate.
const HVCC: &[u8] = &[
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3C, 0xF0, 0x00, 0xFC,
    0xFD, 0xF8, 0xF8, 0x00, 0x00, 0x0F, 0x01, 0xA1, 0x00, 0x01, 0x00, 0x2A, 0x42, 0x01, 0x01, 0x01,
    0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3C, 0xA0, 0x0A,
    0x08, 0x0F, 0x16, 0x59, 0x59, 0xA4, 0x93, 0x2B, 0xC0, 0x5A, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02,
    0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
];
const AV1C: &[u8] = &[
    0x81, 0x00, 0x0C, 0x00, 0x0A, 0x0B, 0x02, 0x00, 0x00, 0x05, 0x61, 0xE7, 0xFD, 0xE0, 0x17, 0xC0,
    0x02,
];
const VPCC: &[u8] = &[
    0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0x80, 0x02, 0x02, 0x02, 0x00, 0x00,
];
const OPUS_HEAD: &[u8] = b"OpusHead\x01\x02\x38\x01\x80\xBB\x00\x00\x00\x00\x00";

fn check_all(data: &[u8]) {
    if let Ok(c) = hevc::HevcConfig::parse(data) {
        assert!([1, 2, 4].contains(&c.length_size));
        assert!(c.width > 0 && c.height > 0);
        assert!(c.codec_string().starts_with("hvc1."));
        for nal in c.vps.iter().chain(&c.sps).chain(&c.pps) {
            assert!(nal.len() <= c.raw.len());
        }
    }
    let _ = hevc::parse_sps_size(data);
    if let Ok(c) = av1::Av1Config::parse(data) {
        let s = c.codec_string();
        assert_eq!(s.len(), "av01.0.00M.08".len(), "{s}");
        if let Some((w, h)) = c.dimensions() {
            assert!(w > 0 && h > 0);
        }
    }
    let _ = av1::find_sequence_header(data);
    if let Ok(c) = vp9::Vp9Config::parse(data) {
        assert_eq!(&c.box_payload[..4], &[1, 0, 0, 0]);
        assert!(c.codec_string().starts_with("vp09."));
    }
    let _ = vp9::Vp9Config::frame_size(data);
    if let Ok(c) = opus::OpusConfig::parse(data) {
        assert!(c.channels > 0);
        assert_eq!(c.dops[1], c.channels);
    }
    if let Some(d) = opus::packet_duration_48k(data) {
        assert!((120..=opus::MAX_PACKET_DURATION_48K).contains(&d));
    }
}

fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        0..=base.len(),
    )
        .prop_map(move |(edits, keep)| {
            let mut v = base.to_vec();
            for (i, b) in edits {
                let at = i.index(v.len());
                v[at] = b;
            }
            v.truncate(keep.max(1));
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_all(&data);
    }

    #[test]
    fn mutated_records_never_panic(
        h in mutated(HVCC), a in mutated(AV1C), v in mutated(VPCC), o in mutated(OPUS_HEAD)
    ) {
        for d in [h, a, v, o] {
            check_all(&d);
        }
    }
}

#[test]
fn the_unmutated_records_parse() {
    assert_eq!(
        hevc::HevcConfig::parse(HVCC).unwrap().codec_string(),
        "hvc1.1.6.L60.90"
    );
    assert_eq!(
        av1::Av1Config::parse(AV1C).unwrap().codec_string(),
        "av01.0.00M.08"
    );
    assert_eq!(
        vp9::Vp9Config::parse(VPCC).unwrap().codec_string(),
        "vp09.00.20.08"
    );
    assert_eq!(opus::OpusConfig::parse(OPUS_HEAD).unwrap().channels, 2);
}
