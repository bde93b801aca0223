//! One cut, two containers: the MPEG-TS and fMP4/CMAF writers apply the same cut policy
//! (RFC 8216bis §4.4.3.1 EXT-X-TARGETDURATION, §4.4.2.3 EXT-X-DISCONTINUITY), so on the same
//! scripted timelines their segments agree in sequence, duration, discontinuity and
//! independence, no EXTINF rounds above TARGETDURATION, and a gap is a discontinuity, never a
//! clamped duration.

use crate::tests::{generate, shift, Gen};
use crate::*;

/// (sequence, duration in 90 kHz ticks, discontinuity, independent) per segment.
type Cuts = Vec<(u64, u64, bool, bool)>;

fn run_both(cfg: RemuxConfig, tags: &[FlvTag]) -> (Cuts, Cuts, RemuxStats) {
    let mut r = Remuxer::new(cfg);
    let (mut ts, mut cmaf) = (Vec::new(), Vec::new());
    let mut drain = |r: &mut Remuxer| {
        while let Some(o) = r.poll_output() {
            if let RemuxOutput::Segment(s) = o {
                let td_limit = u64::from(s.target_duration_s) * 90_000 + 45_000;
                assert!(
                    s.duration_90k < td_limit,
                    "{:?} segment {} lasts {} ticks: EXTINF rounds above TARGETDURATION {}",
                    s.container,
                    s.sequence,
                    s.duration_90k,
                    s.target_duration_s
                );
                assert_eq!(s.target_duration_s, 2, "TARGETDURATION is the policy's");
                let row = (s.sequence, s.duration_90k, s.discontinuity, s.independent);
                match s.container {
                    Container::Ts => ts.push(row),
                    Container::Cmaf => cmaf.push(row),
                }
            }
        }
    };
    for (i, t) in tags.iter().enumerate() {
        let _ = r.push(t.clone(), i as u64);
        drain(&mut r);
    }
    r.finish();
    drain(&mut r);
    (ts, cmaf, r.stats().clone())
}

/// Both containers cut identically; durations agree within `tolerance_90k` (CMAF sums exact
/// audio sample durations where TS subtracts millisecond timestamps).
fn assert_same_cuts(ts: &Cuts, cmaf: &Cuts, tolerance_90k: u64) {
    assert!(ts.len() >= 3, "too few segments: {ts:?}");
    assert_eq!(ts.len(), cmaf.len(), "TS {ts:?}\nCMAF {cmaf:?}");
    for (t, c) in ts.iter().zip(cmaf) {
        assert_eq!((t.0, t.2, t.3), (c.0, c.2, c.3), "TS {ts:?}\nCMAF {cmaf:?}");
        assert!(
            t.1.abs_diff(c.1) <= tolerance_90k,
            "segment {}: TS {} vs CMAF {} ticks\nTS {ts:?}\nCMAF {cmaf:?}",
            t.0,
            t.1,
            c.1
        );
    }
}

/// Rewrites the generator's video tag as a keyframe or not (frame type and NAL type).
fn set_keyframe(tag: &mut FlvTag, key: bool) {
    let mut v = tag.payload.to_vec();
    v[0] = if key { 0x17 } else { 0x27 };
    v[9] = if key { 0x65 } else { 0x41 };
    tag.payload = Bytes::from(v);
}

fn is_coded_video(t: &FlvTag) -> bool {
    t.kind == TagKind::Video && t.payload.get(1) == Some(&1)
}

#[test]
fn regular_gop_cuts_identically() {
    let (ts, cmaf, stats) = run_both(RemuxConfig::default(), &generate(Gen::default()));
    assert_same_cuts(&ts, &cmaf, 0);
    assert!(ts.iter().all(|s| s.3 && !s.2));
    assert_eq!(stats.forced_cuts, 0);
}

#[test]
fn irregular_gop_cuts_identically_and_is_force_cut_under_target() {
    let mut tags = generate(Gen {
        seconds: 12,
        ..Gen::default()
    });
    // Keyframes at frames 0, 36, 50, 130, 150, 250 (0, 1.2, 1.67, 4.33, 5, 8.33 s).
    let keys = [0, 36, 50, 130, 150, 250];
    for (i, t) in tags.iter_mut().filter(|t| is_coded_video(t)).enumerate() {
        set_keyframe(t, keys.contains(&i));
    }
    let (ts, cmaf, stats) = run_both(RemuxConfig::default(), &tags);
    assert_same_cuts(&ts, &cmaf, 0);
    assert!(
        ts.iter().any(|s| !s.3),
        "a forced cut is not independent: {ts:?}"
    );
    assert!(stats.forced_cuts > 0);
    assert!(
        ts.iter().all(|s| !s.2),
        "forced cuts are not discontinuities"
    );
}

#[test]
fn b_frames_with_negative_cts_cut_identically() {
    let tags = generate(Gen {
        negative_cts: true,
        ..Gen::default()
    });
    let (ts, cmaf, _) = run_both(RemuxConfig::default(), &tags);
    assert_same_cuts(&ts, &cmaf, 0);
}

#[test]
fn gap_below_the_jump_threshold_is_a_discontinuity_not_a_clamped_duration() {
    // 1.5 s of silence in both tracks, 1.8 s into the second segment: below the 2 s jump
    // threshold, but the segment holding it would last 3.3 s.
    let mut tags = generate(Gen::default());
    let at = tags
        .iter()
        .position(|t| t.timestamp_ms >= 3_800)
        .expect("tag at 3.8 s");
    shift(&mut tags, at, 1_500);
    let (ts, cmaf, stats) = run_both(RemuxConfig::default(), &tags);
    assert_same_cuts(&ts, &cmaf, 0);
    assert_eq!(ts.iter().filter(|s| s.2).count(), 1, "{ts:?}");
    assert_eq!(stats.timestamp_jumps, 0, "not a jump: {ts:?}");
    // The segment before the gap ends where its media ends (1.8 s, not 3.3 s, nor clamped).
    let before = ts.iter().position(|s| s.2).unwrap() - 1;
    assert!((161_000..=165_000).contains(&ts[before].1), "{ts:?}");
    // The media sent is 10 s: the gap adds nothing.
    let total: u64 = ts.iter().map(|s| s.1).sum();
    assert!((897_000..=903_000).contains(&total), "{total} {ts:?}");
}

#[test]
fn large_gap_is_a_jump_and_a_discontinuity_in_both() {
    let mut tags = generate(Gen::default());
    let mid = tags.len() / 2;
    shift(&mut tags, mid, 30_000);
    let (ts, cmaf, stats) = run_both(RemuxConfig::default(), &tags);
    assert_same_cuts(&ts, &cmaf, 0);
    assert_eq!(ts.iter().filter(|s| s.2).count(), 1, "{ts:?}");
    assert!(stats.timestamp_jumps > 0);
    let total: u64 = ts.iter().map(|s| s.1).sum();
    assert!(total <= 903_000, "gap counted as media: {total}");
}

#[test]
fn audio_only_cuts_identically() {
    let tags = generate(Gen {
        video: false,
        ..Gen::default()
    });
    let (ts, cmaf, _) = run_both(RemuxConfig::default(), &tags);
    // AAC frames are 1024/44100 s: CMAF sums them exactly, TS subtracts ms timestamps.
    assert_same_cuts(&ts, &cmaf, 2 * 90);
    assert!(ts.iter().all(|s| s.3 && !s.2));
}
