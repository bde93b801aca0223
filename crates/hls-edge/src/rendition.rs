//! One container's media playlist of a stream, sans IO: live window, media and discontinuity
//! sequence numbers, program date-times, init segments (CMAF) and segment availability
//! (RFC 8216bis §6.2.1 live playlists, §6.2.2 live window and availability, §4.4.4.5 `EXT-X-MAP`).
//!
//! ```text
//!  push ──► window (listed) ──slide──► retired (downloadable) ──expiry/budget──► dropped
//!                 └────────────── budget (oldest listed, never the newest) ──────────┘
//! ```
//! The life cycle (live, grace, ended, removed) is the stream's ([`crate::stream`]); a rendition
//! is told about it. Media segment bodies live in the store's cache; init segments live here,
//! and so do the parts of the segment being written (LL-HLS, RFC 8216bis §4.4.4.9): its media
//! sequence number is taken when its first part arrives and it is listed (`EXT-X-PART` only)
//! until it completes. Every render is published to the rendition's [`LlSignal`], which wakes
//! blocked requests (§6.2.5.2).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::body::{PartMeta, RenderedPlaylist, StoredBody};
use crate::growing::{End, GrowingPart};
use crate::iframes;
use crate::ll::{LlProgress, LlSignal};
use crate::media::{bitrate_bps, Bandwidth, Container, StreamInfo};
use crate::playlist::{self, LlView, PlaylistView, RenditionReport, SegmentMeta};
use crate::stream::Candidate;

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
pub(crate) struct RenderContext<'a> {
    pub target_duration_s: u32,
    /// `Some` when Low-Latency HLS is on (edge config) with this pinned part target.
    pub part_target_ms: Option<u32>,
    pub ended: bool,
    pub life_id: u64,
    pub wall: SystemTime,
    pub reports: &'a [RenditionReport],
}

/// The segment being written, listed by its parts (LL-HLS).
#[derive(Debug)]
pub(crate) struct OpenSegment {
    /// Duration and length so far; `parts` as listed.
    pub meta: SegmentMeta,
    /// One body per part (`part-N.P.m4s`), in order.
    pub bodies: Vec<Arc<StoredBody>>,
    /// The producer said the segment reached its target: the next part probably starts the
    /// next segment (what the preload hint names).
    pub target_reached: bool,
    pub arrival_unix_ms: u64,
}

/// How a segment starts: what its first part or whole body brings.
pub(crate) struct Start {
    pub discontinuity: bool,
    pub independent: bool,
    pub arrival_unix_ms: u64,
    pub init: Option<u64>,
    pub new_init: bool,
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
    /// Peak I-frame entry bitrate of this playlist life (`EXT-X-I-FRAME-STREAM-INF` BANDWIDTH).
    iframe_peak_bps: u64,
    /// The I-frame playlist, rendered with the media playlist (`None`: no keyframe ranges).
    rendered_iframes: Option<Arc<RenderedPlaylist>>,
    /// Declared by the producer; `produced` says whether the current publish makes it.
    pub info: StreamInfo,
    pub produced: bool,
    /// The segment being written (parts pushed one by one).
    pub open: Option<OpenSegment>,
    /// Parts were pushed one by one in this playlist life: the playlist is Low-Latency.
    pub ll_active: bool,
    /// Delta update (`_HLS_skip`), rendered with the playlist when segments can be skipped.
    rendered_delta: Option<Arc<RenderedPlaylist>>,
    pub signal: Arc<LlSignal>,
    /// The part being written, chunk by chunk (its bytes are in `bytes_held`).
    pub growing: Option<Arc<GrowingPart>>,
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
            iframe_peak_bps: 0,
            rendered_iframes: None,
            info: StreamInfo::default(),
            produced: false,
            open: None,
            ll_active: false,
            rendered_delta: None,
            signal: Arc::new(LlSignal::new()),
            growing: None,
        }
    }

    pub fn rendered(&self) -> Option<&Arc<RenderedPlaylist>> {
        self.rendered.as_ref()
    }

    pub fn rendered_iframes(&self) -> Option<&Arc<RenderedPlaylist>> {
        self.rendered_iframes.as_ref()
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
        // An open segment's parts are already served under its number.
        let open = u64::from(self.open.is_some());
        Continuation {
            next_media_sequence: self.next_media_sequence + open,
            discontinuity_sequence: self.discontinuity_sequence + listed,
            next_init: self.next_init,
        }
    }

    /// A new playlist life starts on this (removed) rendition: numbering goes on.
    pub fn new_life(&mut self) {
        self.segments_in_life = 0;
        self.pending_discontinuity = false;
        self.peak_bps = 0;
        self.iframe_peak_bps = 0;
        self.pdt_anchor = None;
        self.ll_active = false;
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

    /// The meta of a segment that starts now, under the next media sequence number (taken by
    /// [`Rendition::list`]). Decides its discontinuity and program date-time.
    pub fn start(&mut self, st: &Start) -> SegmentMeta {
        // A new init segment needs a new EXT-X-MAP, which HLS only allows after a
        // discontinuity (a different initialization is a different encoding, §4.4.4.3).
        let discontinuity = (st.discontinuity || self.pending_discontinuity || st.new_init)
            && self.segments_in_life > 0;
        self.pending_discontinuity = false;
        let (anchor_ms, since_90k) = match self.pdt_anchor {
            Some(a) if !discontinuity => a,
            _ => (st.arrival_unix_ms, 0),
        };
        self.pdt_anchor = Some((anchor_ms, since_90k));
        SegmentMeta {
            media_sequence: self.next_media_sequence,
            duration_90k: 0,
            discontinuity,
            independent: st.independent,
            program_date_time_unix_ms: anchor_ms.saturating_add(since_90k / 90),
            len_bytes: 0,
            init: st.init,
            parts: Vec::new(),
            keyframe: None,
        }
    }

    /// Lists a complete segment made by [`Rendition::start`]; `counted_bytes` of it are already
    /// in `bytes_held` (its parts). Returns its media sequence number; the caller slides,
    /// applies budgets and renders.
    pub fn list(&mut self, meta: SegmentMeta, arrival_unix_ms: u64, counted_bytes: u64) -> u64 {
        let media_sequence = meta.media_sequence;
        self.next_media_sequence = media_sequence + 1;
        self.segments_in_life += 1;
        if let Some((a, since)) = self.pdt_anchor {
            self.pdt_anchor = Some((a, since.saturating_add(meta.duration_90k)));
        }
        self.bytes_held += meta.len_bytes.saturating_sub(counted_bytes);
        self.last_segment_unix_ms = Some(arrival_unix_ms);
        self.peak_bps = self
            .peak_bps
            .max(bitrate_bps(meta.len_bytes, meta.duration_90k));
        self.iframe_peak_bps = self.iframe_peak_bps.max(iframes::entry_bps(&meta));
        self.window.push_back(Listed {
            meta,
            longest_playlist_90k: 0,
        });
        media_sequence
    }

    /// Adds a part to the open segment (starting it with `start` if none is open).
    pub fn push_part(
        &mut self,
        start: impl FnOnce(&mut Self) -> SegmentMeta,
        part: PartMeta,
        body: Arc<StoredBody>,
        target_reached: bool,
        arrival_unix_ms: u64,
    ) {
        if self.open.is_none() {
            let meta = start(self);
            self.open = Some(OpenSegment {
                meta,
                bodies: Vec::new(),
                target_reached: false,
                arrival_unix_ms,
            });
        }
        self.ll_active = true;
        self.bytes_held += body.len_bytes;
        if let Some(o) = self.open.as_mut() {
            o.meta.duration_90k += part.duration_90k;
            o.meta.len_bytes += body.len_bytes;
            o.meta.parts.push(part);
            o.bodies.push(body);
            o.target_reached = target_reached;
        }
    }

    /// Where the next part pushed goes, as `(media sequence, index)`: after the open
    /// segment's last part, or first of the next segment.
    pub fn part_position(&self) -> (u64, u32) {
        match &self.open {
            Some(o) => (o.meta.media_sequence, o.bodies.len() as u32),
            None => (self.next_media_sequence, 0),
        }
    }

    /// Gives up the growing part (its readers end cut); the bytes it held to release.
    pub fn abandon_growing(&mut self) -> Option<Dropped> {
        let g = self.growing.take()?;
        g.end(End::Abandoned);
        let len_bytes = g.len_bytes();
        self.bytes_held = self.bytes_held.saturating_sub(len_bytes);
        Some(Dropped {
            container: self.container,
            media_sequence: None,
            len_bytes,
        })
    }

    /// The next part of the open segment, as `(media sequence, index)`.
    pub fn next_part(&self) -> (u64, u32) {
        match &self.open {
            Some(o) if o.target_reached => (o.meta.media_sequence + 1, 0),
            Some(o) => (o.meta.media_sequence, o.bodies.len() as u32),
            None => (self.next_media_sequence, 0),
        }
    }

    /// A part body: of the open segment (complete ones are in the store's cache).
    pub fn open_part(&self, media_sequence: u64, index: u32) -> Option<Arc<StoredBody>> {
        let o = self.open.as_ref()?;
        if o.meta.media_sequence != media_sequence {
            return None;
        }
        o.bodies.get(index as usize).cloned()
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
        self.rendered_delta = None;
        self.signal.publish(LlProgress {
            gone: true,
            ..LlProgress::default()
        });
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

    pub fn render(&mut self, ctx: &RenderContext<'_>) {
        if self.window.is_empty() {
            self.rendered = None;
            self.rendered_delta = None;
            self.rendered_iframes = None;
            self.publish(ctx);
            return;
        }
        let ll_part_target = ctx
            .part_target_ms
            .filter(|_| self.ll_active && self.container == Container::Cmaf);
        let ll = |skipped_segments| {
            ll_part_target.map(|part_target_ms| LlView {
                part_target_ms,
                open: self.open.as_ref().map(|o| &o.meta),
                hint: Some(self.next_part()),
                skipped_segments,
                reports: ctx.reports,
            })
        };
        let view = PlaylistView {
            container: self.container,
            target_duration_s: ctx.target_duration_s,
            media_sequence: self.window[0].meta.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: self.window.iter().map(|l| &l.meta).collect(),
            ended: ctx.ended,
            ll: ll(0),
        };
        let text = playlist::render(&view);
        let iframes_text = iframes::render(
            self.container,
            ctx.target_duration_s,
            self.discontinuity_sequence,
            &view.segments,
            ctx.ended,
        );
        let skip = if ll_part_target.is_some() && !ctx.ended {
            self.skippable(ctx.target_duration_s)
        } else {
            0
        };
        let delta_text = (skip > 0).then(|| {
            playlist::render(&PlaylistView {
                segments: view.segments[skip..].to_vec(),
                ll: ll(skip),
                ..view
            })
        });
        self.version += 1;
        let tag = format!(
            "{:x}-{}{:x}",
            ctx.life_id,
            self.container.name(),
            self.version
        );
        let max_age_s = crate::routes::playlist_max_age_s(ctx.target_duration_s, ctx.ended);
        self.rendered = Some(Arc::new(RenderedPlaylist::new(
            Bytes::from(text),
            &tag,
            ctx.wall,
            max_age_s,
        )));
        self.rendered_iframes = iframes_text.map(|t| {
            Arc::new(RenderedPlaylist::new(
                Bytes::from(t),
                &format!("{tag}-i"),
                ctx.wall,
                max_age_s,
            ))
        });
        self.rendered_delta = delta_text.map(|t| {
            Arc::new(RenderedPlaylist::new(
                Bytes::from(t),
                &format!("{tag}-d"),
                ctx.wall,
                max_age_s,
            ))
        });
        self.publish(ctx);
    }

    /// Segments a delta update leaves out: those that end at least `CAN-SKIP-UNTIL` before the
    /// end of the last listed segment (RFC 8216bis §6.2.5.1 keeps everything closer to the end).
    fn skippable(&self, target_duration_s: u32) -> usize {
        let boundary_90k = playlist::can_skip_until_ms(target_duration_s) * 90;
        let mut after_90k = 0u64;
        let mut keep = 0;
        for l in self.window.iter().rev() {
            if after_90k >= boundary_90k {
                break;
            }
            keep += 1;
            after_90k += l.meta.duration_90k;
        }
        self.window.len() - keep
    }

    /// Tells waiting requests what the playlist now holds.
    fn publish(&self, ctx: &RenderContext<'_>) {
        // The open segment holds the next number, so `next_media_sequence` is the first
        // segment that is not complete.
        let last_parts = self
            .window
            .back()
            .filter(|l| l.meta.media_sequence + 1 == self.next_media_sequence)
            .map_or(0, |l| l.meta.parts.len() as u32);
        self.signal.publish(LlProgress {
            next_msn: self.next_media_sequence,
            last_parts,
            open_parts: self.open.as_ref().map_or(0, |o| o.bodies.len() as u32),
            hint: (!ctx.ended).then(|| self.next_part()),
            growing: self.growing.as_ref().map(|g| (g.media_sequence, g.index)),
            ended: ctx.ended,
            gone: false,
            ll: ctx.part_target_ms.is_some() && self.ll_active,
            target_duration_s: ctx.target_duration_s,
            part_target_ms: ctx.part_target_ms.unwrap_or(0),
            playlist: self.rendered.clone(),
            delta: self.rendered_delta.clone(),
        });
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
            iframe_bandwidth: Bandwidth {
                peak_bps: self.iframe_peak_bps,
                average_bps: bitrate_bps(
                    self.window
                        .iter()
                        .filter_map(|l| l.meta.keyframe)
                        .map(|k| k.len)
                        .sum(),
                    duration_90k,
                ),
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
    /// Of the I-frame playlist (`iframes.m3u8`); zero when it has no entries.
    pub iframe_bandwidth: Bandwidth,
    pub info: StreamInfo,
}
