//! CMAF chunks (ISO/IEC 23000-19 §7.3.2.3) of the CMAF writer, read back with an independent
//! box reader (`mp4-atom`, ISO/IEC 14496-12 §8.8): chunks concatenate to their part, parts to
//! their segment; every chunk is one `moof`+`mdat` (after `styp` only at a segment's start);
//! `mfhd` sequence numbers increase; each track's `tfdt` continues where the previous chunk
//! ended; the first sample's flags say sync exactly when the chunk is independent; the
//! per-chunk overhead stays bounded.

use std::collections::HashMap;
use std::io::Cursor;

use bytes::Bytes;
use mp4_atom::{Decode, Mdat, Moof, Styp};
use proptest::prelude::*;

use crate::cmaf::AUDIO_CHUNK_MS;
use crate::fmp4::SYNC_SAMPLE_FLAGS;
use crate::pipeline_tests::{cmaf_only, run_tags, Run};
use crate::tests::{generate, Gen};
use crate::*;

/// One chunk as a player reads it.
struct Read {
    styp: bool,
    sequence: u32,
    /// (track id, tfdt, sample durations, first sample flags)
    runs: Vec<(u32, u64, Vec<u32>, u32)>,
    /// `moof` and `mdat` header bytes (`styp` not counted).
    overhead_bytes: usize,
    media_bytes: usize,
}

fn read(chunk: &[Bytes]) -> Read {
    let all: Vec<u8> = chunk.concat();
    let mut c = Cursor::new(&all[..]);
    let styp = &all[4..8] == b"styp";
    if styp {
        Styp::decode(&mut c).expect("styp");
    }
    let start = c.position() as usize;
    let moof = Moof::decode(&mut c).expect("moof");
    let moof_end = c.position() as usize;
    let mdat = Mdat::decode(&mut c).expect("mdat");
    assert_eq!(c.position() as usize, all.len(), "nothing after mdat");
    let runs = moof
        .traf
        .iter()
        .map(|t| {
            let trun = &t.trun[0];
            let d = trun
                .samples
                .iter()
                .map(|e| e.duration.or(t.tfhd.default_sample_duration).expect("dur"))
                .collect();
            let first = trun
                .samples
                .iter()
                .next()
                .and_then(|e| e.flags)
                .or(t.tfhd.default_sample_flags)
                .unwrap_or(0);
            let base = t.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            (t.tfhd.track_id, base, d, first)
        })
        .collect();
    Read {
        styp,
        sequence: moof.mfhd.sequence_number,
        runs,
        overhead_bytes: moof_end - start + 8,
        media_bytes: mdat.data.len(),
    }
}

/// The chunk invariants; returns (chunks, overhead bytes, media bytes).
pub(crate) fn check_chunks(
    chunks: &[Chunk],
    parts: &[Part],
    segs: &[Segment],
) -> (usize, usize, usize) {
    let mut by_part: HashMap<(u64, u32), Vec<&Chunk>> = HashMap::new();
    for c in chunks {
        assert_eq!(c.container, Container::Cmaf);
        by_part
            .entry((c.segment_sequence, c.part_index))
            .or_default()
            .push(c);
    }
    assert_eq!(
        by_part.len(),
        parts.len(),
        "every part has chunks, no chunk lacks a part"
    );
    for p in parts {
        let mine = &by_part[&(p.segment_sequence, p.index)];
        let from_chunks: Vec<u8> = mine.iter().flat_map(|c| c.bytes.concat()).collect();
        assert_eq!(
            from_chunks,
            p.chunks.concat(),
            "part {}.{}",
            p.segment_sequence,
            p.index
        );
        assert_eq!(
            mine[0].independent, p.independent,
            "part independence is its first chunk's"
        );
    }
    let discontinuous: Vec<u64> = segs
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence)
        .collect();
    let mut last_seq = 0u32;
    let mut next_dts: HashMap<u32, u64> = HashMap::new();
    let (mut overhead, mut media) = (0, 0);
    for (i, c) in chunks.iter().enumerate() {
        let r = read(&c.bytes);
        let seg_start = i == 0 || chunks[i - 1].segment_sequence != c.segment_sequence;
        assert_eq!(
            r.styp, seg_start,
            "styp opens exactly a segment's first chunk"
        );
        assert!(r.sequence > last_seq, "mfhd sequence increases");
        last_seq = r.sequence;
        if seg_start && discontinuous.contains(&c.segment_sequence) {
            next_dts.clear();
        }
        for (track, base, durations, first_flags) in &r.runs {
            if let Some(want) = next_dts.get(track) {
                // Audio may be re-anchored (a drift past AUDIO_RESYNC_MS); video never jumps.
                if *track == 1 {
                    assert_eq!(base, want, "video tfdt continues");
                }
            }
            next_dts.insert(
                *track,
                base + durations.iter().map(|d| u64::from(*d)).sum::<u64>(),
            );
            let lead = r.runs.iter().any(|r| r.0 == 1) == (*track == 1);
            if lead && *track == 1 {
                assert_eq!(
                    *first_flags == SYNC_SAMPLE_FLAGS,
                    c.independent,
                    "first sample flags"
                );
            }
        }
        overhead += r.overhead_bytes;
        media += r.media_bytes;
    }
    (chunks.len(), overhead, media)
}

#[test]
fn one_chunk_per_video_frame_and_overhead_bounded() {
    let (run, _) = run_tags(cmaf_only(), &generate(Gen::default()));
    let (n, overhead, media) = check_chunks(&run.chunks, &run.cmaf_parts, &run.cmaf);
    let video_samples: usize = run
        .chunks
        .iter()
        .map(|c| {
            read(&c.bytes)
                .runs
                .iter()
                .filter(|r| r.0 == 1)
                .map(|r| r.2.len())
                .sum::<usize>()
        })
        .sum();
    // Every chunk carries exactly one video frame: 10 s at 30 fps.
    assert_eq!(n, 300);
    assert_eq!(video_samples, 300);
    // moof (mfhd + two trafs) + mdat header: about 150 bytes, bounded well below 256.
    let per_chunk = overhead / n;
    eprintln!("chunks {n}, overhead {overhead} B ({per_chunk} B/chunk) on {media} B of media");
    assert!(per_chunk <= 256, "{per_chunk} B per chunk");
}

#[test]
fn audio_only_chunks_hold_about_a_tenth_of_a_second() {
    let g = Gen {
        video: false,
        ..Gen::default()
    };
    let (run, _) = run_tags(cmaf_only(), &generate(g));
    check_cmaf_chunks(&run);
    let parts: std::collections::HashSet<_> = run
        .chunks
        .iter()
        .map(|c| (c.segment_sequence, c.part_index))
        .collect();
    assert!(
        run.chunks.len() > parts.len(),
        "parts stream in several chunks"
    );
    for c in &run.chunks {
        let r = read(&c.bytes);
        let ticks: u32 = r.runs[0].2.iter().sum();
        // 44.1 kHz: at most AUDIO_CHUNK_MS plus one AAC frame.
        assert!(
            u64::from(ticks) * 1000 <= (AUDIO_CHUNK_MS * 44_100) + 1024 * 1000,
            "{ticks}"
        );
        assert!(c.independent);
    }
}

fn check_cmaf_chunks(run: &Run) {
    check_chunks(&run.chunks, &run.cmaf_parts, &run.cmaf);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any GOP, start time, B-frames or not, with or without a track: the chunk invariants hold.
    #[test]
    fn chunks_tile_parts_and_segments(
        gop in 1u32..90,
        start_ms in prop_oneof![Just(0u32), Just(u32::MAX - 3000), 0u32..100_000],
        bframes in any::<bool>(),
        tracks in prop_oneof![Just((true, true)), Just((true, false)), Just((false, true))],
    ) {
        let g = Gen { gop, start_ms, bframes, video: tracks.0, audio: tracks.1, seconds: 4, ..Gen::default() };
        let (run, _) = run_tags(cmaf_only(), &generate(g));
        check_cmaf_chunks(&run);
    }
}
