//! I-frame playlists (RFC 8216bis §4.4.3.6 `EXT-X-I-FRAMES-ONLY`, §4.4.4.2 `EXT-X-BYTERANGE`,
//! §4.4.4.5 `EXT-X-MAP`, §4.4.6.3 `EXT-X-I-FRAME-STREAM-INF`): one entry per listed segment, the
//! byte range of the segment's first keyframe inside the segment's own URI, so a player can
//! scrub (thumbnails, fast forward) without a second copy of the media.
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:4                      TS (byte ranges need 4); CMAF: 6, as its media playlist
//! #EXT-X-TARGETDURATION:2               the media playlist's
//! #EXT-X-MEDIA-SEQUENCE:17              the media playlist's: entry N is segment N
//! #EXT-X-DISCONTINUITY-SEQUENCE:1
//! #EXT-X-I-FRAMES-ONLY
//! [#EXT-X-DISCONTINUITY]
//! [#EXT-X-MAP:URI="init-3.mp4"]         CMAF
//! #EXTINF:2.000,                        the segment's duration: this I-frame shows until the next
//! #EXT-X-BYTERANGE:15604@0              TS: PAT+PMT+keyframe; CMAF: its first moof+mdat
//! seg-17.ts
//! [#EXT-X-GAP]                          a segment that does not start with a keyframe (forced
//! #EXTINF:2.000,                        cut): listed as a gap so the numbers stay the media
//! seg-18.ts                             playlist's (§4.4.4.7)
//! [#EXT-X-ENDLIST]
//! ```
//!
//! Served as `iframes.m3u8` (the primary container's, like `index.m3u8`) and
//! `cmaf-iframes.m3u8` (CMAF), with the cache headers of the media playlist. The edge never
//! parses media: the producer says where each keyframe is ([`crate::NewSegment::keyframe`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::media::{bitrate_bps, Container};
use crate::playlist::{format_extinf, init_uri, segment_uri, SegmentMeta};

/// A byte range of a segment (`EXT-X-BYTERANGE:<len>@<offset>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

/// File name of the I-frame playlist of `container` (`None`: the primary container's).
pub fn iframe_playlist_name(container: Option<Container>) -> &'static str {
    match container {
        Some(Container::Cmaf) => "cmaf-iframes.m3u8",
        _ => "iframes.m3u8",
    }
}

/// Bits per second of one I-frame entry: its bytes over the time it is shown (§4.4.6.3:
/// `BANDWIDTH` is the peak of these).
pub(crate) fn entry_bps(seg: &SegmentMeta) -> u64 {
    seg.keyframe
        .map_or(0, |k| bitrate_bps(k.len, seg.duration_90k))
}

/// The I-frame playlist text; `None` when no listed segment has a keyframe range (audio-only,
/// or a producer that does not report them).
pub(crate) fn render(
    container: Container,
    target_duration_s: u32,
    discontinuity_sequence: u64,
    segments: &[&SegmentMeta],
    ended: bool,
) -> Option<String> {
    let first = segments.first()?;
    segments.iter().find(|s| s.keyframe.is_some())?;
    let version = match container {
        Container::Ts => 4,
        Container::Cmaf => 6,
    };
    let mut s = String::with_capacity(160 + segments.len() * 64);
    let _ = write!(
        s,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target_duration_s}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n\
         #EXT-X-I-FRAMES-ONLY\n",
        first.media_sequence
    );
    let mut map = None;
    for seg in segments {
        if seg.discontinuity {
            s.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(n) = seg.init.filter(|n| map != Some(*n)) {
            map = Some(n);
            let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", init_uri(n));
        }
        let _ = writeln!(s, "#EXTINF:{},", format_extinf(seg.duration_90k));
        match seg.keyframe {
            Some(k) => {
                let _ = writeln!(s, "#EXT-X-BYTERANGE:{}@{}", k.len, k.offset);
            }
            None => s.push_str("#EXT-X-GAP\n"),
        }
        s.push_str(&segment_uri(container, seg.media_sequence));
        s.push('\n');
    }
    if ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    Some(s)
}

/// The video entries of an RFC 6381 `CODECS` list (an I-frame stream has no audio).
pub(crate) fn video_codecs(codecs: &str) -> String {
    const AUDIO: [&str; 6] = ["mp4a", "opus", "ac-3", "ec-3", "flac", "fLaC"];
    codecs
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !AUDIO.iter().any(|a| c.starts_with(a)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u64, keyframe: Option<(u64, u64)>, init: Option<u64>) -> SegmentMeta {
        SegmentMeta {
            media_sequence: n,
            duration_90k: 180_000,
            discontinuity: n == 12,
            independent: keyframe.is_some(),
            program_date_time_unix_ms: 0,
            len_bytes: 500_000,
            init,
            parts: Vec::new(),
            keyframe: keyframe.map(|(offset, len)| ByteRange { offset, len }),
        }
    }

    /// Golden text. Why it is right: version 4 is the lowest with `EXT-X-BYTERANGE` and
    /// `EXT-X-I-FRAMES-ONLY` (RFC 8216bis §8); EXTINF is the segment's duration, i.e. until the
    /// next I-frame entry (§4.4.3.6); the media sequence is the media playlist's so entry N is
    /// segment N; the forced-cut segment 12 has no opening keyframe and is a gap (§4.4.4.7), its
    /// discontinuity kept so the discontinuity sequence stays the media playlist's.
    #[test]
    fn ts_golden() {
        let segs = [
            seg(10, Some((0, 15_604)), None),
            seg(11, Some((0, 20_116)), None),
            seg(12, None, None),
        ];
        let refs: Vec<&SegmentMeta> = segs.iter().collect();
        let text = render(Container::Ts, 2, 3, &refs, true).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-I-FRAMES-ONLY\n\
             #EXTINF:2.000,\n#EXT-X-BYTERANGE:15604@0\nseg-10.ts\n\
             #EXTINF:2.000,\n#EXT-X-BYTERANGE:20116@0\nseg-11.ts\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n#EXT-X-GAP\nseg-12.ts\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(entry_bps(&segs[0]), 15_604 * 8 / 2);
    }

    /// CMAF: `EXT-X-MAP` before the first entry and wherever the init changes (§4.4.4.5), the
    /// range skips the 20-byte `styp`.
    #[test]
    fn cmaf_golden() {
        let segs = [
            seg(4, Some((20, 9_000)), Some(1)),
            seg(5, Some((20, 9_100)), Some(1)),
            seg(6, Some((20, 8_000)), Some(2)),
        ];
        let refs: Vec<&SegmentMeta> = segs.iter().collect();
        let text = render(Container::Cmaf, 2, 0, &refs, false).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-I-FRAMES-ONLY\n\
             #EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\n#EXT-X-BYTERANGE:9000@20\nseg-4.m4s\n\
             #EXTINF:2.000,\n#EXT-X-BYTERANGE:9100@20\nseg-5.m4s\n\
             #EXT-X-MAP:URI=\"init-2.mp4\"\n#EXTINF:2.000,\n#EXT-X-BYTERANGE:8000@20\nseg-6.m4s\n"
        );
    }

    #[test]
    fn nothing_without_keyframes() {
        let segs = [seg(1, None, None)];
        let refs: Vec<&SegmentMeta> = segs.iter().collect();
        assert_eq!(render(Container::Ts, 2, 0, &refs, false), None);
        assert_eq!(render(Container::Ts, 2, 0, &[], false), None);
    }

    #[test]
    fn video_codecs_drop_audio() {
        assert_eq!(video_codecs("avc1.64001f,mp4a.40.2"), "avc1.64001f");
        assert_eq!(video_codecs("hvc1.1.6.L93.B0, opus"), "hvc1.1.6.L93.B0");
        assert_eq!(video_codecs("av01.0.08M.08,opus"), "av01.0.08M.08");
        assert_eq!(video_codecs("mp4a.40.2"), "");
    }
}
