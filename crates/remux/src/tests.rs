//! Stream-level tests on synthetic FLV tag sequences; output checked by parsing it back, both
//! with a small in-test walker (continuity counters, PES timestamps) and with the independent
//! `mpeg2ts` demuxer.

use std::collections::HashMap;
use std::io::Cursor;

use bytes::Bytes;
use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};
use proptest::prelude::*;

use crate::ts::pes::decode_timestamp;
use crate::*;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

pub(crate) fn avc_seq_header() -> Bytes {
    let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1e, 0xFF, 0xE1];
    v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    v.extend_from_slice(SPS);
    v.extend_from_slice(&[1, 0, PPS.len() as u8]);
    v.extend_from_slice(PPS);
    Bytes::from(v)
}

fn video_frame(key: bool, cts: i32, size: usize, seed: u32) -> Bytes {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1];
    v.extend_from_slice(&(cts as u32).to_be_bytes()[1..]);
    let nal_len = size.max(2);
    v.extend_from_slice(&(nal_len as u32).to_be_bytes());
    v.push(if key { 0x65 } else { 0x41 });
    v.extend(
        (1..nal_len).map(|i| (i as u32).wrapping_mul(2654435761).wrapping_add(seed) as u8 | 1),
    );
    Bytes::from(v)
}

fn aac_frame(size: usize) -> Bytes {
    let mut v = vec![0xAF, 1];
    v.extend((0..size).map(|i| (i * 7) as u8));
    Bytes::from(v)
}

#[derive(Clone, Copy)]
pub(crate) struct Gen {
    pub(crate) video: bool,
    pub(crate) audio: bool,
    pub(crate) seconds: u32,
    pub(crate) gop: u32,
    pub(crate) start_ms: u32,
    pub(crate) video_bytes: usize,
    pub(crate) audio_bytes: usize,
    pub(crate) bframes: bool,
    pub(crate) negative_cts: bool,
}

impl Default for Gen {
    fn default() -> Self {
        Gen {
            video: true,
            audio: true,
            seconds: 10,
            gop: 60,
            start_ms: 0,
            video_bytes: 2000,
            audio_bytes: 300,
            bframes: true,
            negative_cts: false,
        }
    }
}

/// Interleaved tags in timestamp order: 30 fps video, AAC-LC 44.1 kHz audio.
/// Every segment a remuxer with `cfg` makes of the generated timeline `g`, flushed at the end.
pub(crate) fn segments_of(cfg: crate::RemuxConfig, g: Gen) -> Vec<crate::Segment> {
    let mut r = crate::Remuxer::new(cfg);
    let mut out = Vec::new();
    let drain = |r: &mut crate::Remuxer, out: &mut Vec<crate::Segment>| {
        while let Some(o) = r.poll_output() {
            if let crate::RemuxOutput::Segment(s) = o {
                out.push(s);
            }
        }
    };
    for (i, t) in generate(g).into_iter().enumerate() {
        let _ = r.push(t, i as u64);
        drain(&mut r, &mut out);
    }
    r.finish();
    drain(&mut r, &mut out);
    out
}

pub(crate) fn generate(g: Gen) -> Vec<FlvTag> {
    let mut tags = Vec::new();
    if g.video {
        tags.push((
            0u64,
            0,
            FlvTag {
                kind: TagKind::Video,
                timestamp_ms: g.start_ms,
                payload: avc_seq_header(),
            },
        ));
    }
    if g.audio {
        tags.push((
            0,
            1,
            FlvTag {
                kind: TagKind::Audio,
                timestamp_ms: g.start_ms,
                payload: Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
            },
        ));
    }
    let mut media = Vec::new();
    if g.video {
        for i in 0..g.seconds * 30 {
            let t = u64::from(i) * 1000 / 30;
            let key = i % g.gop == 0;
            let cts = match (g.bframes, g.negative_cts) {
                (true, false) => [66, 0, 33][(i % 3) as usize],
                (_, true) => [0, -33, 33][(i % 3) as usize],
                _ => 0,
            };
            let size = if key {
                g.video_bytes * 4
            } else {
                g.video_bytes
            };
            media.push((
                t,
                2,
                FlvTag {
                    kind: TagKind::Video,
                    timestamp_ms: g.start_ms.wrapping_add(t as u32),
                    payload: video_frame(key, cts, size, i),
                },
            ));
        }
    }
    if g.audio {
        let n = u64::from(g.seconds) * 44100 / 1024;
        for i in 0..n {
            let t = i * 1024 * 1000 / 44100;
            media.push((
                t,
                3,
                FlvTag {
                    kind: TagKind::Audio,
                    timestamp_ms: g.start_ms.wrapping_add(t as u32),
                    payload: aac_frame(g.audio_bytes),
                },
            ));
        }
    }
    media.sort_by_key(|(t, k, _)| (*t, *k));
    tags.extend(media);
    tags.into_iter().map(|(_, _, t)| t).collect()
}

fn run(
    cfg: RemuxConfig,
    tags: &[FlvTag],
) -> (Vec<Segment>, Vec<Part>, Vec<RemuxWarning>, RemuxStats) {
    let mut r = Remuxer::new(cfg);
    let (mut segs, mut parts, mut warns) = (Vec::new(), Vec::new(), Vec::new());
    let mut drain = |r: &mut Remuxer| {
        while let Some(o) = r.poll_output() {
            match o {
                // These are the MPEG-TS writer's tests; CMAF has its own (`cmaf_tests`).
                RemuxOutput::Segment(s) if s.container == Container::Ts => segs.push(s),
                RemuxOutput::Part(p) if p.container == Container::Ts => parts.push(p),
                RemuxOutput::Warning(w) => warns.push(w),
                _ => {}
            }
        }
    };
    for (i, t) in tags.iter().enumerate() {
        let _ = r.push(t.clone(), 1_000 + i as u64);
        drain(&mut r);
    }
    r.finish();
    drain(&mut r);
    let stats = r.stats().clone();
    (segs, parts, warns, stats)
}

fn concat(s: &Segment) -> Vec<u8> {
    s.parts.iter().flat_map(|p| p.iter().copied()).collect()
}

#[derive(Default, Debug)]
struct Walk {
    /// (pid, pts, dts, random_access) per PES start, in order.
    pes: Vec<(u16, u64, u64, bool)>,
    pids: Vec<u16>,
}

/// Walks TS bytes: checks sync, continuity counters (carried across calls in `cc`), collects PES.
fn walk(data: &[u8], cc: &mut HashMap<u16, u8>) -> Walk {
    assert_eq!(data.len() % 188, 0);
    let mut w = Walk::default();
    for pkt in data.chunks(188) {
        assert_eq!(pkt[0], 0x47);
        let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
        let pusi = pkt[1] & 0x40 != 0;
        let afc = (pkt[3] >> 4) & 3;
        let c = pkt[3] & 0x0F;
        if afc & 1 == 1 {
            if let Some(prev) = cc.insert(pid, c) {
                assert_eq!(c, (prev + 1) & 0x0F, "CC discontinuity on PID {pid:#x}");
            }
        }
        w.pids.push(pid);
        let (start, rai) = if afc & 2 == 2 {
            (5 + usize::from(pkt[4]), pkt[4] > 0 && pkt[5] & 0x40 != 0)
        } else {
            (4, false)
        };
        if pusi && (pid == 0x100 || pid == 0x101) {
            let p = &pkt[start..];
            assert_eq!(&p[..3], &[0, 0, 1]);
            let flags = p[7];
            let pts = decode_timestamp(p[9..14].try_into().unwrap());
            let dts = if flags & 0x40 != 0 {
                decode_timestamp(p[14..19].try_into().unwrap())
            } else {
                pts
            };
            w.pes.push((pid, pts, dts, rai));
        }
    }
    w
}

/// Checks the invariants every output must satisfy; returns the concatenated TS.
fn check_stream(segs: &[Segment], parts: &[Part], video: bool) -> Vec<u8> {
    assert!(!segs.is_empty());
    let mut cc = HashMap::new();
    let mut all = Vec::new();
    let mut last_dts: HashMap<u16, u64> = HashMap::new();
    let mut part_iter = parts.iter();
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.sequence, i as u64);
        let bytes = concat(s);
        assert_eq!(bytes.len(), s.len);
        // Parts concatenated == segment, and the parts emitted before it are those same Bytes.
        let mine: Vec<&Part> = part_iter.by_ref().take(s.parts.len()).collect();
        assert_eq!(mine.len(), s.parts.len());
        for (p, b) in mine.iter().zip(&s.parts) {
            assert_eq!(p.segment_sequence, s.sequence);
            assert_eq!(&p.chunks[0], b);
        }
        assert!(mine[0].independent == s.independent);
        // HLS: EXTINF rounded to the nearest integer must not exceed the target duration.
        assert!(
            s.duration_90k < u64::from(s.target_duration_s) * 90_000 + 45_000,
            "segment {i} longer than target"
        );
        assert!(s.duration_90k > 0);
        assert_eq!(s.target_duration_s, segs[0].target_duration_s);
        let w = walk(&bytes, &mut cc);
        assert_eq!(
            &w.pids[..2],
            &[0, 0x1000],
            "segment {i} must start PAT, PMT"
        );
        if video {
            let first = w.pes.first().unwrap();
            assert_eq!(first.0, 0x100);
            assert_eq!(w.pids[2], 0x100);
            if s.independent {
                assert!(first.3, "segment {i} must start with a keyframe");
            }
            assert_eq!(first.2, s.first_dts_90k & ((1 << 33) - 1));
        }
        for (pid, pts, dts, _) in &w.pes {
            // Compare modulo 2^33: the TS carries 33-bit values.
            const MASK: u64 = (1 << 33) - 1;
            assert!(pts.wrapping_sub(*dts) & MASK < 1 << 32, "PTS < DTS");
            if let Some(prev) = last_dts.insert(*pid, *dts) {
                let step = dts.wrapping_sub(prev) & MASK;
                assert!(
                    step > 0 && step < 1 << 32,
                    "DTS not increasing on {pid:#x}: {prev} -> {dts}"
                );
            }
        }
        all.extend_from_slice(&bytes);
    }
    all
}

/// Reads the TS with the `mpeg2ts` crate; returns (stream types in the first PMT, PES count per stream id).
fn demux(ts: &[u8]) -> (Vec<u8>, HashMap<u8, usize>) {
    let mut r = TsPacketReader::new(Cursor::new(ts));
    let mut types = None;
    while let Some(p) = r.read_ts_packet().unwrap() {
        if let Some(TsPayload::Pmt(pmt)) = p.payload {
            types = Some(
                pmt.es_info
                    .iter()
                    .map(|e| e.stream_type as u8)
                    .collect::<Vec<_>>(),
            );
            break;
        }
    }
    let mut pes = PesPacketReader::new(TsPacketReader::new(Cursor::new(ts)));
    let mut counts = HashMap::new();
    while let Some(p) = pes.read_pes_packet().unwrap() {
        assert!(p.header.pts.is_some());
        *counts.entry(p.header.stream_id.as_u8()).or_insert(0) += 1;
    }
    (types.unwrap(), counts)
}

#[test]
fn av_stream_invariants_and_independent_demux() {
    let tags = generate(Gen::default());
    let (segs, parts, warns, stats) = run(RemuxConfig::default(), &tags);
    let ts = check_stream(&segs, &parts, true);
    assert_eq!(segs.len(), 5);
    assert!(segs.iter().all(|s| s.independent && !s.discontinuity));
    assert_eq!(segs[0].target_duration_s, 2);
    assert_eq!(segs[0].codec.codecs, "avc1.64001e,mp4a.40.2");
    let v = segs[0].codec.video.as_ref().unwrap();
    assert_eq!((v.width, v.height, v.frame_rate), (640, 360, Some(30.0)));
    assert!(parts.len() >= 4 * 5 - 1, "parts: {}", parts.len());
    assert!(parts.iter().all(|p| p.duration_90k <= 500 * 90 + 3000));
    assert!(warns.is_empty(), "{warns:?}");
    let (types, counts) = demux(&ts);
    assert_eq!(types, vec![0x1B, 0x0F]);
    assert_eq!(counts[&0xE0], 300);
    // Audio is grouped (fewer PES than frames), at most audio_frames_per_pes frames per PES.
    let per_pes = RemuxConfig::default().audio_frames_per_pes;
    assert!(
        counts[&0xC0] >= 430 / per_pes && counts[&0xC0] < 430,
        "{}",
        counts[&0xC0]
    );
    assert_eq!(stats.video_frames_in, 300);
    assert_eq!(stats.keyframes, 5);
    assert_eq!(stats.gop_ms_last, Some(2000));
    assert_eq!(stats.dropped_frames, 0);
}

#[test]
fn deterministic_output() {
    let tags = generate(Gen::default());
    let a: Vec<Vec<u8>> = run(RemuxConfig::default(), &tags)
        .0
        .iter()
        .map(concat)
        .collect();
    let b: Vec<Vec<u8>> = run(RemuxConfig::default(), &tags)
        .0
        .iter()
        .map(concat)
        .collect();
    assert_eq!(a, b);
}

#[test]
fn audio_only_and_video_only_pmts() {
    let (segs, parts, _, _) = run(
        RemuxConfig::default(),
        &generate(Gen {
            video: false,
            ..Gen::default()
        }),
    );
    let ts = check_stream(&segs, &parts, false);
    assert_eq!(demux(&ts).0, vec![0x0F]);
    assert!(segs.len() >= 4);
    assert!(segs[..segs.len() - 1]
        .iter()
        .all(|s| s.duration_90k >= 2000 * 90 && s.duration_90k < 2100 * 90));
    assert_eq!(segs[0].codec.codecs, "mp4a.40.2");
    // PCR on the audio PID in an audio-only PMT.
    assert_eq!(&concat(&segs[0])[188 + 13..188 + 15], &[0xE1, 0x01]);

    let (segs, parts, _, _) = run(
        RemuxConfig::default(),
        &generate(Gen {
            audio: false,
            ..Gen::default()
        }),
    );
    let ts = check_stream(&segs, &parts, true);
    assert_eq!(demux(&ts).0, vec![0x1B]);
}

#[test]
fn metadata_hint_lets_video_only_start_without_waiting() {
    let mut tags = vec![FlvTag {
        kind: TagKind::Script,
        timestamp_ms: 0,
        payload: Bytes::from(crate::meta::tests::metadata(Some(7.0), None)),
    }];
    tags.extend(generate(Gen {
        audio: false,
        seconds: 3,
        ..Gen::default()
    }));
    let (segs, _, _, stats) = run(RemuxConfig::default(), &tags);
    assert_eq!(stats.dropped_frames, 0);
    assert_eq!(segs[0].first_dts_90k, 63_000);
}

#[test]
fn late_audio_header_is_declared() {
    let mut tags = generate(Gen {
        seconds: 4,
        ..Gen::default()
    });
    // Move the audio sequence header after ~300 ms of video.
    let pos = tags
        .iter()
        .position(|t| t.kind == TagKind::Audio && t.payload[1] == 0)
        .unwrap();
    let h = tags.remove(pos);
    tags.insert(15, h);
    let (segs, parts, _, _) = run(RemuxConfig::default(), &tags);
    let ts = check_stream(&segs, &parts, true);
    assert_eq!(demux(&ts).0, vec![0x1B, 0x0F]);
}

#[test]
fn negative_composition_time_keeps_pts_at_or_after_dts() {
    let (segs, parts, _, stats) = run(
        RemuxConfig::default(),
        &generate(Gen {
            negative_cts: true,
            ..Gen::default()
        }),
    );
    check_stream(&segs, &parts, true);
    assert_eq!(stats.pts_delay_ms, 33);
}

#[test]
fn wraps_32_bit_milliseconds() {
    let g = Gen {
        start_ms: u32::MAX - 3000,
        ..Gen::default()
    };
    let (segs, parts, warns, stats) = run(RemuxConfig::default(), &generate(g));
    check_stream(&segs, &parts, true);
    assert_eq!(stats.timestamp_jumps, 0, "{warns:?}");
    assert!(segs.iter().all(|s| !s.discontinuity));
    assert!(segs
        .windows(2)
        .all(|w| w[1].first_dts_90k == w[0].first_dts_90k + w[0].duration_90k));
    assert!(segs.last().unwrap().first_dts_90k > u64::from(u32::MAX) * 90);
}

#[test]
fn pts_wraps_at_33_bits() {
    // 2^33 ticks ≈ 95443718 ms: start just before, so the TS values wrap inside the stream.
    let g = Gen {
        start_ms: 95_443_717 - 63_000 / 90 - 2000,
        seconds: 6,
        ..Gen::default()
    };
    let (segs, parts, _, _) = run(RemuxConfig::default(), &generate(g));
    assert!(
        segs.first().unwrap().first_dts_90k < 1 << 33
            && segs.last().unwrap().first_dts_90k > 1 << 33
    );
    let mut cc = HashMap::new();
    let w: Vec<_> = segs
        .iter()
        .flat_map(|s| walk(&concat(s), &mut cc).pes)
        .collect();
    assert!(w.iter().any(|p| p.2 < 1_000_000), "wrapped values present");
    let _ = parts;
}

pub(crate) fn shift(tags: &mut [FlvTag], from: usize, delta: i64) {
    for t in tags[from..].iter_mut() {
        t.timestamp_ms = (i64::from(t.timestamp_ms) + delta) as u32;
    }
}

#[test]
fn backward_and_forward_jumps_become_discontinuities() {
    for delta in [-5_000i64, 60_000, -100_000] {
        let mut tags = generate(Gen {
            start_ms: 200_000,
            ..Gen::default()
        });
        // Jump at the keyframe starting second 4 (frame 120), like a publisher restarting.
        let at = tags
            .iter()
            .position(|t| t.kind == TagKind::Video && t.timestamp_ms == 204_000)
            .unwrap();
        shift(&mut tags, at, delta);
        let (segs, parts, warns, stats) = run(RemuxConfig::default(), &tags);
        check_stream(&segs, &parts, true);
        assert!(stats.timestamp_jumps >= 1, "{delta}");
        assert!(warns
            .iter()
            .any(|w| matches!(w, RemuxWarning::TimestampJump { .. })));
        let d: Vec<bool> = segs.iter().map(|s| s.discontinuity).collect();
        assert_eq!(d.iter().filter(|x| **x).count(), 1, "{delta}: {d:?}");
        assert!(segs.iter().all(|s| s.duration_90k < 2 * 90_000 + 45_000));
    }
}

#[test]
fn identical_sequence_header_changes_nothing_new_one_is_a_discontinuity() {
    let mut tags = generate(Gen::default());
    let at = tags.iter().position(|t| t.timestamp_ms >= 3000).unwrap();
    tags.insert(
        at,
        FlvTag {
            kind: TagKind::Video,
            timestamp_ms: 3000,
            payload: avc_seq_header(),
        },
    );
    let (segs, _, _, _) = run(RemuxConfig::default(), &tags);
    assert!(segs.iter().all(|s| !s.discontinuity));
    // A new AVC level → applied at the next keyframe with a discontinuity.
    let mut h = avc_seq_header().to_vec();
    h[8] = 0x1f;
    tags[at] = FlvTag {
        kind: TagKind::Video,
        timestamp_ms: 3000,
        payload: Bytes::from(h),
    };
    let (segs, parts, warns, _) = run(RemuxConfig::default(), &tags);
    check_stream(&segs, &parts, true);
    let d: Vec<u64> = segs
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.first_dts_90k)
        .collect();
    assert_eq!(d, vec![63_000 + 4000 * 90]);
    assert_eq!(segs.last().unwrap().codec.codecs, "avc1.64001f,mp4a.40.2");
    assert!(warns
        .iter()
        .any(|w| matches!(w, RemuxWarning::CodecChanged { .. })));
}

#[test]
fn long_gop_is_reported_once_and_force_cut_under_the_configured_target_duration() {
    let (segs, parts, warns, stats) = run(
        RemuxConfig::default(),
        &generate(Gen {
            gop: 120,
            ..Gen::default()
        }),
    );
    check_stream(&segs, &parts, true);
    // TARGETDURATION is the cut policy's, from configuration alone (never learnt from a GOP):
    // 4 s GOPs under a 2 s target are force-cut, and no EXTINF rounds above 2.
    assert!(segs.iter().all(|s| s.target_duration_s == 2));
    assert!(segs.iter().all(|s| s.duration_90k < 2 * 90_000 + 45_000));
    assert_eq!(
        warns
            .iter()
            .filter(|w| matches!(w, RemuxWarning::GopExceedsTarget { .. }))
            .count(),
        1
    );
    assert!(stats.gop_exceeds_target);
    assert!(stats.forced_cuts > 0);
    assert_eq!(stats.discontinuities, 0);
}

#[test]
fn pinned_target_duration_forces_cuts() {
    let cfg = RemuxConfig {
        fixed_target_duration_s: Some(2),
        ..RemuxConfig::default()
    };
    let (segs, parts, warns, stats) = run(
        cfg,
        &generate(Gen {
            gop: 90,
            ..Gen::default()
        }),
    );
    check_stream(&segs, &parts, true);
    assert!(stats.forced_cuts > 0);
    assert_eq!(
        stats.discontinuities, 0,
        "forced cuts are not discontinuities"
    );
    assert!(segs.iter().any(|s| !s.independent));
    assert!(segs
        .iter()
        .all(|s| s.target_duration_s == 2 && s.duration_90k < 180_000 + 45_000));
    assert!(warns
        .iter()
        .any(|w| matches!(w, RemuxWarning::ForcedCut { .. })));
}

#[test]
fn never_a_keyframe_is_bounded() {
    let mut tags = generate(Gen {
        audio: false,
        gop: 10_000,
        ..Gen::default()
    });
    // Only the first frame is a keyframe; a small byte cap forces cuts.
    let cfg = RemuxConfig {
        max_segment_bytes: 100_000,
        ..RemuxConfig::default()
    };
    tags.truncate(200);
    let (segs, _, _, stats) = run(cfg, &tags);
    assert!(stats.forced_cuts > 0);
    assert!(segs.iter().all(|s| s.len <= 100_000 + 20_000));
}

#[test]
fn overhead_ratio_on_a_3_mbit_stream() {
    // 3 Mbit/s video at 30 fps ≈ 12.5 kB/frame (keyframes 4×), 128 kbit/s AAC ≈ 372 B/frame.
    let tags = generate(Gen {
        seconds: 20,
        video_bytes: 11_000,
        audio_bytes: 371,
        ..Gen::default()
    });
    let flv_bytes: usize = 13 + tags.iter().map(|t| 11 + t.payload.len() + 4).sum::<usize>();
    let (segs, _, _, stats) = run(RemuxConfig::default(), &tags);
    let ts_bytes: usize = segs.iter().map(|s| s.len).sum();
    let ratio = ts_bytes as f64 / flv_bytes as f64;
    println!("synthetic TS/FLV ratio: {ratio:.4} ({ts_bytes} / {flv_bytes})");
    assert!(ratio <= 1.035, "ratio {ratio}");
    assert_eq!(stats.bytes_out as usize, ts_bytes);
}

#[test]
fn unsupported_codecs_are_reported_once_and_ignored() {
    let mut tags = generate(Gen {
        video: false,
        seconds: 3,
        ..Gen::default()
    });
    for ts in [0u32, 33, 66] {
        tags.insert(
            2,
            FlvTag {
                kind: TagKind::Video,
                timestamp_ms: ts,
                payload: Bytes::from_static(&[0x91, b'v', b'p', b'0', b'8', 1, 2]),
            },
        );
    }
    tags.insert(
        2,
        FlvTag {
            kind: TagKind::Audio,
            timestamp_ms: 0,
            payload: Bytes::from_static(&[0x90, b'f', b'L', b'a', b'C', 1]),
        },
    );
    let (segs, parts, warns, stats) = run(RemuxConfig::default(), &tags);
    check_stream(&segs, &parts, false);
    let u: Vec<_> = warns
        .iter()
        .filter(|w| matches!(w, RemuxWarning::UnsupportedCodec { .. }))
        .collect();
    assert_eq!(u.len(), 2, "{warns:?}");
    let mut names = stats.unsupported_codecs.clone();
    names.sort();
    assert_eq!(names, vec!["flac".to_string(), "vp8".to_string()]);
}

#[test]
fn mp3_stream_type_from_frame_header() {
    let mut tags = Vec::new();
    for i in 0..200u32 {
        let mut v = vec![0x2F, 0xFF, 0xFB, 0x90, 0x64];
        v.extend(std::iter::repeat_n(0x55, 413));
        tags.push(FlvTag {
            kind: TagKind::Audio,
            timestamp_ms: i * 26,
            payload: Bytes::from(v),
        });
    }
    let (segs, parts, _, _) = run(RemuxConfig::default(), &tags);
    let ts = check_stream(&segs, &parts, false);
    assert_eq!(demux(&ts).0, vec![0x03]);
    assert_eq!(segs[0].codec.audio.as_ref().unwrap().sample_rate_hz, 44100);
}

#[test]
fn bad_nal_length_errors_only_that_tag() {
    let mut tags = generate(Gen {
        seconds: 3,
        ..Gen::default()
    });
    let at = tags
        .iter()
        .position(|t| t.kind == TagKind::Video && t.timestamp_ms == 500)
        .unwrap();
    tags[at] = FlvTag {
        kind: TagKind::Video,
        timestamp_ms: 500,
        payload: Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0x41]),
    };
    let mut r = Remuxer::new(RemuxConfig::default());
    let mut errors = 0;
    for t in tags {
        if let Err(e) = r.push(t, 0) {
            assert!(
                matches!(
                    e,
                    RemuxError::NalOverrun {
                        timestamp_ms: 500,
                        ..
                    }
                ),
                "{e}"
            );
            errors += 1;
        }
    }
    r.finish();
    assert_eq!(errors, 1);
    assert_eq!(r.stats().dropped_errors, 1);
    assert!(r.stats().segments >= 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_tags_never_panic(tags in proptest::collection::vec((0u8..3, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)) {
        let mut r = Remuxer::new(RemuxConfig::default());
        let _ = r.push(FlvTag { kind: TagKind::Video, timestamp_ms: 0, payload: avc_seq_header() }, 0);
        for (k, ts, p) in tags {
            let kind = [TagKind::Audio, TagKind::Video, TagKind::Script][usize::from(k)];
            let _ = r.push(FlvTag { kind, timestamp_ms: ts, payload: Bytes::from(p) }, 0);
            while r.poll_output().is_some() {}
        }
        r.finish();
        while let Some(o) = r.poll_output() {
            if let RemuxOutput::Segment(s) = o {
                if s.container == Container::Ts {
                    prop_assert_eq!(s.len % 188, 0);
                }
            }
        }
    }

    #[test]
    fn jittery_timestamps_stay_monotonic(jitter in proptest::collection::vec(-40i64..40, 300)) {
        let mut tags = generate(Gen { seconds: 5, ..Gen::default() });
        for (t, j) in tags.iter_mut().skip(2).zip(jitter.iter().cycle()) {
            if t.kind == TagKind::Audio {
                t.timestamp_ms = (i64::from(t.timestamp_ms) + 1000 + j) as u32;
            } else {
                t.timestamp_ms += 1000;
            }
        }
        let (segs, parts, _, _) = run(RemuxConfig::default(), &tags);
        check_stream(&segs, &parts, true);
    }
}
