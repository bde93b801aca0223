//! Pipeline-level tests of the staged remuxer (access units → cut policy → CMAF writer) on
//! scripted timelines: B-frames with negative CTS, 2^32 ms wrap, gaps, a late track, multitrack,
//! and hostile tags (255-track headers, AV1 sequence header of garbage OBUs) that must change
//! nothing else. The fMP4 bytes are walked back box by box (ISO/IEC 14496-12 §4.2).

use bytes::Bytes;

use crate::tests::{generate, shift, Gen};
use crate::*;

#[derive(Default)]
pub(crate) struct Run {
    pub(crate) inits: Vec<InitSegment>,
    pub(crate) ts: Vec<Segment>,
    pub(crate) cmaf: Vec<Segment>,
    pub(crate) cmaf_parts: Vec<Part>,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) warnings: Vec<RemuxWarning>,
    pub(crate) errors: Vec<RemuxError>,
}

pub(crate) fn run_tags(cfg: RemuxConfig, tags: &[FlvTag]) -> (Run, Remuxer) {
    let mut r = Remuxer::new(cfg);
    let mut out = Run::default();
    let drain = |r: &mut Remuxer, out: &mut Run| {
        while let Some(o) = r.poll_output() {
            match o {
                RemuxOutput::Init(i) => out.inits.push(i),
                RemuxOutput::Segment(s) if s.container == Container::Ts => out.ts.push(s),
                RemuxOutput::Segment(s) => out.cmaf.push(s),
                RemuxOutput::Part(p) if p.container == Container::Cmaf => out.cmaf_parts.push(p),
                RemuxOutput::Chunk(c) => {
                    // A chunk comes before its part's event: no part of that number yet.
                    assert!(!out.cmaf_parts.iter().any(|p| p.segment_sequence
                        == c.segment_sequence
                        && p.index == c.part_index));
                    out.chunks.push(c);
                }
                RemuxOutput::Part(_) => {}
                RemuxOutput::Warning(w) => out.warnings.push(w),
            }
        }
    };
    for (i, t) in tags.iter().enumerate() {
        if let Err(e) = r.push(t.clone(), i as u64) {
            out.errors.push(e);
        }
        drain(&mut r, &mut out);
    }
    r.finish();
    drain(&mut r, &mut out);
    (out, r)
}

/// Top-level box types of an fMP4 byte string, checking that sizes tile it exactly.
fn boxes(data: &[u8]) -> Vec<String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && pos + size <= data.len(),
            "box at {pos} size {size}"
        );
        out.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned());
        pos += size;
    }
    out
}

fn check_cmaf(run: &Run) {
    assert_eq!(run.inits.len(), 1);
    assert_eq!(boxes(&run.inits[0].bytes), ["ftyp", "moov"]);
    assert!(!run.cmaf.is_empty());
    let td = run.cmaf[0].target_duration_s;
    for s in &run.cmaf {
        let b = boxes(&s.parts.concat());
        assert_eq!(b[0], "styp", "segment {}", s.sequence);
        assert!(b[1..].chunks(2).all(|c| c == ["moof", "mdat"]), "{b:?}");
        assert_eq!(
            s.target_duration_s, td,
            "TARGETDURATION fixed for the stream's life"
        );
        assert!(s.duration_90k < u64::from(td) * 90_000 + 45_000);
    }
    for p in &run.cmaf_parts {
        assert!(
            p.duration_90k <= 333 * 90,
            "part {} ms",
            p.duration_90k / 90
        );
    }
    crate::chunk_tests::check_chunks(&run.chunks, &run.cmaf_parts, &run.cmaf);
}

pub(crate) fn cmaf_only() -> RemuxConfig {
    RemuxConfig {
        containers: Containers {
            ts: false,
            cmaf: true,
        },
        ..RemuxConfig::default()
    }
}

#[test]
fn b_frames_with_negative_cts_real_durations() {
    let tags = generate(Gen {
        negative_cts: true,
        ..Gen::default()
    });
    let (run, _) = run_tags(cmaf_only(), &tags);
    check_cmaf(&run);
    assert!(run.ts.is_empty(), "TS switched off by hls.containers");
    // EXTINF is the real media duration: the segments add up to the 10 s sent (± a frame).
    let total: u64 = run.cmaf.iter().map(|s| s.duration_90k).sum();
    assert!((897_000..=903_000).contains(&total), "{total}");
    assert!(run.cmaf.iter().all(|s| s.independent && !s.discontinuity));
    assert_eq!(run.cmaf[0].codec.codecs, "avc1.64001e,mp4a.40.2");
}

#[test]
fn wrap_of_32_bit_milliseconds_is_not_a_jump() {
    let tags = generate(Gen {
        start_ms: u32::MAX - 3000,
        ..Gen::default()
    });
    let (run, _) = run_tags(RemuxConfig::default(), &tags);
    check_cmaf(&run);
    assert!(run.cmaf.iter().all(|s| !s.discontinuity));
    assert!(!run
        .warnings
        .iter()
        .any(|w| matches!(w, RemuxWarning::TimestampJump { .. })));
}

#[test]
fn gap_is_a_discontinuity_never_a_clamped_duration() {
    let mut tags = generate(Gen::default());
    let mid = tags.len() / 2;
    shift(&mut tags, mid, 30_000);
    let (run, _) = run_tags(cmaf_only(), &tags);
    check_cmaf(&run);
    let disc: Vec<&Segment> = run.cmaf.iter().filter(|s| s.discontinuity).collect();
    assert_eq!(disc.len(), 1);
    // After a discontinuity the writer waits for a keyframe (frames before it are dropped),
    // so the 30 s gap adds nothing: the media durations sum to at most the 10 s sent.
    assert!(disc[0].independent);
    let total: u64 = run.cmaf.iter().map(|s| s.duration_90k).sum();
    assert!(
        (800_000..=903_000).contains(&total),
        "gap counted as media: {total}"
    );
}

#[test]
fn late_track_is_not_a_jump() {
    // Audio frames only from 5 s on: per-track jump detection must not rebase it.
    let tags: Vec<FlvTag> = generate(Gen::default())
        .into_iter()
        .filter(|t| !(t.kind == TagKind::Audio && t.payload[1] == 1 && t.timestamp_ms < 5000))
        .collect();
    let (run, _) = run_tags(cmaf_only(), &tags);
    assert!(run.cmaf.iter().all(|s| !s.discontinuity));
    assert!(!run
        .warnings
        .iter()
        .any(|w| matches!(w, RemuxWarning::TimestampJump { .. })));
}

/// An Enhanced RTMP multitrack OneTrack copy of a legacy AVC tag, as track `id`.
fn as_track(tag: &FlvTag, id: u8) -> FlvTag {
    let p = &tag.payload;
    let frame_type = p[0] >> 4;
    let packet_type = p[1]; // 0 SequenceStart, 1 CodedFrames (same numbers in E-RTMP)
    let mut v = vec![
        0x80 | (frame_type << 4) | 6,
        packet_type,
        b'a',
        b'v',
        b'c',
        b'1',
        id,
    ];
    if packet_type == 1 {
        v.extend_from_slice(&p[2..]); // SI24 CTS + NAL units
    } else {
        v.extend_from_slice(&p[5..]);
    }
    FlvTag {
        kind: TagKind::Video,
        timestamp_ms: tag.timestamp_ms,
        payload: Bytes::from(v),
    }
}

#[test]
fn multitrack_default_track_written_others_addressable() {
    let clean = generate(Gen::default());
    let mut multi = Vec::new();
    for t in &clean {
        multi.push(t.clone());
        if t.kind == TagKind::Video {
            multi.push(as_track(t, 1));
        }
    }
    let (a, _) = run_tags(RemuxConfig::default(), &clean);
    let (b, r) = run_tags(RemuxConfig::default(), &multi);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(r.track_ids(Media::Video), vec![0, 1]);
    assert!(r.track_config(Media::Video, 1).is_some());
    // Track 1 is not written: both containers are byte-identical to the single-track publish.
    let bytes = |v: &[Segment]| v.iter().map(|s| s.parts.concat()).collect::<Vec<_>>();
    assert_eq!(bytes(&a.ts), bytes(&b.ts));
    assert_eq!(bytes(&a.cmaf), bytes(&b.cmaf));
}

/// One remuxer per video track (`video_track`) makes one rendition per track of a multitrack
/// publish: each writes its own track with the default audio, and both cut on the encoder's
/// (here identical) keyframes, so segment N starts at the same time in both.
#[test]
fn multitrack_one_rendition_per_video_track_cuts_aligned() {
    let clean = generate(Gen::default());
    let mut multi = Vec::new();
    for t in &clean {
        multi.push(t.clone());
        if t.kind == TagKind::Video {
            multi.push(as_track(t, 1));
        }
    }
    let track = |id| RemuxConfig {
        video_track: Some(id),
        ..RemuxConfig::default()
    };
    let (a, _) = run_tags(track(0), &multi);
    let (b, _) = run_tags(track(1), &multi);
    assert!(a.errors.is_empty() && b.errors.is_empty());
    for (x, y) in [(&a.ts, &b.ts), (&a.cmaf, &b.cmaf)] {
        assert!(x.len() >= 3, "{}", x.len());
        let cuts = |v: &[Segment]| {
            v.iter()
                .map(|s| (s.first_dts_90k, s.duration_90k, s.independent))
                .collect::<Vec<_>>()
        };
        assert_eq!(cuts(x), cuts(y));
    }
    // Track 1 carries the same samples as track 0 here: the same media bytes.
    let bytes = |v: &[Segment]| v.iter().map(|s| s.parts.concat()).collect::<Vec<_>>();
    assert_eq!(bytes(&a.ts), bytes(&b.ts));
    // A track that is never sent writes nothing.
    let (c, _) = run_tags(track(7), &multi);
    assert!(
        c.cmaf.iter().all(|s| s.codec.video.is_none()),
        "track 7 has no video"
    );
}

#[test]
fn hostile_tags_are_refused_and_change_nothing_else() {
    let clean = generate(Gen::default());
    // 255 tracks of avc1 in one ManyTracks message.
    let mut many = vec![0x96, 0x11, b'a', b'v', b'c', b'1'];
    for id in 0..255u8 {
        many.extend_from_slice(&[id, 0, 0, 4, 0, 0, 0, 0]);
    }
    // An av01 SequenceStart whose configOBUs are garbage.
    let av1 = vec![
        0x90, b'a', b'v', b'0', b'1', 0x81, 0x00, 0x0c, 0x00, 0xff, 0xff, 0xff,
    ];
    let mut hostile = clean.clone();
    let at = hostile.len() / 2;
    for (i, payload) in [many, av1].into_iter().enumerate() {
        let ts = hostile[at].timestamp_ms;
        hostile.insert(
            at + i,
            FlvTag {
                kind: TagKind::Video,
                timestamp_ms: ts,
                payload: Bytes::from(payload),
            },
        );
    }
    let (a, _) = run_tags(RemuxConfig::default(), &clean);
    let (b, _) = run_tags(RemuxConfig::default(), &hostile);
    assert_eq!(b.errors.len(), 2, "{:?}", b.errors);
    assert!(matches!(
        b.errors[0],
        RemuxError::Tag {
            source: flv_tag::FlvTagError::TooManyTracks { .. },
            ..
        }
    ));
    let bytes = |v: &[Segment]| v.iter().map(|s| s.parts.concat()).collect::<Vec<_>>();
    assert_eq!(bytes(&a.ts), bytes(&b.ts));
    assert_eq!(bytes(&a.cmaf), bytes(&b.cmaf));
    assert_eq!(
        b.inits.len(),
        1,
        "a refused configuration makes no init segment"
    );
}

#[test]
fn unknown_fourcc_bookkeeping_is_capped() {
    let mut tags = generate(Gen {
        seconds: 2,
        ..Gen::default()
    });
    for i in 0..100u32 {
        let mut v = vec![0x91];
        v.extend_from_slice(&(0x4000_0000 + i).to_be_bytes());
        v.push(0);
        tags.push(FlvTag {
            kind: TagKind::Video,
            timestamp_ms: 2000,
            payload: Bytes::from(v),
        });
    }
    let (_, r) = run_tags(RemuxConfig::default(), &tags);
    assert_eq!(
        r.stats().unsupported_codecs.len(),
        MAX_UNSUPPORTED_CODECS_LISTED
    );
    assert_eq!(
        r.stats().unsupported_codecs_unlisted,
        100 - MAX_UNSUPPORTED_CODECS_LISTED as u64
    );
}

#[test]
fn track_wait_queue_is_bounded_by_bytes() {
    // Video only, no audio header ever: frames of 1 MiB wait for the decision.
    let cfg = RemuxConfig {
        track_wait_max_bytes: 4 << 20,
        track_wait_ms: 60_000,
        track_wait_max_tags: 100_000,
        ..RemuxConfig::default()
    };
    let tags = generate(Gen {
        audio: false,
        seconds: 1,
        video_bytes: 1 << 20,
        ..Gen::default()
    });
    let mut r = Remuxer::new(cfg);
    for t in tags {
        let _ = r.push(t, 0);
        assert!(
            r.queue_bytes <= (4 << 20) + (4 << 20) + 64,
            "{}",
            r.queue_bytes
        );
        assert!(r.cmaf_pre_bytes <= (4 << 20) + (4 << 20) + 64);
    }
}
