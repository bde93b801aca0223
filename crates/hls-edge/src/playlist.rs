//! Media playlist rendering (RFC 8216bis draft-pantos-hls-rfc8216bis §4.4.3, §4.4.4, §6.2.1), for
//! both containers.
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:3                      TS: decimal EXTINF needs 3; CMAF: EXT-X-MAP needs 6 (§8)
//! #EXT-X-TARGETDURATION:2               pinned for the playlist's life
//! #EXT-X-MEDIA-SEQUENCE:17              +1 per segment removed from the front
//! #EXT-X-DISCONTINUITY-SEQUENCE:1       +1 per DISCONTINUITY removed from the front
//! #EXT-X-INDEPENDENT-SEGMENTS           only while every listed segment is independent
//! [#EXT-X-DISCONTINUITY]
//! [#EXT-X-MAP:URI="init-3.mp4"]         CMAF: first segment, and wherever the init changes
//! #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:00.000Z
//! #EXTINF:2.000,
//! seg-17.ts                             (seg-17.m4s for CMAF)
//! ...
//! [#EXT-X-ENDLIST]
//! ```

use std::fmt::Write as _;
use std::io::Write as _;

use bytes::Bytes;

use crate::media::Container;

/// One segment as the playlist lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub media_sequence: u64,
    pub duration_90k: u64,
    /// `#EXT-X-DISCONTINUITY` goes before this segment.
    pub discontinuity: bool,
    pub independent: bool,
    /// `#EXT-X-PROGRAM-DATE-TIME` of this segment, unix milliseconds.
    pub program_date_time_unix_ms: u64,
    pub len_bytes: u64,
    /// CMAF: the number of the init segment (`init-N.mp4`) this segment needs.
    pub init: Option<u64>,
}

/// Everything a render needs; borrowed from the stream state.
pub(crate) struct PlaylistView<'a> {
    pub container: Container,
    pub target_duration_s: u32,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<&'a SegmentMeta>,
    pub ended: bool,
}

/// The segment URI, relative to the playlist. Stable and free of session parameters.
pub(crate) fn segment_uri(container: Container, media_sequence: u64) -> String {
    format!("seg-{media_sequence}.{}", container.segment_extension())
}

/// The init segment URI (CMAF), relative to the playlist.
pub(crate) fn init_uri(number: u64) -> String {
    format!("init-{number}.mp4")
}

/// `#EXTINF` value: seconds with exactly 3 decimals, rounded to the nearest millisecond.
pub(crate) fn format_extinf(duration_90k: u64) -> String {
    let ms = duration_90k.saturating_add(45) / 90;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A duration rounded to the nearest integer second, as compared with `#EXT-X-TARGETDURATION`.
pub(crate) fn rounded_seconds(duration_90k: u64) -> u64 {
    duration_90k.saturating_add(45_000) / 90_000
}

/// RFC 3339 date-time with milliseconds in UTC, e.g. `2026-05-01T12:00:00.000Z` (RFC 8216bis
/// §4.4.4.6 `EXT-X-PROGRAM-DATE-TIME`).
pub(crate) fn format_program_date_time(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Renders the media playlist text.
pub(crate) fn render(view: &PlaylistView<'_>) -> String {
    let mut s = String::with_capacity(160 + view.segments.len() * 96);
    let version = match view.container {
        Container::Ts => 3,
        Container::Cmaf => 6,
    };
    let _ = write!(s, "#EXTM3U\n#EXT-X-VERSION:{version}\n");
    let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", view.target_duration_s);
    let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", view.media_sequence);
    let _ = writeln!(
        s,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        view.discontinuity_sequence
    );
    if !view.segments.is_empty() && view.segments.iter().all(|x| x.independent) {
        s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let mut map = None;
    for seg in &view.segments {
        if seg.discontinuity {
            s.push_str("#EXT-X-DISCONTINUITY\n");
        }
        // EXT-X-MAP applies until the next one (§4.4.4.5): repeat it only where it changes.
        if let Some(n) = seg.init.filter(|n| map != Some(*n)) {
            map = Some(n);
            let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", init_uri(n));
        }
        let _ = writeln!(
            s,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            format_program_date_time(seg.program_date_time_unix_ms)
        );
        let _ = writeln!(s, "#EXTINF:{},", format_extinf(seg.duration_90k));
        s.push_str(&segment_uri(view.container, seg.media_sequence));
        s.push('\n');
    }
    if view.ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

/// gzip of a rendered playlist, made once per change.
pub(crate) fn gzip(text: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 2 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(text);
    Bytes::from(enc.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extinf_has_three_decimals() {
        for (d90k, want) in [
            (180_000, "2.000"),
            (0, "0.000"),
            (90, "0.001"),
            (134, "0.001"),
            (135, "0.002"),
            (3_003 * 60, "2.002"),
            (400_000, "4.444"),
            (90_000 * 3600, "3600.000"),
        ] {
            assert_eq!(format_extinf(d90k), want, "{d90k}");
        }
    }

    #[test]
    fn rounding_to_nearest_second() {
        for (d90k, want) in [
            (0, 0),
            (134_999, 1),
            (135_000, 2),
            (180_000, 2),
            (224_999, 2),
            (225_000, 3),
        ] {
            assert_eq!(rounded_seconds(d90k), want, "{d90k}");
        }
    }

    #[test]
    fn program_date_time_is_iso8601_utc_with_ms() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_777_636_800_123, "2026-05-01T12:00:00.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(format_program_date_time(ms), want, "{ms}");
        }
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let text = b"#EXTM3U\n#EXT-X-VERSION:3\n";
        let gz = gzip(text);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn independent_only_when_all_are() {
        let seg = |n: u64, independent| SegmentMeta {
            media_sequence: n,
            duration_90k: 180_000,
            discontinuity: false,
            independent,
            program_date_time_unix_ms: 0,
            len_bytes: 1,
            init: None,
        };
        let segs = [seg(0, true), seg(1, false)];
        let v = PlaylistView {
            container: Container::Ts,
            target_duration_s: 2,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: segs.iter().collect(),
            ended: false,
        };
        assert!(!render(&v).contains("INDEPENDENT"));
        let segs = [seg(0, true), seg(1, true)];
        let v = PlaylistView {
            segments: segs.iter().collect(),
            ..v
        };
        assert!(render(&v).contains("#EXT-X-INDEPENDENT-SEGMENTS\n"));
    }
}
