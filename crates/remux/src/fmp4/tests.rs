//! Golden boxes written by hand from the specification (with the reason for every field), and
//! structural checks of fragments with a tiny box walker. Independent readers (mp4-atom,
//! ffprobe, FFmpeg 9) check the same output in `tests/fmp4_*.rs`.

use bytes::Bytes;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// (box path, bytes, why).
const GOLDEN_AAC_INIT: &[(&str, &str, &str)] = &[
    (
        "ftyp",
        "0000001C 66747970",
        "28 bytes: header + major + minor + 3 compatible brands",
    ),
    (
        "ftyp",
        "69736F36 00000000",
        "major brand iso6 (RFC 8216bis §3.1.2), minor version 0",
    ),
    (
        "ftyp",
        "69736F36 6D703431 636D6663",
        "compatible iso6, mp41, cmfc (one track: CMAF)",
    ),
    (
        "moov",
        "00000238 6D6F6F76",
        "568 bytes = 8 + mvhd 108 + trak 412 + mvex 40",
    ),
    (
        "mvhd",
        "0000006C 6D766864 00000000",
        "108 bytes, version 0, flags 0",
    ),
    (
        "mvhd",
        "00000000 00000000 000003E8 00000000",
        "times 0, timescale 1000, duration 0",
    ),
    (
        "mvhd",
        "00010000 0100 0000 0000000000000000",
        "rate 1.0, volume 1.0, reserved",
    ),
    (
        "mvhd",
        "00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000",
        "unity matrix (§8.2.2.3)",
    ),
    (
        "mvhd",
        "000000000000000000000000000000000000000000000000",
        "pre_defined",
    ),
    ("mvhd", "00000002", "next_track_ID = highest track_ID + 1"),
    (
        "trak",
        "0000019C 7472616B",
        "412 bytes = 8 + tkhd 92 + mdia 312",
    ),
    (
        "tkhd",
        "0000005C 746B6864 00000003",
        "92 bytes, v0, flags enabled|in_movie",
    ),
    (
        "tkhd",
        "00000000 00000000 00000001 00000000 00000000",
        "times 0, track 1, duration 0",
    ),
    (
        "tkhd",
        "0000000000000000 0000 0000 0100 0000",
        "reserved, layer, group, volume 1.0",
    ),
    (
        "tkhd",
        "00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000",
        "unity matrix",
    ),
    ("tkhd", "00000000 00000000", "width and height 0: audio"),
    (
        "mdia",
        "00000138 6D646961",
        "312 bytes = 8 + mdhd 32 + hdlr 45 + minf 227",
    ),
    ("mdhd", "00000020 6D646864 00000000", "32 bytes, version 0"),
    (
        "mdhd",
        "00000000 00000000 0000AC44 00000000",
        "timescale 44100 (the sample rate)",
    ),
    (
        "mdhd",
        "55C4 0000",
        "language und: (21 << 10) | (14 << 5) | 4",
    ),
    (
        "hdlr",
        "0000002D 68646C72 00000000 00000000",
        "45 bytes, pre_defined 0",
    ),
    (
        "hdlr",
        "736F756E 000000000000000000000000",
        "handler soun, reserved",
    ),
    (
        "hdlr",
        "536F756E6448616E646C657200",
        "name SoundHandler, NUL-terminated",
    ),
    (
        "minf",
        "000000E3 6D696E66",
        "227 bytes = 8 + smhd 16 + dinf 36 + stbl 167",
    ),
    ("smhd", "00000010 736D6864 00000000 0000 0000", "balance 0"),
    ("dinf", "00000024 64696E66", "36 bytes"),
    ("dref", "0000001C 64726566 00000000 00000001", "one entry"),
    (
        "url ",
        "0000000C 75726C20 00000001",
        "flag 1: media data in this file",
    ),
    (
        "stbl",
        "000000A7 7374626C",
        "167 = 8 + stsd 91 + stts/stsc/stco 16 each + stsz 20",
    ),
    (
        "stsd",
        "0000005B 73747364 00000000 00000001",
        "one sample entry",
    ),
    (
        "mp4a",
        "0000004B 6D703461 000000000000 0001",
        "75 bytes, data_reference_index 1",
    ),
    (
        "mp4a",
        "0000000000000000 0002 0010 0000 0000",
        "2 channels, 16-bit, pre_defined",
    ),
    ("mp4a", "AC440000", "samplerate 44100 in 16.16"),
    ("esds", "00000027 65736473 00000000", "39 bytes, version 0"),
    (
        "esds",
        "03 19 0000 00",
        "ES_Descriptor, 25 bytes: ES_ID 0, no flags",
    ),
    (
        "esds",
        "04 11 40 15 000000 00000000 00000000",
        "DecoderConfig 17: AAC, audio, rates 0",
    ),
    (
        "esds",
        "05 02 1210",
        "DecoderSpecificInfo: ASC 12 10 (AAC-LC, 44.1 kHz, stereo)",
    ),
    ("esds", "06 01 02", "SLConfigDescriptor: predefined 2 (MP4)"),
    (
        "stts",
        "00000010 73747473 00000000 00000000",
        "no samples in an init segment",
    ),
    ("stsc", "00000010 73747363 00000000 00000000", "no chunks"),
    (
        "stco",
        "00000010 7374636F 00000000 00000000",
        "no chunk offsets",
    ),
    (
        "stsz",
        "00000014 7374737A 00000000 00000000 00000000",
        "sample_size 0, count 0",
    ),
    ("mvex", "00000028 6D766578", "40 bytes"),
    ("trex", "00000020 74726578 00000000 00000001", "track 1"),
    (
        "trex",
        "00000001 00000000 00000000 00000000",
        "description 1, no defaults",
    ),
];

fn aac_track() -> TrackConfig {
    TrackConfig {
        track_id: 1,
        timescale: 44_100,
        entry: SampleEntry::Aac {
            asc: Bytes::from_static(&[0x12, 0x10]),
            channels: 2,
            sample_rate_hz: 44_100,
        },
        language: None,
    }
}

#[test]
fn golden_aac_init_segment() {
    let want: Vec<u8> = GOLDEN_AAC_INIT
        .iter()
        .flat_map(|(_, h, _)| hex(h))
        .collect();
    let got = write_init(&[aac_track()]);
    if got[..] != want[..] {
        let mut at = 0;
        for (path, h, why) in GOLDEN_AAC_INIT {
            let n = hex(h).len();
            let end = (at + n).min(got.len());
            assert_eq!(&got[at..end], &hex(h)[..], "{path}: {why} (offset {at})");
            at += n;
        }
        panic!(
            "init segment longer than the golden: {} > {}",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn golden_styp() {
    // 20 bytes: major msdh, minor 0, compatible msdh.
    assert_eq!(
        &write_styp()[..],
        &hex("00000014 73747970 6D736468 00000000 6D736468")[..]
    );
}

/// (type, body) of each top-level box in `data`.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 8 <= data.len() {
        let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        let ty: [u8; 4] = data[p + 4..p + 8].try_into().unwrap();
        assert!(size >= 8 && p + size <= data.len(), "box {ty:?} overruns");
        out.push((ty, &data[p + 8..p + size]));
        p += size;
    }
    assert_eq!(p, data.len(), "trailing bytes");
    out
}

fn find<'a>(data: &'a [u8], ty: &[u8; 4]) -> &'a [u8] {
    boxes(data)
        .into_iter()
        .find(|(t, _)| t == ty)
        .map(|(_, b)| b)
        .unwrap()
}

fn sample(data: &'static [u8], duration: u32, cts: i32, sync: bool) -> Sample {
    Sample {
        data: vec![Bytes::from_static(data)],
        duration,
        composition_offset: cts,
        is_sync: sync,
    }
}

#[test]
fn golden_video_fragment() {
    // A keyframe and a B-frame with a negative composition offset, one 3-byte and one 2-byte.
    let samples = [
        sample(b"abc", 3000, 3000, true),
        sample(b"de", 3000, -3000, false),
    ];
    let chunk = write_fragment(
        7,
        &[Fragment {
            track_id: 1,
            base_media_decode_time: 0x1_0000_0000,
            samples: &samples,
        }],
    );
    assert_eq!(
        chunk.len(),
        3,
        "headers, then the two sample pieces unchanged"
    );
    assert_eq!(&chunk[1][..], b"abc");
    assert_eq!(&chunk[2][..], b"de");
    let want = hex(concat!(
        "00000074 6D6F6F66",                           // moof, 116 bytes
        "00000010 6D666864 00000000 00000007",         // mfhd: sequence_number 7
        "0000005C 74726166",                           // traf, 92 bytes
        "00000018 74666864 00020028 00000001",         // tfhd: base-is-moof|duration|flags
        "00000BB8 01010000",                           // default duration 3000, non-sync
        "00000014 74666474 01000000 0000000100000000", // tfdt v1: 2^32 (needs 64 bits)
        "00000028 7472756E 01000A05 00000002", // trun v1 (40 bytes): offset|first|size|cts, 2
        "0000007C",                            // data_offset = 116 + 8
        "02000000",                            // first_sample_flags: sync
        "00000003 00000BB8",                   // sample 1: size 3, cts +3000
        "00000002 FFFFF448",                   // sample 2: size 2, cts -3000
        "0000000D 6D646174",                   // mdat: 8 + 5
    ));
    assert_eq!(&chunk[0][..], &want[..]);
}

#[test]
fn uniform_audio_run_uses_defaults_and_offsets_chain_across_tracks() {
    let video = [
        sample(b"vvvv", 3000, 0, true),
        sample(b"vv", 3000, 0, false),
    ];
    let audio = [sample(b"aa", 1024, 0, true), sample(b"aa", 1024, 0, true)];
    let chunk = write_fragment(
        1,
        &[
            Fragment {
                track_id: 1,
                base_media_decode_time: 0,
                samples: &video,
            },
            Fragment {
                track_id: 2,
                base_media_decode_time: 0,
                samples: &audio,
            },
        ],
    );
    let all: Vec<u8> = chunk.iter().flat_map(|b| b.iter().copied()).collect();
    let top = boxes(&all);
    assert_eq!(top.len(), 2);
    let moof_size = 8 + top[0].1.len();
    assert_eq!(top[1].1, b"vvvvvvaaaa", "mdat holds track 1 then track 2");
    let trafs: Vec<_> = boxes(top[0].1)
        .into_iter()
        .filter(|(t, _)| t == b"traf")
        .collect();
    assert_eq!(trafs.len(), 2);
    let offset = |traf: &[u8]| {
        let trun = find(traf, b"trun");
        i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize
    };
    assert_eq!(offset(trafs[0].1), moof_size + 8);
    assert_eq!(offset(trafs[1].1), moof_size + 8 + 6);
    // Audio: duration, size and flags all defaults in tfhd; trun has only data_offset.
    let tfhd = find(trafs[1].1, b"tfhd");
    assert_eq!(
        u32::from_be_bytes(tfhd[0..4].try_into().unwrap()),
        0x0002_0038
    );
    assert_eq!(&tfhd[8..20], &hex("00000400 00000002 02000000")[..]);
    let trun = find(trafs[1].1, b"trun");
    assert_eq!(
        u32::from_be_bytes(trun[0..4].try_into().unwrap()),
        0x0100_0001
    );
    assert_eq!(
        trun.len(),
        12,
        "version/flags, count, data_offset: no per-sample fields"
    );
}

#[test]
fn empty_fragment_list_and_empty_track() {
    let chunk = write_fragment(3, &[]);
    assert_eq!(chunk.len(), 1);
    assert_eq!(boxes(&chunk[0]).len(), 2, "moof with mfhd only, empty mdat");
    let chunk = write_fragment(
        3,
        &[Fragment {
            track_id: 9,
            base_media_decode_time: 5,
            samples: &[],
        }],
    );
    let top = boxes(&chunk[0]);
    assert!(top[1].1.is_empty());
}

#[test]
fn entries_from_parsed_configs() {
    let opus = crate::codec::opus::OpusConfig::parse(b"OpusHead\x01\x02\x38\x01\x80\xBB\0\0\0\0\0")
        .unwrap();
    let e = SampleEntry::from_opus(&opus);
    assert_eq!(
        e,
        SampleEntry::Opus {
            dops: opus.dops.clone(),
            channels: 2
        }
    );
    assert_eq!(e.video_size(), None);
    let init = write_init(&[TrackConfig {
        track_id: 2,
        timescale: 48_000,
        entry: e,
        language: Some(*b"eng"),
    }]);
    let moov = find(&init, b"moov");
    let trak = find(moov, b"trak");
    let mdhd = find(find(trak, b"mdia"), b"mdhd");
    // eng = (5 << 10) | (14 << 5) | 7
    assert_eq!(&mdhd[20..22], &((5u16 << 10) | (14 << 5) | 7).to_be_bytes());
    let vp9 = crate::codec::vp9::Vp9Config::parse(&[0, 0x14, 0x80, 2, 2, 2, 0, 0]).unwrap();
    assert_eq!(
        SampleEntry::from_vp9(&vp9, 100_000, 240).video_size(),
        Some((u16::MAX, 240)),
        "clamped to the 16-bit field"
    );
}

#[test]
fn esds_descriptor_sizes_use_expandable_form() {
    // A 200-byte DecoderSpecificInfo needs a 2-byte size field (0x81 0x48).
    let asc = Bytes::from(vec![0x12; 200]);
    let init = write_init(&[TrackConfig {
        track_id: 1,
        timescale: 48_000,
        entry: SampleEntry::Aac {
            asc,
            channels: 2,
            sample_rate_hz: 48_000,
        },
        language: None,
    }]);
    let pos = init.windows(4).position(|w| w == b"esds").unwrap();
    let body = &init[pos + 8..];
    // ES: 3 + DCD (1 + 2 + 13 + (1 + 2 + 200)) + SL 3 = 225 → 0x81 0x61.
    assert_eq!(&body[..3], &[0x03, 0x81, 0x61]);
    assert_eq!(
        &body[6..9],
        &[0x04, 0x81, 0x58],
        "DCD body 13 + 203 = 216 = 0x81 0x58"
    );
    let dsi = body
        .windows(3)
        .position(|w| w == [0x05, 0x81, 0x48])
        .unwrap();
    assert_eq!(dsi, 22);
}
