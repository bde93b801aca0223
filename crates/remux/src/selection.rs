//! Audio-only renditions cut on the video's keyframes ([`crate::MediaSelection::AudioOnly`]):
//! an alternate audio rendition (RFC 8216bis §4.4.6.1 `EXT-X-MEDIA:TYPE=AUDIO`) must switch with
//! the video at the same segment boundaries (§6.2.4: the same media sequence number covers the
//! same media time in every rendition), so the audio remuxer of a multitrack publish reads the
//! video track's keyframe flags (FLV `frameType`, E-RTMP v2 multitrack) and lets a segment start
//! only at the first audio frame at or after each keyframe where the video cuts (a keyframe at
//! least the target duration after the previous cut, the cut policy's rule). The audio cut
//! policy runs with a target [`FOLLOW_SLACK_MS`] shorter, so the frame that lands up to one
//! audio frame after such a keyframe always cuts, and no other frame can.

use std::collections::VecDeque;

/// Video keyframe timestamps remembered (bounded; the TS path replays at most the track wait).
const MAX_KEYFRAMES: usize = 64;
/// The first audio frame a path sees starts a segment only if a keyframe is this close before
/// it (RTMP interleaving puts audio and video of the same time within a few frames).
const FIRST_FRAME_WINDOW_MS: u32 = 100;

/// Which writer asks (each keeps its own previous audio timestamp).
#[derive(Clone, Copy)]
pub(crate) enum Path {
    Ts = 0,
    Cmaf = 1,
}

/// How much shorter the audio-only cut target is than the video's: more than one audio frame
/// (AAC at 16 kHz: 64 ms), so the first frame after a cut keyframe always reaches it.
pub(crate) const FOLLOW_SLACK_MS: u32 = 100;

#[derive(Debug, Default)]
pub(crate) struct KeyframeFollower {
    /// The video's segment target (ms): keyframes closer than this to the last cut are not cuts.
    pub target_ms: u32,
    last_cut_ms: Option<u32>,
    keyframes_ms: VecDeque<u32>,
    prev_audio_ms: [Option<u32>; 2],
}

/// `a` is at or after `b` on the 32-bit RTMP timeline (wrapping).
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl KeyframeFollower {
    pub fn keyframe(&mut self, ts_ms: u32) {
        if let Some(last) = self.last_cut_ms {
            if ts_ms.wrapping_sub(last) as i32 <= 0 || ts_ms.wrapping_sub(last) < self.target_ms {
                return; // not where the video cuts
            }
        }
        self.last_cut_ms = Some(ts_ms);
        self.keyframes_ms.push_back(ts_ms);
        while self.keyframes_ms.len() > MAX_KEYFRAMES {
            self.keyframes_ms.pop_front();
        }
    }

    /// Whether the audio frame at `ts_ms` may start a segment on `path`: a keyframe lies after
    /// the previous audio frame and at or before this one.
    pub fn cut_point(&mut self, path: Path, ts_ms: u32) -> bool {
        let prev = self.prev_audio_ms[path as usize].replace(ts_ms);
        self.keyframes_ms.iter().any(|&k| {
            at_or_after(ts_ms, k)
                && match prev {
                    Some(p) => !at_or_after(p, k),
                    None => ts_ms.wrapping_sub(k) <= FIRST_FRAME_WINDOW_MS,
                }
        })
    }
}

impl crate::Remuxer {
    /// Audio-only: a video tag is not written, but the reference track's keyframes are noted.
    pub(crate) fn follow_keyframe(&mut self, tag: &crate::FlvTag) {
        let Some(reference) = self.cfg.video_track else {
            return;
        };
        let Ok(parsed) = flv_tag::parse(flv_tag::Media::Video, &tag.payload) else {
            return;
        };
        if let Some(v) = parsed.track(reference) {
            if v.is_keyframe && v.packet == flv_tag::PacketKind::CodedFrames {
                self.follow.keyframe(tag.timestamp_ms);
            }
        }
    }

    /// Whether an audio frame at `ts_ms` may start a segment (always, unless it follows video).
    pub(crate) fn audio_cut_point(&mut self, path: Path, ts_ms: u32) -> bool {
        if self.cfg.media != crate::MediaSelection::AudioOnly || self.cfg.video_track.is_none() {
            return true;
        }
        self.follow.cut_point(path, ts_ms)
    }
}

/// The remuxer settings actually used: an audio-only rendition following a video track cuts
/// with a target [`FOLLOW_SLACK_MS`] shorter (the follower keeps the real one).
pub(crate) fn effective(config: &crate::RemuxConfig) -> (crate::RemuxConfig, KeyframeFollower) {
    let mut c = config.clone();
    let follower = KeyframeFollower {
        target_ms: config.target_duration_ms,
        ..KeyframeFollower::default()
    };
    if c.media == crate::MediaSelection::AudioOnly && c.video_track.is_some() {
        c.target_duration_ms = c.target_duration_ms.saturating_sub(FOLLOW_SLACK_MS).max(1);
    }
    (c, follower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_audio_frame_at_or_after_each_keyframe() {
        let mut f = KeyframeFollower {
            target_ms: 2000,
            ..KeyframeFollower::default()
        };
        f.keyframe(0);
        f.keyframe(1000); // not a cut: 1 s after the last one
                          // 0 is a cut point (keyframe at 0, within the first-frame window).
        assert!(f.cut_point(Path::Ts, 0));
        assert!(!f.cut_point(Path::Ts, 21));
        assert!(!f.cut_point(Path::Ts, 1005));
        f.keyframe(2000);
        assert!(!f.cut_point(Path::Ts, 1984));
        assert!(f.cut_point(Path::Ts, 2005));
        assert!(!f.cut_point(Path::Ts, 2026));
        // The other path keeps its own history.
        assert!(f.cut_point(Path::Cmaf, 2005));
        // A first frame long after the last keyframe waits for the next one.
        let mut g = KeyframeFollower::default();
        g.keyframe(0);
        assert!(!g.cut_point(Path::Ts, 700));
        // Wrapping timestamps.
        let mut w = KeyframeFollower::default();
        w.keyframe(u32::MAX - 5);
        assert!(w.cut_point(Path::Ts, 10));
    }

    fn run(cfg: crate::RemuxConfig) -> Vec<crate::Segment> {
        crate::tests::segments_of(cfg, crate::tests::Gen::default())
    }

    /// The renditions of a multitrack publish with an audio group: video-only segments carry
    /// no audio; audio-only segments carry no video and segment N starts within one AAC frame
    /// (1024 samples at 44.1 kHz = 2090 ticks) of video segment N, in both containers.
    #[test]
    fn video_only_and_audio_only_renditions_cut_together() {
        use crate::{Container, MediaSelection, RemuxConfig};
        let video = run(RemuxConfig {
            media: MediaSelection::VideoOnly,
            ..RemuxConfig::default()
        });
        let audio = run(RemuxConfig {
            media: MediaSelection::AudioOnly,
            video_track: Some(0),
            ..RemuxConfig::default()
        });
        for c in [Container::Ts, Container::Cmaf] {
            let v: Vec<_> = video.iter().filter(|s| s.container == c).collect();
            let a: Vec<_> = audio.iter().filter(|s| s.container == c).collect();
            assert!(v.len() >= 4, "{c:?}");
            assert!(v
                .iter()
                .all(|s| s.codec.audio.is_none() && s.codec.video.is_some()));
            assert!(a
                .iter()
                .all(|s| s.codec.video.is_none() && s.codec.audio.is_some()));
            assert!(a.iter().all(|s| s.keyframe_range.is_none()));
            assert!(!v[0].codec.codecs.contains("mp4a"), "{}", v[0].codec.codecs);
            assert_eq!(a[0].codec.codecs, "mp4a.40.2");
            // The last segment of each ends where its own media ends; compare the others.
            let n = v.len().min(a.len()) - 1;
            assert!(n >= 3);
            for (x, y) in v.iter().zip(&a).take(n) {
                assert_eq!(x.sequence, y.sequence);
                let diff = y.first_dts_90k as i64 - x.first_dts_90k as i64;
                assert!(
                    (0..=2090).contains(&diff),
                    "{c:?} segment {}: video {} audio {}",
                    x.sequence,
                    x.first_dts_90k,
                    y.first_dts_90k
                );
            }
        }
        // Without a video track to follow, an audio-only remuxer cuts on its own.
        let alone = run(RemuxConfig {
            media: MediaSelection::AudioOnly,
            ..RemuxConfig::default()
        });
        assert!(
            alone
                .iter()
                .filter(|s| s.container == Container::Ts)
                .count()
                >= 4
        );
    }
}
