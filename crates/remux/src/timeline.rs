//! Stream timeline: RTMP's 32-bit millisecond timestamps (RTMP §5.3.1.3, wrapping every ~49.7
//! days) unwrapped to 64 bits, jump detection, rebasing after a jump so the output never runs
//! backwards, and the single ms → 90 kHz conversion (ISO/IEC 13818-1 §2.4.3.7 PTS/DTS units).
//!
//! Policy:
//! * one shared clock for all tracks (RTMP timestamps are stream-wide), but jumps are detected
//!   per track: a step backwards of more than `backward_tolerance_ms` below that track's previous
//!   DTS, or forwards of more than `max_jump_ms` above it, is a *jump*: the output is rebased to
//!   continue `JUMP_GAP_MS` after the high-water mark, and the caller starts a discontinuity. A
//!   track's first timestamp is never a jump, so a track that starts late (audio 5 s after video)
//!   keeps its place instead of being rebased out of sync;
//! * smaller backward steps within a track (interleaving jitter, encoder glitches) are absorbed by
//!   the per-track monotonic nudge in the remuxer (DTS = previous + 1 tick).

/// Output timestamps start this far above the RTMP timestamps so PCR (= DTS − this offset) and
/// early B-frame DTS never go below zero (nginx-rtmp uses the same 700 ms).
pub const BASE_OFFSET_90K: u64 = 63_000;

/// Where the output continues after a jump, measured from the high-water mark.
pub const JUMP_GAP_MS: i64 = 40;

/// Modulus of the 33-bit PTS/DTS/PCR base.
pub const WRAP_33: u64 = 1 << 33;

/// Converts output milliseconds to 90 kHz — the only ms → 90 kHz conversion in the crate.
pub fn ms_to_90k(ms: i64) -> u64 {
    let t = ms.saturating_mul(90).saturating_add(BASE_OFFSET_90K as i64);
    u64::try_from(t).unwrap_or(0)
}

/// Result of placing one timestamp on the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Output time in ms (unwrapped, rebased). Never below the previous high-water minus the
    /// tolerated interleaving window.
    pub out_ms: i64,
    /// This timestamp was a jump; the output was rebased.
    pub jump: Option<(i64, i64)>,
}

/// Per-stream timeline state.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    last_raw: Option<u32>,
    /// Unwrapped input time of the last tag (any track).
    last_ext: i64,
    /// Added to the unwrapped input to get output ms.
    rebase_ms: i64,
    /// Highest output ms seen so far.
    high_water_ms: Option<i64>,
    /// Last output ms per track (0 = video, 1 = audio).
    track_last_ms: [Option<i64>; 2],
}

impl Timeline {
    /// Places a raw 32-bit timestamp of `track`.
    pub fn place(
        &mut self,
        raw: u32,
        track: usize,
        max_jump_ms: i64,
        backward_tolerance_ms: i64,
    ) -> Placed {
        let ext = match self.last_raw {
            // Signed 32-bit delta: handles the wrap in both directions.
            Some(prev) => self.last_ext + i64::from(raw.wrapping_sub(prev) as i32),
            None => i64::from(raw),
        };
        self.last_raw = Some(raw);
        self.last_ext = ext;
        let mut out = ext + self.rebase_ms;
        let mut jump = None;
        let track_last = self.track_last_ms.get(track).copied().flatten();
        if let (Some(hw), Some(last)) = (self.high_water_ms, track_last) {
            if out > last + max_jump_ms || out < last - backward_tolerance_ms {
                let target = hw + JUMP_GAP_MS;
                self.rebase_ms += target - out;
                jump = Some((hw, out));
                out = target;
            }
        }
        self.high_water_ms = Some(self.high_water_ms.map_or(out, |h| h.max(out)));
        if let Some(t) = self.track_last_ms.get_mut(track) {
            *t = Some(t.map_or(out, |v| v.max(out)));
        }
        Placed { out_ms: out, jump }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_32_bit_ms() {
        let mut t = Timeline::default();
        let a = t.place(u32::MAX - 10, 0, 3000, 500).out_ms;
        let b = t.place(5, 0, 3000, 500).out_ms;
        assert_eq!(b - a, 16);
        assert_eq!(b, i64::from(u32::MAX) + 6);
    }

    #[test]
    fn jumps_rebase_monotonically() {
        let mut t = Timeline::default();
        assert_eq!(t.place(10_000, 0, 3000, 500).out_ms, 10_000);
        // Publisher restarted its clock at 0: backwards jump.
        let p = t.place(0, 0, 3000, 500);
        assert_eq!(p.out_ms, 10_040);
        assert!(p.jump.is_some());
        assert_eq!(t.place(33, 0, 3000, 500).out_ms, 10_073);
        // Forward jump of an hour.
        let p = t.place(3_600_033, 0, 3000, 500);
        assert_eq!(p.out_ms, 10_113);
        assert!(p.jump.is_some());
        // Audio slightly behind video is interleaving, not a jump.
        let p = t.place(3_600_000, 1, 3000, 500);
        assert_eq!((p.out_ms, p.jump), (10_080, None));
    }

    proptest! {
        #[test]
        fn no_track_runs_far_backwards_or_forwards(start in any::<u32>(), steps in proptest::collection::vec((any::<i32>(), 0usize..2), 1..200)) {
            let mut t = Timeline::default();
            let mut raw = start;
            let mut last = [Some(t.place(raw, 0, 3000, 500).out_ms), None];
            for (d, track) in steps {
                let d = if d % 3 == 0 { d } else { d % 100 };
                raw = raw.wrapping_add(d as u32);
                let p = t.place(raw, track, 3000, 500);
                if let Some(l) = last[track] {
                    prop_assert!(p.out_ms >= l - 500 || p.jump.is_some());
                    prop_assert!(p.out_ms <= l.max(t.high_water_ms.unwrap_or(l)) + 3000);
                }
                last[track] = Some(last[track].map_or(p.out_ms, |l| l.max(p.out_ms)));
            }
        }

        #[test]
        fn late_track_is_not_rebased(late_ms in 0u32..60_000) {
            let mut t = Timeline::default();
            for i in 0..100u32 {
                t.place(i * 40, 0, 3000, 500);
            }
            let p = t.place(late_ms, 1, 3000, 500);
            prop_assert_eq!((p.out_ms, p.jump), (i64::from(late_ms), None));
        }
    }
}
