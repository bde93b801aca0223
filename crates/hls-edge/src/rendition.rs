//! One container's media playlist of a stream, sans IO: live window, media and discontinuity
//! sequence numbers, program date-times, init segments (CMAF) and segment availability
//! (RFC 8216bis §6.2.1 live playlists, §6.2.2 live window and availability, §4.4.4.5 `EXT-X-MAP`).
//!
//! ```text
//!  push ──► window (listed) ──slide──► retired (downloadable) ──expiry/budget──► dropped
//!                 └────────────── budget (oldest listed, never the newest) ──────────┘
//! ```
//! The life cycle (live, grace, ended, removed) is the stream's ([`crate::stream`]); a rendition
//! is told about it. Media segment bodies live in the store's cache; init segments live here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::body::{RenderedPlaylist, StoredBody};
use crate::media::{bitrate_bps, Bandwidth, Container, StreamInfo};
use crate::playlist::{self, PlaylistView, SegmentMeta};
use crate::stream::{Candidate, NewSegment};

/// Something whose bytes are no longer held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub container: Container,
    /// `Some(media sequence)` for a media segment (its body is in the store's cache),
    /// `None` for an init segment (held by the rendition itself).
    pub media_sequence: Option<u64>,
    pub len_bytes: u64,
}

#[derive(Debug)]
struct Listed {
    meta: SegmentMeta,
    /// Longest playlist (sum of durations) that has contained this segment.
    longest_playlist_90k: u64,
}

#[derive(Debug)]
struct Retired {
    media_sequence: u64,
    len_bytes: u64,
    init: Option<u64>,
    expires_at: Instant,
}

/// Numbers a removed playlist leaves behind so the same URL never reuses a name (and, in a
/// fleet, what another node continues from: [`crate::Resume`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuation {
    pub next_media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub next_init: u64,
}

/// What a render needs from the stream.
pub(crate) struct RenderContext {
    pub target_duration_s: u32,
    pub ended: bool,
    pub life_id: u64,
    pub wall: SystemTime,
}

pub(crate) fn duration_from_90k(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(100_000) / 9)
}

#[derive(Debug)]
pub(crate) struct Rendition {
    pub container: Container,
    window: VecDeque<Listed>,
    retired: VecDeque<Retired>,
    next_media_sequence: u64,
    discontinuity_sequence: u64,
    /// The next segment gets `#EXT-X-DISCONTINUITY` (set by a reconnect).
    pub pending_discontinuity: bool,
    segments_in_life: u64,
    /// (unix ms, 90 kHz ticks since) for `#EXT-X-PROGRAM-DATE-TIME`; `None` re-anchors.
    pub pdt_anchor: Option<(u64, u64)>,
    version: u64,
    pub bytes_held: u64,
    rendered: Option<Arc<RenderedPlaylist>>,
    last_segment_unix_ms: Option<u64>,
    /// Init segments still needed by a held segment, oldest first (CMAF).
    inits: VecDeque<(u64, Arc<StoredBody>)>,
    /// The newest init: its number and bytes (compared with each pushed segment's init).
    current_init: Option<(u64, Bytes)>,
    next_init: u64,
    peak_bps: u64,
    /// Declared by the producer; `produced` says whether the current publish makes it.
    pub info: StreamInfo,
    pub produced: bool,
}

impl Rendition {
    pub fn new(container: Container, cont: Continuation) -> Self {
        Self {
            container,
            window: VecDeque::new(),
            retired: VecDeque::new(),
            next_media_sequence: cont.next_media_sequence,
            discontinuity_sequence: cont.discontinuity_sequence,
            pending_discontinuity: false,
            segments_in_life: 0,
            pdt_anchor: None,
            version: 0,
            bytes_held: 0,
            rendered: None,
            last_segment_unix_ms: None,
            inits: VecDeque::new(),
            current_init: None,
            next_init: cont.next_init,
            peak_bps: 0,
            info: StreamInfo::default(),
            produced: false,
        }
    }

    pub fn rendered(&self) -> Option<&Arc<RenderedPlaylist>> {
        self.rendered.as_ref()
    }

    pub fn continuation(&self) -> Continuation {
        // A removed playlist's window is empty, so this is the sequence of its next segment.
        Continuation {
            next_media_sequence: self.next_media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            next_init: self.next_init,
        }
    }

    /// Another producer (a fleet node) published this playlist since: every number moves up to
    /// `to` (never back) and the next segment is a discontinuity. Listed segments leave the
    /// playlist when the media sequence jumps, since a playlist's numbers are consecutive.
    pub fn resume_at(&mut self, to: Continuation, now: Instant) {
        if to.next_media_sequence > self.next_media_sequence {
            self.retire_all(now);
        }
        self.next_media_sequence = self.next_media_sequence.max(to.next_media_sequence);
        self.next_init = self.next_init.max(to.next_init);
        // The first segment of a playlist carries no tag (see `push`), so a playlist that
        // starts here starts one discontinuity further on instead.
        let dseq = to.discontinuity_sequence + u64::from(self.window.is_empty());
        self.discontinuity_sequence = self.discontinuity_sequence.max(dseq);
        self.pending_discontinuity = true;
    }

    /// What another producer continues from: the next numbers, with the discontinuity
    /// sequence counted as if every listed segment had left the playlist.
    pub fn resume_point(&self) -> Continuation {
        let listed = self.window.iter().filter(|l| l.meta.discontinuity).count() as u64;
        Continuation {
            discontinuity_sequence: self.discontinuity_sequence + listed,
            ..self.continuation()
        }
    }

    /// A new playlist life starts on this (removed) rendition: numbering goes on.
    pub fn new_life(&mut self) {
        self.segments_in_life = 0;
        self.pending_discontinuity = false;
        self.peak_bps = 0;
        self.pdt_anchor = None;
    }

    pub fn init(&self, number: u64) -> Option<Arc<StoredBody>> {
        self.inits
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, b)| b.clone())
    }

    /// The init segment number for a pushed segment's init bytes: the current one if the bytes
    /// are the same, else a new number (and the body to store). `None` without an init.
    pub fn resolve_init(&mut self, init: Option<&Bytes>) -> (Option<u64>, bool) {
        let Some(bytes) = init else {
            return (None, false);
        };
        if let Some((n, cur)) = &self.current_init {
            if cur == bytes {
                return (Some(*n), false);
            }
        }
        let n = self.next_init;
        self.next_init += 1;
        self.current_init = Some((n, bytes.clone()));
        (Some(n), true)
    }

    /// Makes sure the body of init `number` is held (it may have been dropped while no segment
    /// needed it and is needed again now: same number, same bytes).
    pub fn hold_init(&mut self, number: u64, body: impl FnOnce() -> StoredBody) -> u64 {
        if self.inits.iter().any(|(n, _)| *n == number) {
            return 0;
        }
        let body = body();
        let len = body.len_bytes;
        self.inits.push_back((number, Arc::new(body)));
        self.bytes_held += len;
        len
    }

    /// Lists a complete segment. Returns its media sequence number; the caller slides, applies
    /// budgets and renders.
    pub fn push(
        &mut self,
        seg: &NewSegment,
        len_bytes: u64,
        init: Option<u64>,
        new_init: bool,
    ) -> u64 {
        let media_sequence = self.next_media_sequence;
        self.next_media_sequence += 1;
        // A new init segment needs a new EXT-X-MAP, which HLS only allows after a
        // discontinuity (a different initialization is a different encoding, §4.4.4.3).
        let discontinuity = (seg.discontinuity || self.pending_discontinuity || new_init)
            && self.segments_in_life > 0;
        self.pending_discontinuity = false;
        self.segments_in_life += 1;
        let (anchor_ms, since_90k) = match self.pdt_anchor {
            Some(a) if !discontinuity => a,
            _ => (seg.arrival_unix_ms, 0),
        };
        self.pdt_anchor = Some((anchor_ms, since_90k.saturating_add(seg.duration_90k)));
        self.window.push_back(Listed {
            meta: SegmentMeta {
                media_sequence,
                duration_90k: seg.duration_90k,
                discontinuity,
                independent: seg.independent,
                program_date_time_unix_ms: anchor_ms.saturating_add(since_90k / 90),
                len_bytes,
                init,
            },
            longest_playlist_90k: 0,
        });
        self.bytes_held += len_bytes;
        self.last_segment_unix_ms = Some(seg.arrival_unix_ms);
        self.peak_bps = self.peak_bps.max(bitrate_bps(len_bytes, seg.duration_90k));
        media_sequence
    }

    fn playlist_duration_90k(&self) -> u64 {
        self.window.iter().map(|l| l.meta.duration_90k).sum()
    }

    /// Removes segments from the front while more than `window_segments` are listed and the
    /// rest still holds at least 3 target durations (RFC 8216bis §6.2.2).
    pub fn slide(&mut self, now: Instant, window_segments: usize, td: u32) {
        let min_90k = 3 * u64::from(td) * 90_000;
        let mut total = self.playlist_duration_90k();
        while self.window.len() > window_segments.max(1) {
            let front = self.window[0].meta.duration_90k;
            if total - front < min_90k {
                break;
            }
            total -= front;
            self.retire_front(now);
        }
        for l in &mut self.window {
            l.longest_playlist_90k = l.longest_playlist_90k.max(total);
        }
    }

    /// Takes the first listed segment out of the playlist; its body stays available for its
    /// duration plus the longest playlist that contained it, counted from now (which is later
    /// than its first appearance, so this is at least what §6.2.2 asks).
    fn retire_front(&mut self, now: Instant) {
        if let Some(l) = self.pop_front() {
            let keep =
                duration_from_90k(l.meta.duration_90k.saturating_add(l.longest_playlist_90k));
            self.retired.push_back(Retired {
                media_sequence: l.meta.media_sequence,
                len_bytes: l.meta.len_bytes,
                init: l.meta.init,
                expires_at: now + keep,
            });
        }
    }

    /// Every listed segment leaves the playlist (the playlist is removed).
    pub fn retire_all(&mut self, now: Instant) {
        while !self.window.is_empty() {
            self.retire_front(now);
        }
        self.rendered = None;
    }

    fn pop_front(&mut self) -> Option<Listed> {
        let l = self.window.pop_front()?;
        if l.meta.discontinuity {
            self.discontinuity_sequence += 1;
        }
        Some(l)
    }

    /// Drops the oldest held media segment body: a retired one if any, else the first listed
    /// one (never the last listed segment). Returns it and whether the playlist changed, plus
    /// any init segment no longer needed.
    pub fn drop_oldest(&mut self, out: &mut Vec<Dropped>) -> Option<bool> {
        let (seq, len, listed) = if let Some(r) = self.retired.pop_front() {
            (r.media_sequence, r.len_bytes, false)
        } else if self.window.len() > 1 {
            let l = self.pop_front()?;
            (l.meta.media_sequence, l.meta.len_bytes, true)
        } else {
            return None;
        };
        self.bytes_held -= len;
        out.push(Dropped {
            container: self.container,
            media_sequence: Some(seq),
            len_bytes: len,
        });
        self.release_inits(out);
        Some(listed)
    }

    /// Drops init segments that no held segment needs any more (init numbers grow with media
    /// sequence numbers, so those are the ones below the oldest held segment's).
    fn release_inits(&mut self, out: &mut Vec<Dropped>) {
        let oldest_needed = self
            .retired
            .front()
            .map(|r| r.init)
            .or_else(|| self.window.front().map(|l| l.meta.init));
        while let Some((n, body)) = self.inits.front() {
            if matches!(oldest_needed, Some(Some(o)) if *n >= o) {
                break;
            }
            let len = body.len_bytes;
            self.inits.pop_front();
            self.bytes_held -= len;
            out.push(Dropped {
                container: self.container,
                media_sequence: None,
                len_bytes: len,
            });
        }
    }

    /// Which body this rendition would give up first for a byte budget, as an ordering key:
    /// bodies already out of the playlist (earliest expiry first) before listed ones (oldest
    /// program date-time first). `None` if only the newest listed segment is held.
    pub fn eviction_candidate(&self) -> Option<Candidate> {
        if let Some(r) = self.retired.front().map(|r| r.expires_at) {
            return Some(Candidate::Retired(r));
        }
        if self.window.len() > 1 {
            return Some(Candidate::Listed(
                self.window[0].meta.program_date_time_unix_ms,
            ));
        }
        None
    }

    /// Drops the retired bodies whose availability is over.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Dropped>) {
        let before = out.len();
        while self.retired.front().is_some_and(|r| r.expires_at <= now) {
            if let Some(r) = self.retired.pop_front() {
                self.bytes_held -= r.len_bytes;
                out.push(Dropped {
                    container: self.container,
                    media_sequence: Some(r.media_sequence),
                    len_bytes: r.len_bytes,
                });
            }
        }
        if out.len() > before {
            self.release_inits(out);
        }
    }

    /// Nothing listed, nothing retired, no init held.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty() && self.retired.is_empty() && self.inits.is_empty()
    }

    pub fn render(&mut self, ctx: &RenderContext) {
        if self.window.is_empty() {
            self.rendered = None;
            return;
        }
        let text = playlist::render(&PlaylistView {
            container: self.container,
            target_duration_s: ctx.target_duration_s,
            media_sequence: self.window[0].meta.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: self.window.iter().map(|l| &l.meta).collect(),
            ended: ctx.ended,
        });
        self.version += 1;
        let tag = format!(
            "{:x}-{}{:x}",
            ctx.life_id,
            self.container.name(),
            self.version
        );
        self.rendered = Some(Arc::new(RenderedPlaylist::new(
            Bytes::from(text),
            &tag,
            ctx.wall,
            crate::routes::playlist_max_age_s(ctx.target_duration_s, ctx.ended),
        )));
    }

    pub fn summary(&self) -> RenditionSummary {
        let listed_bytes: u64 = self.window.iter().map(|l| l.meta.len_bytes).sum();
        let duration_90k = self.playlist_duration_90k();
        RenditionSummary {
            container: self.container,
            produced: self.produced,
            segments: self.window.len(),
            segments_held: self.window.len() + self.retired.len(),
            init_segments_held: self.inits.len(),
            bytes_held: self.bytes_held,
            media_sequence: self
                .window
                .front()
                .map_or(self.next_media_sequence, |l| l.meta.media_sequence),
            discontinuity_sequence: self.discontinuity_sequence,
            playlist_duration_ms: duration_90k / 90,
            last_segment_unix_ms: self.last_segment_unix_ms,
            bandwidth: Bandwidth {
                peak_bps: self.peak_bps,
                average_bps: bitrate_bps(listed_bytes, duration_90k),
            },
            info: self.info.clone(),
        }
    }
}

/// What the API shows about one container's playlist of a stream.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RenditionSummary {
    pub container: Container,
    /// The current (or last) publish produces this container.
    pub produced: bool,
    /// Segments listed in the playlist.
    pub segments: usize,
    /// Segments whose bodies are held (listed plus those still in their availability period).
    pub segments_held: usize,
    /// Init segments held (CMAF).
    pub init_segments_held: usize,
    /// Bytes of media and init segments held.
    pub bytes_held: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// Sum of the listed segments' durations.
    pub playlist_duration_ms: u64,
    pub last_segment_unix_ms: Option<u64>,
    pub bandwidth: Bandwidth,
    pub info: StreamInfo,
}
