//! Stage 2 of the pipeline: the cut policy, the one place that decides where segments and parts
//! end (RFC 8216bis §4.4.3.1 EXT-X-TARGETDURATION, §4.4.4.9 EXT-X-PART, §4.4.3.7
//! EXT-X-PART-INF PART-TARGET).
//!
//! A pure function of the configuration and of the timeline it is shown; it never learns from
//! the edge. `#EXT-X-TARGETDURATION` is decided once, from configuration alone
//! ([`CutPolicy::target_duration_s`]), so it can never change during a stream's life:
//!
//! * a segment ends at the first keyframe at or after `target_ms`;
//! * a segment is force-cut (not independent) before its duration could round above
//!   TARGETDURATION (§4.4.3.1: EXTINF rounded to the nearest integer ≤ TARGETDURATION), with
//!   the next frame step estimated generously (previous step + 25% + 1 ms);
//! * a part ends before adding the next sample would make it longer than `part_target_ms`
//!   (estimated with the previous sample duration; constant-rate streams never exceed it);
//! * a timestamp gap is a discontinuity, never a clamped duration: large gaps are jumps that the
//!   timeline rebases; a smaller gap that still leaves the open segment longer than the
//!   TARGETDURATION allows ([`Cut::Gap`]) ends the segment at its last sample's own end and
//!   starts a discontinuity, so `EXTINF` stays the real media duration.
//!
//! Every container writer (MPEG-TS in `segmenter`, fMP4/CMAF in `cmaf`) applies these decisions
//! to the same lead-track timeline, so both containers have the same segment boundaries.

/// What to do before adding a sample of the lead track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The sample joins the open part.
    None,
    /// Close the open part; the sample starts a new part of the same segment.
    Part,
    /// Close the part and the segment; the sample starts a new segment.
    Segment {
        /// The new segment starts with a random access point.
        independent: bool,
    },
    /// The gap before the sample would make the open segment longer than TARGETDURATION allows:
    /// close the segment at its last sample's estimated end (not at this sample) and start a new
    /// segment with `#EXT-X-DISCONTINUITY` (RFC 8216bis §4.4.2.3).
    Gap {
        /// The new segment starts with a random access point.
        independent: bool,
    },
}

/// Segment and part boundaries for one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutPolicy {
    /// Cut at the first keyframe at or after this.
    pub target_ms: u32,
    /// Parts are never longer than this (LL-HLS PART-TARGET).
    pub part_target_ms: u32,
    /// EXT-X-TARGETDURATION, fixed for the stream's life.
    pub target_duration_s: u32,
}

impl CutPolicy {
    /// `fixed_target_duration_s` pins TARGETDURATION; otherwise it is `ceil(target_ms / 1000)`.
    pub fn new(target_ms: u32, part_target_ms: u32, fixed_target_duration_s: Option<u32>) -> Self {
        let target_ms = target_ms.max(1);
        let target_duration_s = fixed_target_duration_s
            .unwrap_or(target_ms.div_ceil(1000))
            .max(1);
        CutPolicy {
            target_ms,
            part_target_ms: part_target_ms.clamp(1, target_ms),
            target_duration_s,
        }
    }

    /// The longest a segment may become: EXTINF must round to at most TARGETDURATION.
    pub fn max_segment_ms(&self) -> i64 {
        i64::from(self.target_duration_s) * 1000 + 499
    }

    /// Decides for a lead-track sample: `segment_ms` and `part_ms` are the open segment's and
    /// part's durations if the sample is not added (its DTS minus their start), `frame_ms` the
    /// previous sample's duration (the estimate of this one's).
    pub fn decide(&self, segment_ms: i64, part_ms: i64, frame_ms: i64, keyframe: bool) -> Cut {
        if segment_ms > self.max_segment_ms() {
            return Cut::Gap {
                independent: keyframe,
            };
        }
        if keyframe && segment_ms >= i64::from(self.target_ms) {
            return Cut::Segment { independent: true };
        }
        // The next step is estimated as the previous one plus a quarter and a millisecond, so
        // millisecond timestamps (33/34 ms steps) and mild frame-rate jitter never overrun.
        let frame_ms = frame_ms.max(0);
        if segment_ms + frame_ms + frame_ms / 4 + 1 > self.max_segment_ms() {
            return Cut::Segment {
                independent: keyframe,
            };
        }
        // Parts get the same jitter margin: with 33/34 ms steps a 333 ms part target holds 9
        // frames, never 10 (10 frames of 30 fps are 333.3 ms, over PART-TARGET).
        if part_ms > 0 && part_ms + frame_ms + frame_ms / 4 + 1 > i64::from(self.part_target_ms) {
            return Cut::Part;
        }
        Cut::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a scripted lead-track timeline (dts ms, keyframe) through the policy and returns
    /// (segment durations, part durations, independence) the way the writer would cut.
    fn run(policy: &CutPolicy, samples: &[(i64, bool)]) -> (Vec<i64>, Vec<i64>, Vec<bool>) {
        let (mut segs, mut parts, mut indep) = (Vec::new(), Vec::new(), Vec::new());
        let (mut seg_start, mut part_start) = (samples[0].0, samples[0].0);
        indep.push(samples[0].1);
        let mut prev = samples[0].0;
        let mut frame = 0;
        for &(dts, key) in &samples[1..] {
            frame = if dts > prev { dts - prev } else { frame };
            match policy.decide(dts - seg_start, dts - part_start, frame, key) {
                Cut::None => {}
                Cut::Part => {
                    parts.push(dts - part_start);
                    part_start = dts;
                }
                Cut::Segment { independent } | Cut::Gap { independent } => {
                    parts.push(dts - part_start);
                    segs.push(dts - seg_start);
                    indep.push(independent);
                    seg_start = dts;
                    part_start = dts;
                }
            }
            prev = dts;
        }
        (segs, parts, indep)
    }

    #[test]
    fn target_duration_is_a_function_of_configuration() {
        assert_eq!(CutPolicy::new(2000, 333, None).target_duration_s, 2);
        assert_eq!(CutPolicy::new(2001, 333, None).target_duration_s, 3);
        assert_eq!(CutPolicy::new(6000, 1000, Some(8)).target_duration_s, 8);
        assert_eq!(CutPolicy::new(0, 0, None).part_target_ms, 1);
        assert_eq!(CutPolicy::new(1000, 5000, None).part_target_ms, 1000);
    }

    #[test]
    fn regular_gop_cuts_at_keyframes_and_parts_stay_under_target() {
        let p = CutPolicy::new(2000, 333, None);
        // 30 fps (33/34 ms steps), keyframe every 60 frames.
        let samples: Vec<(i64, bool)> = (0..600).map(|i| (i * 1000 / 30, i % 60 == 0)).collect();
        let (segs, parts, indep) = run(&p, &samples);
        assert!(segs.iter().all(|d| (1999..=2001).contains(d)), "{segs:?}");
        assert!(parts.iter().all(|d| *d <= 333), "{parts:?}");
        assert!(indep.iter().all(|i| *i));
    }

    #[test]
    fn irregular_gop_is_force_cut_before_extinf_rounds_above_target() {
        let p = CutPolicy::new(2000, 500, None);
        // Keyframes at 0, 1.2 s, 5 s: the 1.2..5 s GOP is longer than TARGETDURATION + 0.5 s.
        let samples: Vec<(i64, bool)> = (0..200)
            .map(|i| (i * 40, matches!(i * 40, 0 | 1200 | 5000)))
            .collect();
        let (segs, parts, indep) = run(&p, &samples);
        assert!(segs.iter().all(|d| *d <= p.max_segment_ms()), "{segs:?}");
        assert!(parts.iter().all(|d| *d <= 500), "{parts:?}");
        assert!(indep.contains(&false), "a forced cut is not independent");
        assert_eq!(segs[0], 2480, "{segs:?}");
    }

    #[test]
    fn b_frames_and_audio_only_leads() {
        // Audio-only lead (AAC 1024 @ 48 kHz ≈ 21.33 ms): every sample is a keyframe.
        let p = CutPolicy::new(2000, 333, None);
        let samples: Vec<(i64, bool)> =
            (0..400).map(|i| (i * 1024 * 1000 / 48_000, true)).collect();
        let (segs, parts, _) = run(&p, &samples);
        assert!(segs.iter().all(|d| (2000..2022).contains(d)), "{segs:?}");
        assert!(parts.iter().all(|d| *d <= 333), "{parts:?}");
    }
}
