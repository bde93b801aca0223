//! Media playlist rendering (RFC 8216bis draft-pantos-hls-rfc8216bis §4.4.3, §4.4.4, §6.2.1), for
//! both containers, with the Low-Latency HLS tags for CMAF (§4.4.3.7 `EXT-X-PART-INF`, §4.4.3.8
//! `EXT-X-SERVER-CONTROL`, §4.4.4.9 `EXT-X-PART`, §4.4.5.1 `EXT-X-SKIP`, §4.4.5.2
//! `EXT-X-PRELOAD-HINT`, §4.4.5.4 `EXT-X-RENDITION-REPORT`).
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
//!
//! Low-Latency (CMAF, once the producer pushes parts one by one):
//! ```text
//! #EXT-X-VERSION:9                      delta updates (EXT-X-SKIP) need 9 (§8); full answers too
//! #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.999
//! #EXT-X-PART-INF:PART-TARGET=0.333     both pinned for the playlist's life
//! ... [#EXT-X-SKIP:SKIPPED-SEGMENTS=4]  delta update: older segments left out
//! #EXT-X-PROGRAM-DATE-TIME:...          segment tags come before its first EXT-X-PART
//! #EXT-X-PART:DURATION=0.333,URI="part-20.0.m4s",INDEPENDENT=YES
//! #EXTINF:2.000,                        (segments within 3 target durations of the end)
//! seg-20.m4s
//! #EXT-X-PART:DURATION=0.333,URI="part-21.0.m4s",INDEPENDENT=YES   the open segment
//! #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-21.1.m4s"                never with ENDLIST
//! [#EXT-X-RENDITION-REPORT:URI="../b/cmaf.m3u8",LAST-MSN=21,LAST-PART=0]
//! ```

use std::fmt::Write as _;
use std::io::Write as _;

use bytes::Bytes;

use crate::body::PartMeta;
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
    /// Parts pushed one by one (LL-HLS `EXT-X-PART`); empty when the segment came whole.
    pub parts: Vec<PartMeta>,
    /// Its first keyframe, for the I-frame playlist ([`crate::iframes`]).
    pub keyframe: Option<crate::iframes::ByteRange>,
}

/// Another rendition of the same group, as `EXT-X-RENDITION-REPORT` lists it (RFC 8216bis
/// §4.4.5.4). A group of one (today) has none; the multivariant side passes its siblings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RenditionReport {
    /// The sibling's media playlist URI, relative to this playlist (e.g. `../cam_720p/cmaf.m3u8`).
    pub uri: String,
    /// Media sequence number of its last segment or (open) part.
    pub last_msn: u64,
    /// Index of its last part of `last_msn`, if it lists parts.
    pub last_part: Option<u32>,
}

/// The Low-Latency additions to a CMAF playlist.
pub(crate) struct LlView<'a> {
    pub part_target_ms: u32,
    /// The segment being written: its tags and parts are listed, its URI line is not.
    pub open: Option<&'a SegmentMeta>,
    /// `(media sequence, part index)` of the next part (`EXT-X-PRELOAD-HINT`).
    pub hint: Option<(u64, u32)>,
    /// Segments left out at the front (delta update, `EXT-X-SKIP`); `segments` starts after them.
    pub skipped_segments: usize,
    pub reports: &'a [RenditionReport],
}

/// `PART-HOLD-BACK`: three part targets (RFC 8216bis §4.4.3.8: at least 2, SHOULD be 3).
pub(crate) fn part_hold_back_ms(part_target_ms: u32) -> u64 {
    3 * u64::from(part_target_ms)
}

/// `CAN-SKIP-UNTIL`: six target durations, the minimum RFC 8216bis §4.4.3.8 allows.
pub(crate) fn can_skip_until_ms(target_duration_s: u32) -> u64 {
    6_000 * u64::from(target_duration_s)
}

/// Part URI, relative to the playlist: `part-{media sequence}.{index}.m4s`.
pub(crate) fn part_uri(media_sequence: u64, index: u32) -> String {
    format!("part-{media_sequence}.{index}.m4s")
}

/// Milliseconds as decimal seconds with exactly 3 decimals.
pub(crate) fn format_ms(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Everything a render needs; borrowed from the stream state.
pub(crate) struct PlaylistView<'a> {
    pub container: Container,
    pub target_duration_s: u32,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<&'a SegmentMeta>,
    pub ended: bool,
    /// Low-Latency HLS (CMAF with parts pushed one by one).
    pub ll: Option<LlView<'a>>,
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
    let mut s = String::with_capacity(256 + view.segments.len() * 96);
    let version = match (view.container, &view.ll) {
        (_, Some(_)) => 9,
        (Container::Ts, None) => 3,
        (Container::Cmaf, None) => 6,
    };
    let _ = write!(s, "#EXTM3U\n#EXT-X-VERSION:{version}\n");
    let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", view.target_duration_s);
    if let Some(ll) = &view.ll {
        let _ = writeln!(
            s,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={}",
            format_ms(can_skip_until_ms(view.target_duration_s)),
            format_ms(part_hold_back_ms(ll.part_target_ms))
        );
        let _ = writeln!(
            s,
            "#EXT-X-PART-INF:PART-TARGET={}",
            format_ms(u64::from(ll.part_target_ms))
        );
    }
    let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", view.media_sequence);
    let _ = writeln!(
        s,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        view.discontinuity_sequence
    );
    let open = view.ll.as_ref().and_then(|ll| ll.open);
    if !view.segments.is_empty()
        && view
            .segments
            .iter()
            .chain(open.iter())
            .all(|x| x.independent)
    {
        s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    if let Some(ll) = view.ll.as_ref().filter(|ll| ll.skipped_segments > 0) {
        let _ = writeln!(s, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", ll.skipped_segments);
    }
    // Parts are listed for the segments that end within 3 target durations of the end
    // (RFC 8216bis §4.4.4.9 asks at least that).
    let parts_from = view.ll.as_ref().map(|_| {
        let horizon_90k = 3 * 90_000 * u64::from(view.target_duration_s);
        let mut after_90k: u64 = open.map_or(0, |o| o.parts.iter().map(|p| p.duration_90k).sum());
        let mut first = view.segments.len();
        for (i, seg) in view.segments.iter().enumerate().rev() {
            if after_90k >= horizon_90k {
                break;
            }
            first = i;
            after_90k += seg.duration_90k;
        }
        first
    });
    let mut map = None;
    for (i, seg) in view.segments.iter().enumerate() {
        write_segment_tags(&mut s, seg, &mut map);
        if parts_from.is_some_and(|f| i >= f) {
            write_parts(&mut s, seg);
        }
        let _ = writeln!(s, "#EXTINF:{},", format_extinf(seg.duration_90k));
        s.push_str(&segment_uri(view.container, seg.media_sequence));
        s.push('\n');
    }
    if let Some(ll) = &view.ll {
        if let Some(o) = open.filter(|o| !o.parts.is_empty()) {
            write_segment_tags(&mut s, o, &mut map);
            write_parts(&mut s, o);
        }
        if let Some((msn, part)) = ll.hint.filter(|_| !view.ended) {
            let _ = writeln!(
                s,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                part_uri(msn, part)
            );
        }
        for r in ll.reports {
            let _ = write!(
                s,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                r.uri, r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(s, ",LAST-PART={p}");
            }
            s.push('\n');
        }
    }
    if view.ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

/// The tags that go before a segment's first part or its URI line.
fn write_segment_tags(s: &mut String, seg: &SegmentMeta, map: &mut Option<u64>) {
    if seg.discontinuity {
        s.push_str("#EXT-X-DISCONTINUITY\n");
    }
    // EXT-X-MAP applies until the next one (§4.4.4.5): repeat it only where it changes.
    if let Some(n) = seg.init.filter(|n| *map != Some(*n)) {
        *map = Some(n);
        let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", init_uri(n));
    }
    let _ = writeln!(
        s,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        format_program_date_time(seg.program_date_time_unix_ms)
    );
}

fn write_parts(s: &mut String, seg: &SegmentMeta) {
    for (i, p) in seg.parts.iter().enumerate() {
        let _ = write!(
            s,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            format_extinf(p.duration_90k),
            part_uri(seg.media_sequence, i as u32)
        );
        s.push_str(if p.independent {
            ",INDEPENDENT=YES\n"
        } else {
            "\n"
        });
    }
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
            parts: Vec::new(),
            keyframe: None,
        };
        let segs = [seg(0, true), seg(1, false)];
        let v = PlaylistView {
            container: Container::Ts,
            target_duration_s: 2,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: segs.iter().collect(),
            ended: false,
            ll: None,
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
