//! One stream's life, sans IO: publish epochs, the declared target duration and part target,
//! grace / ended / removed, and its renditions (one media playlist per container, see
//! [`crate::rendition`]) (RFC 8216bis §6.2.1 live playlists, §6.2.2 removal). Time is passed in.
//!
//! ```text
//!  begin ──► Live ──end──► Grace ──grace_period──► Ended (ENDLIST) ──ended_retention──► Removed
//!             ▲              │                        │                                   │
//!             └── begin ─────┴──────── begin ─────────┘     begin (new life, numbers go on)┘
//! ```

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::body::{PartMeta, StoredBody};
use crate::config::EdgeConfig;
use crate::growing::{End, GrowingPart};
use crate::media::{Container, PerContainer, PublishParams, StreamInfo};
use crate::playlist::{self, RenditionReport, SegmentMeta};
use crate::rendition::{Continuation, Dropped, RenderContext, Rendition, RenditionSummary, Start};

/// One part of a segment handed over by the producer (an LL-HLS partial segment).
#[derive(Clone, Debug)]
pub struct NewPart {
    pub bytes: Bytes,
    pub duration_90k: u64,
    /// Starts with a keyframe (LL-HLS `INDEPENDENT=YES`).
    pub independent: bool,
    /// Pushed one by one ([`crate::StreamHandle::push_part`]): with this part the segment
    /// reached its target duration, so the next part probably starts the next segment (the
    /// preload hint names that one). Ignored in [`NewSegment::parts`].
    pub segment_target_reached: bool,
}

/// The close of a part pushed chunk by chunk ([`crate::StreamHandle::push_chunk`], then
/// [`crate::StreamHandle::complete_part`]): its body is the chunks pushed.
#[derive(Clone, Copy, Debug)]
pub struct PartDone {
    pub duration_90k: u64,
    pub independent: bool,
    /// As [`NewPart::segment_target_reached`].
    pub segment_target_reached: bool,
}

/// How the segment a part belongs to starts; read when its first part arrives (the tags that
/// go before a segment's first `EXT-X-PART` must be known then, RFC 8216bis §4.4.4.9).
#[derive(Clone, Debug)]
pub struct SegmentStart {
    pub container: Container,
    /// CMAF: the init segment the segment needs (required), as in [`NewSegment::init`].
    pub init: Option<Bytes>,
    /// The media timeline restarts with this segment (`#EXT-X-DISCONTINUITY`).
    pub discontinuity: bool,
    /// Wall-clock time the segment's first frame arrived.
    pub arrival_unix_ms: u64,
}

/// A complete segment of one container handed over by the producer.
#[derive(Clone, Debug)]
pub struct NewSegment {
    pub container: Container,
    /// The segment's parts in order; the segment body is their concatenation, served without
    /// copying. When parts of it were pushed one by one ([`crate::StreamHandle::push_part`]),
    /// these are appended to them (normally empty: the pushed parts are the segment).
    pub parts: Vec<NewPart>,
    /// CMAF: the init segment (`ftyp`+`moov`) this segment needs; required. When its bytes
    /// differ from the previous segment's, the edge stores it as a new `init-N.mp4` and the
    /// segment starts with `#EXT-X-DISCONTINUITY` and a new `#EXT-X-MAP`. TS: ignored.
    pub init: Option<Bytes>,
    pub duration_90k: u64,
    /// The media timeline restarts here (timestamp jump, codec change): `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Starts with a keyframe (and parameter sets, for TS).
    pub independent: bool,
    /// Wall-clock time the segment's first frame arrived (anchors `#EXT-X-PROGRAM-DATE-TIME`).
    pub arrival_unix_ms: u64,
    /// Its first keyframe as a byte range of the segment, decodable on its own (TS: from the
    /// start through the keyframe's last packet; CMAF: a `moof`+`mdat`, with the init): the
    /// segment's entry in the I-frame playlist. `None`: listed there as a gap.
    pub keyframe: Option<crate::iframes::ByteRange>,
}

/// Where a playlist is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// A publisher is attached.
    Live,
    /// The publisher left less than `grace_period` ago; the playlist still looks live.
    Grace,
    /// The playlist carries `#EXT-X-ENDLIST`.
    Ended,
}

/// What the API shows about one stream. The flat fields describe the playlist served at
/// `index.m3u8` (the primary container); `containers` has both.
#[derive(Clone, Debug, Serialize)]
pub struct StreamSummary {
    pub app: String,
    pub stream: String,
    pub state: StreamState,
    /// The container `index.m3u8` serves (`None` before the first segment).
    pub primary_container: Option<Container>,
    /// Segments listed in the primary playlist.
    pub segments: usize,
    /// Segments of the primary playlist whose bodies are held.
    pub segments_held: usize,
    /// Bytes held for this stream, all containers.
    pub bytes_held: u64,
    pub target_duration_s: Option<u32>,
    pub part_target_ms: Option<u32>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub playlist_duration_ms: u64,
    pub last_segment_unix_ms: Option<u64>,
    /// The primary container's stream information.
    pub info: StreamInfo,
    pub containers: PerContainer<RenditionSummary>,
}

/// See [`Rendition::eviction_candidate`]; smaller goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Candidate {
    Retired(Instant),
    Listed(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Live,
    Grace {
        since: Instant,
    },
    Ended {
        since: Instant,
    },
    /// Playlist gone (404); left-over segments are still served until they expire.
    Removed,
}

/// A pushed segment: the caller stores its body under `media_sequence` before releasing the
/// lock, and releases `dropped`.
pub(crate) struct Pushed {
    pub container: Container,
    pub media_sequence: u64,
    pub body: StoredBody,
    pub dropped: Vec<Dropped>,
    /// Bytes newly held: the body (less its parts, already counted) and a new init segment.
    pub added_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct StreamCore {
    pub phase: Phase,
    /// Which publish owns the stream; pushes from older handles are ignored.
    pub publish_epoch: u64,
    target_duration_s: Option<u32>,
    part_target_ms: Option<u32>,
    /// The producer declared which containers it makes ([`StreamCore::set_media`]).
    declared: bool,
    /// Some segment was listed in this playlist life.
    life_started: bool,
    /// First segment arrival of this playlist life: makes ETags unique across restarts.
    life_id: u64,
    warned_over_target: bool,
    /// Low-Latency HLS is on (edge config).
    low_latency: bool,
    warned_part_over_target: bool,
    /// Other renditions of the same group (`EXT-X-RENDITION-REPORT`); none today.
    reports: Vec<RenditionReport>,
    pub renditions: PerContainer<Rendition>,
    /// Growing parts given up when a publisher left or a new one began: bytes the store
    /// releases ([`crate::store`] drains this after `begin`, `end` and `end_now`).
    pub abandoned: Vec<Dropped>,
}

pub(crate) fn content_type(container: Container, info: &StreamInfo) -> &'static str {
    match container {
        Container::Ts => "video/mp2t",
        Container::Cmaf if info.is_audio_only() => "audio/mp4",
        Container::Cmaf => "video/mp4",
    }
}

impl StreamCore {
    pub fn new(cont: PerContainer<Continuation>, params: PublishParams, low_latency: bool) -> Self {
        Self {
            low_latency,
            warned_part_over_target: false,
            reports: Vec::new(),
            phase: Phase::Live,
            publish_epoch: 1,
            target_duration_s: Some(params.target_duration_s.max(1)),
            part_target_ms: Some(params.part_target_ms),
            declared: false,
            life_started: false,
            life_id: 0,
            warned_over_target: false,
            renditions: cont.map(|c, k| Rendition::new(c, *k)),
            abandoned: Vec::new(),
        }
    }

    pub fn state(&self) -> Option<StreamState> {
        match self.phase {
            Phase::Live => Some(StreamState::Live),
            Phase::Grace { .. } => Some(StreamState::Grace),
            Phase::Ended { .. } => Some(StreamState::Ended),
            Phase::Removed => None,
        }
    }

    pub fn bytes_held(&self) -> u64 {
        self.renditions.ts.bytes_held + self.renditions.cmaf.bytes_held
    }

    pub fn continuation(&self) -> PerContainer<Continuation> {
        self.renditions.map(|_, r| r.continuation())
    }

    /// The numbers and pinned timing another producer would continue from.
    pub fn resume_point(&self) -> crate::media::Resume {
        crate::media::Resume {
            target_duration_s: self.target_duration_s.unwrap_or(0),
            part_target_ms: self.part_target_ms.unwrap_or(0),
            renditions: self.renditions.map(|_, r| r.resume_point()),
        }
    }

    /// Continues numbering from `to` (see [`crate::Store::begin_publish_resuming`]).
    pub fn resume_at(&mut self, to: &crate::media::Resume, now: Instant) {
        for c in Container::ALL {
            self.renditions[c].resume_at(to.renditions[c], now);
        }
    }

    /// The container `index.m3u8` serves: the one the producer declared (TS when it makes TS,
    /// else CMAF), with no fallback so the URL never flips between containers while a publish
    /// runs; without a declaration, TS if it has a playlist, else CMAF.
    pub fn primary(&self) -> Option<Container> {
        let r = &self.renditions;
        if self.declared {
            let c = if r.ts.produced {
                Container::Ts
            } else {
                Container::Cmaf
            };
            return r[c].rendered().is_some().then_some(c);
        }
        Container::ALL
            .into_iter()
            .find(|c| r[*c].rendered().is_some())
    }

    /// A publisher starts. Returns the new publish epoch.
    ///
    /// * Live (takeover), Grace or Ended: the same playlist continues; ENDLIST is dropped and the
    ///   next segment of each container carries `#EXT-X-DISCONTINUITY`; the target duration and
    ///   part target stay (a different declaration is logged and ignored).
    /// * Removed: a new playlist life with the declared values; numbering continues.
    ///
    /// A segment left open by the previous publisher is listed with the parts it has (its
    /// part URIs are published and must keep their bytes). Returns the epoch and that segment.
    pub fn begin(
        &mut self,
        params: PublishParams,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> (u64, Vec<Pushed>) {
        let closed = self.close_open(now, wall, cfg);
        self.publish_epoch += 1;
        match self.phase {
            Phase::Removed => {
                self.target_duration_s = Some(params.target_duration_s.max(1));
                self.part_target_ms = Some(params.part_target_ms);
                self.declared = false;
                self.life_started = false;
                self.warned_over_target = false;
                for c in Container::ALL {
                    let r = &mut self.renditions[c];
                    r.new_life();
                    r.produced = false;
                }
            }
            Phase::Ended { .. } | Phase::Live | Phase::Grace { .. } => {
                let (td, pt) = (self.target_duration_s, self.part_target_ms);
                if td != Some(params.target_duration_s.max(1)) || pt != Some(params.part_target_ms)
                {
                    tracing::warn!(
                        pinned_target_duration_s = td,
                        pinned_part_target_ms = pt,
                        declared_target_duration_s = params.target_duration_s,
                        declared_part_target_ms = params.part_target_ms,
                        "a reconnect declared other segment timing; the playlist keeps its own"
                    );
                }
                let was_ended = matches!(self.phase, Phase::Ended { .. });
                self.phase = Phase::Live;
                for c in Container::ALL {
                    self.renditions[c].pending_discontinuity = true;
                    self.renditions[c].pdt_anchor = None;
                }
                if was_ended {
                    self.render_all(wall);
                }
            }
        }
        self.phase = Phase::Live;
        (self.publish_epoch, closed)
    }

    /// The group's other renditions as the next render reports them (`EXT-X-RENDITION-REPORT`).
    pub fn set_reports(&mut self, reports: Vec<RenditionReport>) {
        self.reports = reports;
    }

    /// The producer says which containers it makes from now on, with their descriptions.
    pub fn set_media(&mut self, epoch: u64, media: PerContainer<Option<StreamInfo>>) {
        if epoch != self.publish_epoch {
            return;
        }
        self.declared = true;
        for (c, info) in media.iter() {
            let r = &mut self.renditions[c];
            r.produced = info.is_some();
            if let Some(i) = info {
                r.info = i.clone();
            }
        }
    }

    /// The publisher of `epoch` left: grace period starts. A segment it left open is listed
    /// with the parts it has.
    pub fn end(
        &mut self,
        epoch: u64,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> Vec<Pushed> {
        if epoch == self.publish_epoch && self.phase == Phase::Live {
            let closed = self.close_open(now, wall, cfg);
            self.phase = Phase::Grace { since: now };
            // No preload hint for a part that no publisher will write.
            self.render_all(wall);
            return closed;
        }
        Vec::new()
    }

    /// Shutdown: ENDLIST now, detach any publisher.
    pub fn end_now(&mut self, now: Instant, wall: SystemTime, cfg: &EdgeConfig) -> Vec<Pushed> {
        if matches!(self.phase, Phase::Live | Phase::Grace { .. }) {
            let closed = self.close_open(now, wall, cfg);
            self.publish_epoch += 1;
            self.phase = Phase::Ended { since: now };
            self.render_all(wall);
            return closed;
        }
        Vec::new()
    }

    /// Whether a push from the publisher of `epoch` would be taken.
    pub fn accepts(&self, epoch: u64) -> bool {
        epoch == self.publish_epoch && self.phase == Phase::Live
    }

    fn start_life(&mut self, arrival_unix_ms: u64) {
        if !self.life_started {
            self.life_started = true;
            self.life_id = arrival_unix_ms;
        }
    }

    /// The init segment number for `init` bytes of container `c`, holding its body; plus
    /// whether it is new and the bytes newly held.
    fn init_for(
        &mut self,
        c: Container,
        init: Option<&Bytes>,
        wall: SystemTime,
    ) -> (Option<u64>, bool, u64) {
        let life_id = self.life_id;
        let r = &mut self.renditions[c];
        let ctype = content_type(c, &r.info);
        let init = init.filter(|_| c == Container::Cmaf);
        let (number, new_init) = r.resolve_init(init);
        let mut held = 0;
        if let (Some(n), Some(bytes)) = (number, init) {
            held = r.hold_init(n, || {
                let etag = format!("\"i{life_id:x}-{n:x}\"");
                StoredBody::new(vec![bytes.clone()], Vec::new(), etag, wall, ctype)
            });
        }
        (number, new_init, held)
    }

    /// Adds a part to the open segment of its container (opening one if needed) from the
    /// publisher of `epoch` (the caller checked [`StreamCore::accepts`]) and renders. Returns
    /// the bytes newly held (the part, and a new init segment) and a growing part given up.
    pub fn push_part(
        &mut self,
        start: &SegmentStart,
        part: NewPart,
        wall: SystemTime,
    ) -> (u64, Option<Dropped>) {
        let done = PartDone {
            duration_90k: part.duration_90k,
            independent: part.independent,
            segment_target_reached: part.segment_target_reached,
        };
        self.push_part_body(start, Some(part.bytes), done, wall)
    }

    /// Appends one chunk to the part being written in `c`, started at the next part's place
    /// on its first chunk (readers of a hinted part are woken). Returns the bytes newly held and
    /// a stale growing part given up (a part at another place: cannot happen in order).
    pub fn push_chunk(&mut self, c: Container, pieces: Vec<Bytes>) -> (u64, Option<Dropped>) {
        let r = &mut self.renditions[c];
        let (msn, index) = r.part_position();
        let stale = r
            .growing
            .as_ref()
            .is_some_and(|g| (g.media_sequence, g.index) != (msn, index));
        let dropped = if stale { r.abandon_growing() } else { None };
        let ct = content_type(c, &r.info);
        let g = r.growing.get_or_insert_with(|| {
            Arc::new(GrowingPart::new(msn, index, HeaderValue::from_static(ct)))
        });
        let first = !g.started();
        let added = g.append(pieces);
        r.bytes_held += added;
        if first {
            r.signal.set_growing(Some((msn, index)));
        }
        (added, dropped)
    }

    /// [`Self::push_part`] with the part's bytes, or (`None`) the chunks of the growing part.
    pub fn push_part_body(
        &mut self,
        start: &SegmentStart,
        bytes: Option<Bytes>,
        part: PartDone,
        wall: SystemTime,
    ) -> (u64, Option<Dropped>) {
        let c = start.container;
        let pt = self.part_target_ms.unwrap_or(0);
        if part.duration_90k > u64::from(pt) * 90 && !self.warned_part_over_target {
            self.warned_part_over_target = true;
            tracing::warn!(
                part_target_ms = pt,
                duration_ms = part.duration_90k / 90,
                "part longer than the pinned part target; listing it anyway"
            );
        }
        self.start_life(start.arrival_unix_ms);
        let mut added = 0;
        let (init, new_init) = if self.renditions[c].open.is_none() {
            let (n, new, held) = self.init_for(c, start.init.as_ref(), wall);
            added += held;
            (n, new)
        } else {
            (None, false)
        };
        let life_id = self.life_id;
        let r = &mut self.renditions[c];
        let (msn, index) = match &r.open {
            Some(o) => (o.meta.media_sequence, o.bodies.len() as u32),
            None => (r.continuation().next_media_sequence, 0),
        };
        let grown = r
            .growing
            .take_if(|g| (g.media_sequence, g.index) == (msn, index) && bytes.is_none());
        // A part pushed whole replaces a growing one (a producer that switched mid-part).
        let dropped = r.abandon_growing();
        let (pieces, counted) = match (bytes, &grown) {
            (Some(b), _) => (vec![b], 0),
            (None, Some(g)) => (g.pieces(), g.len_bytes()),
            (None, None) => {
                tracing::warn!(msn, index, "part close without its chunks; not listed");
                return (added, dropped);
            }
        };
        let etag = format!("\"q{life_id:x}-{}{msn:x}.{index:x}\"", c.name());
        let body = StoredBody::new(pieces, Vec::new(), etag, wall, content_type(c, &r.info));
        // A grown part's bytes were counted chunk by chunk.
        added += body.len_bytes.saturating_sub(counted);
        let st = Start {
            discontinuity: start.discontinuity,
            independent: part.independent,
            arrival_unix_ms: start.arrival_unix_ms,
            init,
            new_init,
        };
        r.push_part(
            |r| r.start(&st),
            PartMeta {
                duration_90k: part.duration_90k,
                independent: part.independent,
            },
            Arc::new(body),
            part.segment_target_reached,
            start.arrival_unix_ms,
        );
        if let Some(g) = grown {
            g.end(End::Complete);
        }
        let (ctx, renditions) = self.split_for_render(wall);
        renditions[c].render(&ctx);
        (added, dropped)
    }

    /// Lists a complete segment from the publisher of `epoch` (the caller checked
    /// [`StreamCore::accepts`]): the open segment of its container completed with `seg`, or
    /// `seg` whole. Slides the window, applies the per-stream budget and renders.
    pub fn push(
        &mut self,
        seg: NewSegment,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> Pushed {
        let td = self.target_duration_s.unwrap_or(1);
        if playlist::rounded_seconds(seg.duration_90k) > u64::from(td) && !self.warned_over_target {
            self.warned_over_target = true;
            tracing::warn!(
                target_duration_s = td,
                duration_ms = seg.duration_90k / 90,
                "segment longer than the pinned target duration; listing it anyway"
            );
        }
        self.start_life(seg.arrival_unix_ms);
        let c = seg.container;
        let mut parts = seg.parts;
        if let Some(o) = self.renditions[c].open.as_mut() {
            o.meta.keyframe = seg.keyframe;
            let start = SegmentStart {
                container: c,
                init: seg.init.clone(),
                discontinuity: seg.discontinuity,
                arrival_unix_ms: seg.arrival_unix_ms,
            };
            let mut added = 0;
            let mut dropped = Vec::new();
            for p in std::mem::take(&mut parts) {
                let (a, d) = self.push_part(&start, p, wall);
                added += a;
                dropped.extend(d);
            }
            if let Some(mut p) = self.complete_open(c, Some(seg.duration_90k), now, wall, cfg) {
                p.added_bytes += added;
                p.dropped.extend(dropped);
                return p;
            }
        }
        let (init, new_init, init_bytes) = self.init_for(c, seg.init.as_ref(), wall);
        let r = &mut self.renditions[c];
        let mut meta = r.start(&Start {
            discontinuity: seg.discontinuity,
            independent: seg.independent,
            arrival_unix_ms: seg.arrival_unix_ms,
            init,
            new_init,
        });
        meta.duration_90k = seg.duration_90k;
        meta.keyframe = seg.keyframe;
        meta.len_bytes = parts.iter().map(|p| p.bytes.len() as u64).sum();
        let chunks = parts.into_iter().map(|p| p.bytes).collect();
        self.list(
            c,
            meta,
            chunks,
            Vec::new(),
            0,
            seg.arrival_unix_ms,
            init_bytes,
            now,
            wall,
            cfg,
        )
    }

    /// Lists the open segment of `c` (its duration the producer's, else the sum of its parts).
    fn complete_open(
        &mut self,
        c: Container,
        duration_90k: Option<u64>,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> Option<Pushed> {
        let o = self.renditions[c].open.take()?;
        let mut meta = o.meta;
        if let Some(d) = duration_90k {
            meta.duration_90k = d;
        }
        let counted = meta.len_bytes;
        let chunks = o
            .bodies
            .iter()
            .flat_map(|b| b.chunks.iter().cloned())
            .collect();
        Some(self.list(
            c,
            meta,
            chunks,
            o.bodies,
            counted,
            o.arrival_unix_ms,
            0,
            now,
            wall,
            cfg,
        ))
    }

    /// Lists every open segment as it is (the publisher is gone); growing parts are given up
    /// (their bytes wait in `abandoned` for the store to release).
    fn close_open(&mut self, now: Instant, wall: SystemTime, cfg: &EdgeConfig) -> Vec<Pushed> {
        for c in Container::ALL {
            let d = self.renditions[c].abandon_growing();
            self.abandoned.extend(d);
        }
        Container::ALL
            .into_iter()
            .filter_map(|c| self.complete_open(c, None, now, wall, cfg))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn list(
        &mut self,
        c: Container,
        meta: SegmentMeta,
        chunks: Vec<Bytes>,
        part_bodies: Vec<Arc<StoredBody>>,
        counted_bytes: u64,
        arrival_unix_ms: u64,
        init_bytes: u64,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> Pushed {
        let td = self.target_duration_s.unwrap_or(1);
        let life_id = self.life_id;
        let r = &mut self.renditions[c];
        let ctype = content_type(c, &r.info);
        let len_bytes = meta.len_bytes;
        let media_sequence = r.list(meta, arrival_unix_ms, counted_bytes);
        r.slide(now, cfg.window_segments, td);
        let etag = format!("\"s{life_id:x}-{}{media_sequence:x}\"", c.name());
        let body = StoredBody::new(chunks, part_bodies, etag, wall, ctype);
        let mut dropped = Vec::new();
        self.enforce_stream_budget(cfg.max_bytes_per_stream, &mut dropped);
        self.render_all(wall);
        Pushed {
            container: c,
            media_sequence,
            body,
            dropped,
            added_bytes: len_bytes.saturating_sub(counted_bytes) + init_bytes,
        }
    }

    /// Over `max_bytes`, drops bodies in eviction order across this stream's containers.
    fn enforce_stream_budget(&mut self, max_bytes: u64, dropped: &mut Vec<Dropped>) {
        while self.bytes_held() > max_bytes {
            let Some(c) = self.eviction_candidate().map(|(_, c)| c) else {
                break;
            };
            if self.renditions[c].drop_oldest(dropped).is_none() {
                break;
            }
        }
    }

    /// This stream's first body to give up for a budget, and its container.
    pub fn eviction_candidate(&self) -> Option<(Candidate, Container)> {
        Container::ALL
            .into_iter()
            .filter_map(|c| Some((self.renditions[c].eviction_candidate()?, c)))
            .min()
    }

    /// Drops one body of `container` for the store-wide budget and re-renders if the playlist
    /// changed.
    pub fn drop_oldest_and_render(
        &mut self,
        container: Container,
        wall: SystemTime,
        out: &mut Vec<Dropped>,
    ) -> bool {
        match self.renditions[container].drop_oldest(out) {
            Some(listed) => {
                if listed {
                    let (ctx, renditions) = self.split_for_render(wall);
                    renditions[container].render(&ctx);
                }
                true
            }
            None => false,
        }
    }

    /// Periodic work: grace expiry (ENDLIST), removal, availability expiry. Returns whether the
    /// whole entry can go (removed and nothing held).
    pub fn tick(
        &mut self,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
        dropped: &mut Vec<Dropped>,
    ) -> bool {
        if let Phase::Grace { since } = self.phase {
            if now.saturating_duration_since(since) >= cfg.grace_period {
                self.phase = Phase::Ended { since: now };
                self.render_all(wall);
            }
        }
        if let Phase::Ended { since } = self.phase {
            if now.saturating_duration_since(since) >= cfg.ended_retention {
                // §6.2.2: with ENDLIST, segments stay until removal + availability duration.
                self.phase = Phase::Removed;
                for c in Container::ALL {
                    self.renditions[c].retire_all(now);
                }
            }
        }
        for c in Container::ALL {
            self.renditions[c].expire(now, dropped);
        }
        self.is_removable()
    }

    /// The render context and the renditions to render with it (disjoint borrows).
    fn split_for_render(
        &mut self,
        wall: SystemTime,
    ) -> (RenderContext<'_>, &mut PerContainer<Rendition>) {
        let ctx = RenderContext {
            target_duration_s: self.target_duration_s.unwrap_or(1),
            part_target_ms: self.part_target_ms.filter(|pt| self.low_latency && *pt > 0),
            reports: &self.reports,
            ended: matches!(self.phase, Phase::Ended { .. }),
            life_id: self.life_id,
            wall,
        };
        (ctx, &mut self.renditions)
    }

    fn render_all(&mut self, wall: SystemTime) {
        if self.phase == Phase::Removed {
            return;
        }
        let (ctx, renditions) = self.split_for_render(wall);
        for c in Container::ALL {
            renditions[c].render(&ctx);
        }
    }

    /// Removed and nothing left to serve: the entry itself can go.
    pub fn is_removable(&self) -> bool {
        self.phase == Phase::Removed
            && self.renditions.ts.is_empty()
            && self.renditions.cmaf.is_empty()
    }

    pub fn summary(&self, app: &str, stream: &str) -> Option<StreamSummary> {
        let state = self.state()?;
        let containers = self.renditions.map(|_, r| r.summary());
        let primary = self.primary();
        let p = &containers[primary.unwrap_or(Container::Ts)];
        Some(StreamSummary {
            app: app.to_string(),
            stream: stream.to_string(),
            state,
            primary_container: primary,
            segments: p.segments,
            segments_held: p.segments_held,
            bytes_held: self.bytes_held(),
            target_duration_s: self.target_duration_s,
            part_target_ms: self.part_target_ms,
            media_sequence: p.media_sequence,
            discontinuity_sequence: p.discontinuity_sequence,
            playlist_duration_ms: p.playlist_duration_ms,
            last_segment_unix_ms: p.last_segment_unix_ms,
            info: p.info.clone(),
            containers,
        })
    }
}
