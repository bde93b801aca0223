//! Media playlists of a log (draft-pantos-hls-rfc8216bis): VOD (§4.4.3.5 PLAYLIST-TYPE VOD plus
//! §4.4.3.4 ENDLIST), EVENT while a DVR window still holds everything, a sliding window after
//! (no PLAYLIST-TYPE), `#EXT-X-PROGRAM-DATE-TIME` (§4.4.4.6) on every segment, `#EXT-X-MAP`
//! (§4.4.4.5) for CMAF, and `#EXT-X-START` (§4.4.2.2) for start-over.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use crate::log::{init_file, segment_file, Index};
use crate::Container;

/// How to render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// A recording: `#EXT-X-PLAYLIST-TYPE:VOD` once closed. Otherwise a DVR window: EVENT while
    /// nothing has left it, none after.
    pub vod: bool,
    /// Prefix of segment URIs (e.g. `dvr/`), relative to the playlist.
    pub uri_prefix: String,
    /// `#EXT-X-START:TIME-OFFSET=<s>,PRECISE=YES`.
    pub start_offset_s: Option<f64>,
    /// The declared target duration; the longest segment (rounded) if larger.
    pub target_duration_s: u32,
}

/// The offset (seconds from the first listed segment) of the segment that was being received
/// at wall-clock `unix_ms` (the first one if earlier, the last one if later).
pub fn offset_at(index: &Index, container: Container, unix_ms: u64) -> f64 {
    let mut offset_90k = 0u64;
    let mut found = 0u64;
    for e in index.segments(container) {
        if e.wall_unix_ms > unix_ms {
            break;
        }
        found = offset_90k;
        offset_90k += e.duration_90k;
    }
    found as f64 / 90_000.0
}

/// Renders `container`'s playlist; `None` when it has no segment.
pub fn render(index: &Index, container: Container, opts: &RenderOptions) -> Option<String> {
    let segs = index.segments(container);
    let first = segs.front()?;
    let longest = segs
        .iter()
        .map(|e| e.duration_90k.div_ceil(90_000))
        .max()
        .unwrap_or(1);
    // EXTINF rounded to the nearest integer must not exceed TARGETDURATION (§4.4.3.1).
    let longest_rounded = segs
        .iter()
        .map(|e| (e.duration_90k + 45_000) / 90_000)
        .max()
        .unwrap_or(1)
        .min(longest);
    let target = u64::from(opts.target_duration_s)
        .max(longest_rounded)
        .max(1);
    let mut out = String::with_capacity(128 + segs.len() * 96);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if opts.vod {
        if index.closed_unix_ms.is_some() {
            out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        } else {
            out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
    } else if !index.evicted_any() {
        out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.seq);
    let disc = index.evicted_discontinuities(container);
    if disc > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{disc}");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(t) = opts.start_offset_s {
        let _ = writeln!(out, "#EXT-X-START:TIME-OFFSET={t:.3},PRECISE=YES");
    }
    let mut map: Option<u64> = None;
    for (i, e) in segs.iter().enumerate() {
        if e.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if container == Container::Cmaf && e.init.is_some() && e.init != map {
            map = e.init;
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{}{}\"",
                opts.uri_prefix,
                init_file(e.init.unwrap_or_default())
            );
        }
        let pdt = UNIX_EPOCH + Duration::from_millis(e.wall_unix_ms);
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            humantime::format_rfc3339_millis(pdt)
        );
        let _ = writeln!(
            out,
            "#EXTINF:{:.5},\n{}{}",
            e.duration_90k as f64 / 90_000.0,
            opts.uri_prefix,
            segment_file(container, e.seq)
        );
    }
    if index.closed_unix_ms.is_some() {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}
