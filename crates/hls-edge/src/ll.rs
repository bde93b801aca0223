//! Low-Latency HLS delivery directives (RFC 8216bis §6.2.5): parsing `_HLS_msn`, `_HLS_part`
//! and `_HLS_skip`, deciding whether a blocking playlist reload (§6.2.5.2) or a preload-hint
//! part request (§6.2.6) can be answered, and the per-rendition signal that wakes them.
//!
//! ```text
//!  push_part / push_segment / end ──render──► LlSignal (tokio watch: one value, many waiters)
//!                                               │ changed()
//!  GET cmaf.m3u8?_HLS_msn=M&_HLS_part=P ──wait_for(ready)──► the playlist rendered with it
//! ```
//! A waiting request is a future parked on the watch: no thread, no polling, woken by one
//! notification whichever runtime (HTTP worker) it runs on. Requests waiting per stream are
//! counted and bounded (`EdgeConfig::max_waiting_requests_per_stream`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::body::RenderedPlaylist;

/// What a rendition holds, as blocked requests need it (published at every render).
#[derive(Clone, Debug, Default)]
pub(crate) struct LlProgress {
    /// First media sequence number that is not complete (the open segment's, if any).
    pub next_msn: u64,
    /// Parts listed of segment `next_msn - 1` (0 if it came whole).
    pub last_parts: u32,
    /// Parts listed of segment `next_msn` (the open one).
    pub open_parts: u32,
    /// The part the playlist hints (`EXT-X-PRELOAD-HINT`), `None` once ended.
    pub hint: Option<(u64, u32)>,
    /// The part being written chunk by chunk, once its first chunk is in.
    pub growing: Option<(u64, u32)>,
    /// The playlist carries `#EXT-X-ENDLIST`.
    pub ended: bool,
    /// The playlist was removed (404).
    pub gone: bool,
    /// The playlist is Low-Latency (parts listed, `CAN-BLOCK-RELOAD=YES`).
    pub ll: bool,
    pub target_duration_s: u32,
    pub part_target_ms: u32,
    pub playlist: Option<Arc<RenderedPlaylist>>,
    pub delta: Option<Arc<RenderedPlaylist>>,
}

impl LlProgress {
    /// Whether part `index` of segment `msn` exists (RFC 8216bis §6.2.5.2: or anything later,
    /// an index past a complete segment's last part meaning part 0 of the next one).
    pub fn has_part(&self, msn: u64, index: u32) -> bool {
        if msn + 1 < self.next_msn {
            return true;
        }
        if msn + 1 == self.next_msn {
            return index < self.last_parts || self.open_parts > 0;
        }
        msn == self.next_msn && index < self.open_parts
    }

    /// Whether segment `msn` is complete (listed with its URI).
    pub fn has_segment(&self, msn: u64) -> bool {
        msn < self.next_msn
    }

    /// RFC 8216bis §6.2.5.2: more than two segments ahead of the last one, or a part further
    /// ahead than the Advance Part Limit, is a 400.
    pub fn too_far_ahead(&self, msn: u64, part: Option<u32>) -> bool {
        // `next_msn - 1` is the last complete segment.
        if msn > self.next_msn.saturating_add(1) {
            return true;
        }
        let Some(p) = part else { return false };
        let limit = advance_part_limit(self.part_target_ms);
        if msn == self.next_msn {
            return p > (self.open_parts + limit).saturating_sub(1);
        }
        msn > self.next_msn && p >= limit
    }
}

/// RFC 8216bis §6.2.5.2 Advance Part Limit: 3 parts, or 3 seconds of parts below 1 s.
fn advance_part_limit(part_target_ms: u32) -> u32 {
    if part_target_ms > 0 && part_target_ms < 1000 {
        3000_u32.div_ceil(part_target_ms)
    } else {
        3
    }
}

/// One rendition's wake-up signal and its count of waiting requests.
#[derive(Debug)]
pub(crate) struct LlSignal {
    tx: watch::Sender<LlProgress>,
    waiting: AtomicUsize,
}

impl LlSignal {
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(LlProgress::default()),
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn publish(&self, p: LlProgress) {
        self.tx.send_replace(p);
    }

    /// The last part listed, as `(media sequence, part index)` (`None` for the index when the
    /// last segment came whole), or `None` before the first segment (RFC 8216bis §4.4.5.4
    /// `LAST-MSN`, `LAST-PART`).
    pub fn last_part(&self) -> Option<(u64, Option<u32>)> {
        let p = self.tx.borrow();
        if p.gone || p.playlist.is_none() {
            return None;
        }
        if p.open_parts > 0 {
            return Some((p.next_msn, Some(p.open_parts - 1)));
        }
        let msn = p.next_msn.checked_sub(1)?;
        Some((msn, p.last_parts.checked_sub(1)))
    }

    /// A part started growing (or stopped): wakes requests waiting for the hinted part.
    pub fn set_growing(&self, growing: Option<(u64, u32)>) {
        self.tx.send_if_modified(|p| {
            let changed = p.growing != growing;
            p.growing = growing;
            changed
        });
    }

    /// Requests waiting on this rendition now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> watch::Receiver<LlProgress> {
        self.tx.subscribe()
    }

    /// Counts a waiting request, or `None` over `max`.
    pub fn enter(self: &Arc<Self>, max: usize) -> Option<WaitGuard> {
        let n = self.waiting.fetch_add(1, Ordering::AcqRel);
        if n >= max {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        waiting_gauge().increment(1.0);
        Some(WaitGuard(self.clone()))
    }
}

/// A request counted as waiting; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct WaitGuard(Arc<LlSignal>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        waiting_gauge().decrement(1.0);
    }
}

fn waiting_gauge() -> &'static metrics::Gauge {
    static HANDLE: std::sync::OnceLock<metrics::Gauge> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| metrics::gauge!("sluice_hls_waiting_requests"))
}

/// `_HLS_skip` values (RFC 8216bis §6.2.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: also skip old `EXT-X-DATERANGE` tags (Sluice writes none, so the same answer).
    V2,
}

/// The delivery directives of a playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: Option<Skip>,
}

/// A malformed directive (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadDirective;

/// Parses the `_HLS_*` parameters of a query; other parameters are ignored. Numbers are decimal
/// integers; `_HLS_part` needs `_HLS_msn` (§6.2.5.2); a repeated directive is a 400.
pub(crate) fn parse_directives(query: Option<&str>) -> Result<Directives, BadDirective> {
    let mut d = Directives::default();
    let Some(q) = query else { return Ok(d) };
    let num = |v: &str| -> Result<u64, BadDirective> {
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadDirective);
        }
        v.parse().map_err(|_| BadDirective)
    };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" if d.msn.is_none() => d.msn = Some(num(v)?),
            "_HLS_part" if d.part.is_none() => {
                d.part = Some(u32::try_from(num(v)?).map_err(|_| BadDirective)?)
            }
            "_HLS_skip" if d.skip.is_none() => {
                d.skip = Some(match v {
                    "YES" => Skip::Yes,
                    "v2" => Skip::V2,
                    _ => return Err(BadDirective),
                })
            }
            "_HLS_msn" | "_HLS_part" | "_HLS_skip" => return Err(BadDirective),
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(BadDirective);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        let ok = |q: &str| parse_directives(Some(q)).unwrap();
        assert_eq!(ok(""), Directives::default());
        assert_eq!(
            ok("_HLS_msn=5&_HLS_part=2"),
            Directives {
                msn: Some(5),
                part: Some(2),
                skip: None
            }
        );
        assert_eq!(ok("_HLS_msn=5&_HLS_skip=v2").skip, Some(Skip::V2));
        assert_eq!(ok("_HLS_skip=YES").skip, Some(Skip::Yes));
        assert_eq!(ok("token=x&_HLS_msn=0").msn, Some(0));
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=",
            "_HLS_msn=-1",
            "_HLS_msn=1x",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=99999999999",
            "_HLS_skip=yes",
            "_HLS_msn=99999999999999999999",
        ] {
            assert_eq!(parse_directives(Some(bad)), Err(BadDirective), "{bad}");
        }
    }

    #[test]
    fn readiness() {
        // Segments 0..=4 complete (4 with 6 parts), segment 5 open with 2 parts.
        let p = LlProgress {
            next_msn: 5,
            last_parts: 6,
            open_parts: 2,
            part_target_ms: 333,
            ..LlProgress::default()
        };
        assert!(p.has_segment(4) && !p.has_segment(5));
        assert!(p.has_part(3, 99) && p.has_part(4, 5) && p.has_part(4, 6));
        assert!(p.has_part(5, 1) && !p.has_part(5, 2) && !p.has_part(6, 0));
        let empty_open = LlProgress {
            open_parts: 0,
            ..p.clone()
        };
        assert!(empty_open.has_part(4, 5) && !empty_open.has_part(4, 6));
        assert!(!p.too_far_ahead(6, None) && p.too_far_ahead(7, None));
        // 3 s of 0.333 s parts = 10 parts past the last one (index 1).
        assert!(!p.too_far_ahead(5, Some(11)) && p.too_far_ahead(5, Some(12)));
        assert!(!p.too_far_ahead(6, Some(9)) && p.too_far_ahead(6, Some(10)));
        assert_eq!(advance_part_limit(1000), 3);
        assert_eq!(advance_part_limit(200), 15);
    }
}
