//! One stream's playlist state, sans IO: live window, media and discontinuity sequence numbers,
//! program date-times, grace / ended / removed life cycle and segment availability
//! (RFC 8216bis §6.2.1 live playlists, §6.2.2 live window and availability). Time is passed in.
//!
//! ```text
//!  begin ──► Live ──end──► Grace ──grace_period──► Ended (ENDLIST) ──ended_retention──► Removed
//!             ▲              │                        │                                   │
//!             └── begin ─────┴──────── begin ─────────┘     begin (new life, numbers go on)┘
//! ```
//! Segment bodies live elsewhere (the moka cache); this state says which ones must be held and
//! hands back the ones to drop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use crate::config::EdgeConfig;
use crate::playlist::{self, PlaylistView, SegmentMeta};

/// A complete segment handed over by the publisher side.
#[derive(Clone, Debug)]
pub struct NewSegment {
    /// The segment body as immutable chunks (e.g. the remuxer's parts); served without copying.
    pub chunks: Vec<Bytes>,
    pub duration_90k: u64,
    /// The media timeline restarts here (timestamp jump, codec change): `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Starts with a keyframe and parameter sets.
    pub independent: bool,
    /// The target duration the producer cut for; pins `#EXT-X-TARGETDURATION` on the first segment.
    pub target_duration_s: u32,
    /// Wall-clock time the segment's first frame arrived (anchors `#EXT-X-PROGRAM-DATE-TIME`).
    pub arrival_unix_ms: u64,
}

/// Free-form description of a stream the binary fills (codec, resolution, ...), shown by the API.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamInfo {
    /// RFC 6381 codecs string, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Option<String>,
    pub video: Option<serde_json::Value>,
    pub audio: Option<serde_json::Value>,
    pub extra: serde_json::Value,
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

/// What the API shows about one playlist.
#[derive(Clone, Debug, Serialize)]
pub struct StreamSummary {
    pub app: String,
    pub stream: String,
    pub state: StreamState,
    /// Segments listed in the playlist.
    pub segments: usize,
    /// Segments whose bodies are held (listed plus those still in their availability period).
    pub segments_held: usize,
    pub bytes_held: u64,
    pub target_duration_s: Option<u32>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// Sum of the listed segments' durations.
    pub playlist_duration_ms: u64,
    pub last_segment_unix_ms: Option<u64>,
    pub info: StreamInfo,
}

/// A rendered playlist, shared with requests by `Arc` clone.
#[derive(Debug)]
pub(crate) struct RenderedPlaylist {
    pub body: Bytes,
    pub gzip: Bytes,
    /// Strong ETag (quoted) of the identity body; the gzip body's ETag is `etag_gzip`.
    pub etag: String,
    pub etag_gzip: String,
    pub last_modified: SystemTime,
    /// Response header values, formatted once per change rather than once per request.
    pub headers: PlaylistHeaders,
}

/// Header values of a rendered playlist.
#[derive(Debug)]
pub(crate) struct PlaylistHeaders {
    pub etag: http::HeaderValue,
    pub etag_gzip: http::HeaderValue,
    pub last_modified: http::HeaderValue,
    pub cache_control: http::HeaderValue,
    pub content_length: http::HeaderValue,
    pub content_length_gzip: http::HeaderValue,
}

/// A segment body whose bytes must be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub media_sequence: u64,
    pub len_bytes: u64,
}

/// See [`StreamCore::eviction_candidate`]; smaller goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    expires_at: Instant,
}

/// Sequence numbers a removed playlist leaves behind so the same URL never reuses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Continuation {
    pub next_media_sequence: u64,
    pub discontinuity_sequence: u64,
}

#[derive(Debug)]
pub(crate) struct StreamCore {
    pub phase: Phase,
    /// Which publish owns the stream; pushes from older handles are ignored.
    pub publish_epoch: u64,
    target_duration_s: Option<u32>,
    window: VecDeque<Listed>,
    retired: VecDeque<Retired>,
    next_media_sequence: u64,
    discontinuity_sequence: u64,
    /// The next segment gets `#EXT-X-DISCONTINUITY` (set by a reconnect).
    pending_discontinuity: bool,
    segments_in_life: u64,
    /// (unix ms, 90 kHz ticks since) for `#EXT-X-PROGRAM-DATE-TIME`; `None` re-anchors.
    pdt_anchor: Option<(u64, u64)>,
    /// First segment arrival of this playlist life: makes ETags unique across restarts.
    life_id: u64,
    version: u64,
    pub bytes_held: u64,
    rendered: Option<Arc<RenderedPlaylist>>,
    last_segment_unix_ms: Option<u64>,
    warned_over_target: bool,
    pub info: StreamInfo,
}

pub(crate) fn duration_from_90k(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(100_000) / 9)
}

impl StreamCore {
    pub fn new(cont: Continuation, info: StreamInfo) -> Self {
        Self {
            phase: Phase::Live,
            publish_epoch: 1,
            target_duration_s: None,
            window: VecDeque::new(),
            retired: VecDeque::new(),
            next_media_sequence: cont.next_media_sequence,
            discontinuity_sequence: cont.discontinuity_sequence,
            pending_discontinuity: false,
            segments_in_life: 0,
            pdt_anchor: None,
            life_id: 0,
            version: 0,
            bytes_held: 0,
            rendered: None,
            last_segment_unix_ms: None,
            warned_over_target: false,
            info,
        }
    }

    pub fn target_duration_s(&self) -> Option<u32> {
        self.target_duration_s
    }

    pub fn rendered(&self) -> Option<Arc<RenderedPlaylist>> {
        self.rendered.clone()
    }

    pub fn state(&self) -> Option<StreamState> {
        match self.phase {
            Phase::Live => Some(StreamState::Live),
            Phase::Grace { .. } => Some(StreamState::Grace),
            Phase::Ended { .. } => Some(StreamState::Ended),
            Phase::Removed => None,
        }
    }

    pub fn continuation(&self) -> Continuation {
        // A removed playlist's window is empty, so this is the sequence of its next segment.
        Continuation {
            next_media_sequence: self.next_media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
        }
    }

    /// A publisher starts. Returns the new publish epoch.
    ///
    /// * Live (takeover), Grace or Ended: the same playlist continues; ENDLIST is dropped and the
    ///   next segment carries `#EXT-X-DISCONTINUITY`; TARGETDURATION stays pinned.
    /// * Removed: a new playlist life (new target duration allowed), numbering continues.
    pub fn begin(&mut self, info: StreamInfo, wall: SystemTime) -> u64 {
        self.publish_epoch += 1;
        self.info = info;
        match self.phase {
            Phase::Removed => {
                self.target_duration_s = None;
                self.segments_in_life = 0;
                self.pending_discontinuity = false;
                self.warned_over_target = false;
                self.phase = Phase::Live;
            }
            Phase::Ended { .. } => {
                self.pending_discontinuity = true;
                self.phase = Phase::Live;
                self.render(wall);
            }
            Phase::Live | Phase::Grace { .. } => {
                self.pending_discontinuity = true;
                self.phase = Phase::Live;
            }
        }
        self.pdt_anchor = None;
        self.publish_epoch
    }

    /// The publisher of `epoch` left: grace period starts.
    pub fn end(&mut self, epoch: u64, now: Instant) {
        if epoch == self.publish_epoch && self.phase == Phase::Live {
            self.phase = Phase::Grace { since: now };
        }
    }

    /// Shutdown: ENDLIST now, detach any publisher.
    pub fn end_now(&mut self, now: Instant, wall: SystemTime) {
        if matches!(self.phase, Phase::Live | Phase::Grace { .. }) {
            self.publish_epoch += 1;
            self.phase = Phase::Ended { since: now };
            self.render(wall);
        }
    }

    /// Whether a push from the publisher of `epoch` would be taken.
    pub fn accepts(&self, epoch: u64) -> bool {
        epoch == self.publish_epoch && self.phase == Phase::Live
    }

    /// Accepts a complete segment from the publisher of `epoch`. Returns its media sequence
    /// number (the caller stores the body under it before releasing the lock) and the bodies to
    /// drop, or `None` if the publisher is no longer the owner.
    pub fn push(
        &mut self,
        epoch: u64,
        seg: &NewSegment,
        len_bytes: u64,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> Option<(u64, Vec<Dropped>)> {
        if !self.accepts(epoch) {
            return None;
        }
        let td = *self
            .target_duration_s
            .get_or_insert(seg.target_duration_s.max(1));
        if playlist::rounded_seconds(seg.duration_90k) > u64::from(td) && !self.warned_over_target {
            self.warned_over_target = true;
            tracing::warn!(
                target_duration_s = td,
                duration_ms = seg.duration_90k / 90,
                "segment longer than the pinned target duration; listing it anyway"
            );
        }
        let media_sequence = self.next_media_sequence;
        self.next_media_sequence += 1;
        let discontinuity =
            (seg.discontinuity || self.pending_discontinuity) && self.segments_in_life > 0;
        self.pending_discontinuity = false;
        if self.segments_in_life == 0 {
            self.life_id = seg.arrival_unix_ms;
        }
        self.segments_in_life += 1;
        let (anchor_ms, since_90k) = match self.pdt_anchor {
            Some(a) if !seg.discontinuity => a,
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
            },
            longest_playlist_90k: 0,
        });
        self.bytes_held += len_bytes;
        self.last_segment_unix_ms = Some(seg.arrival_unix_ms);

        let mut dropped = Vec::new();
        self.slide(now, cfg, td);
        self.enforce_stream_budget(cfg.max_bytes_per_stream, &mut dropped);
        self.render(wall);
        Some((media_sequence, dropped))
    }

    fn playlist_duration_90k(&self) -> u64 {
        self.window.iter().map(|l| l.meta.duration_90k).sum()
    }

    /// Removes segments from the front while more than `window_segments` are listed and the
    /// rest still holds at least 3 target durations (RFC 8216bis §6.2.2).
    fn slide(&mut self, now: Instant, cfg: &EdgeConfig, td: u32) {
        let min_90k = 3 * u64::from(td) * 90_000;
        let mut total = self.playlist_duration_90k();
        while self.window.len() > cfg.window_segments.max(1) {
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
                expires_at: now + keep,
            });
        }
    }

    fn pop_front(&mut self) -> Option<Listed> {
        let l = self.window.pop_front()?;
        if l.meta.discontinuity {
            self.discontinuity_sequence += 1;
        }
        Some(l)
    }

    fn enforce_stream_budget(&mut self, max_bytes: u64, dropped: &mut Vec<Dropped>) {
        while self.bytes_held > max_bytes {
            match self.drop_oldest() {
                Some(d) => dropped.push(d),
                None => break,
            }
        }
    }

    /// Drops the oldest held body: a retired one if any, else the first listed one (never the
    /// last listed segment). The caller re-renders if a listed one went.
    pub fn drop_oldest(&mut self) -> Option<Dropped> {
        let d = if let Some(r) = self.retired.pop_front() {
            Dropped {
                media_sequence: r.media_sequence,
                len_bytes: r.len_bytes,
            }
        } else if self.window.len() > 1 {
            let l = self.pop_front()?;
            Dropped {
                media_sequence: l.meta.media_sequence,
                len_bytes: l.meta.len_bytes,
            }
        } else {
            return None;
        };
        self.bytes_held -= d.len_bytes;
        Some(d)
    }

    /// Which body this stream would give up first for the store-wide budget, as an ordering key:
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

    /// Drops one body for the store-wide budget and re-renders if the playlist changed.
    pub fn drop_oldest_and_render(&mut self, wall: SystemTime) -> Option<Dropped> {
        let listed = self.retired.is_empty();
        let d = self.drop_oldest()?;
        if listed {
            self.render(wall);
        }
        Some(d)
    }

    /// Periodic work: grace expiry (ENDLIST), removal, availability expiry. Returns the bodies to
    /// drop and whether the whole entry can go (removed and nothing held).
    pub fn tick(
        &mut self,
        now: Instant,
        wall: SystemTime,
        cfg: &EdgeConfig,
    ) -> (Vec<Dropped>, bool) {
        if let Phase::Grace { since } = self.phase {
            if now.saturating_duration_since(since) >= cfg.grace_period {
                self.phase = Phase::Ended { since: now };
                self.render(wall);
            }
        }
        if let Phase::Ended { since } = self.phase {
            if now.saturating_duration_since(since) >= cfg.ended_retention {
                // §6.2.2: with ENDLIST, segments stay until removal + availability duration.
                self.phase = Phase::Removed;
                self.rendered = None;
                while !self.window.is_empty() {
                    self.retire_front(now);
                }
            }
        }
        let mut dropped = Vec::new();
        self.retired.retain(|r| {
            let keep = r.expires_at > now;
            if !keep {
                dropped.push(Dropped {
                    media_sequence: r.media_sequence,
                    len_bytes: r.len_bytes,
                });
            }
            keep
        });
        for d in &dropped {
            self.bytes_held -= d.len_bytes;
        }
        let removable =
            self.phase == Phase::Removed && self.retired.is_empty() && self.window.is_empty();
        (dropped, removable)
    }

    fn render(&mut self, wall: SystemTime) {
        let Some(td) = self.target_duration_s else {
            return;
        };
        if self.window.is_empty() {
            self.rendered = None;
            return;
        }
        let ended = matches!(self.phase, Phase::Ended { .. });
        let text = playlist::render(&PlaylistView {
            target_duration_s: td,
            media_sequence: self.window[0].meta.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: self.window.iter().map(|l| &l.meta).collect(),
            ended,
        });
        self.version += 1;
        let body = Bytes::from(text);
        let gzip = playlist::gzip(&body);
        let etag = format!("\"p{:x}-{:x}\"", self.life_id, self.version);
        let etag_gzip = format!("\"p{:x}-{:x}-gz\"", self.life_id, self.version);
        let hv = |s: &str| {
            http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static(""))
        };
        let headers = PlaylistHeaders {
            etag: hv(&etag),
            etag_gzip: hv(&etag_gzip),
            last_modified: hv(&httpdate::fmt_http_date(wall)),
            cache_control: hv(&format!(
                "public, max-age={}",
                crate::routes::playlist_max_age_s(td, ended)
            )),
            content_length: http::HeaderValue::from(body.len()),
            content_length_gzip: http::HeaderValue::from(gzip.len()),
        };
        self.rendered = Some(Arc::new(RenderedPlaylist {
            gzip,
            body,
            etag,
            etag_gzip,
            last_modified: wall,
            headers,
        }));
    }

    /// Removed and nothing left to serve: the entry itself can go.
    pub fn is_removable(&self) -> bool {
        self.phase == Phase::Removed && self.retired.is_empty() && self.window.is_empty()
    }

    /// ETag of a segment body: playlist life + media sequence (strong, stable across requests).
    pub fn segment_etag(&self, media_sequence: u64) -> String {
        format!("\"s{:x}-{:x}\"", self.life_id, media_sequence)
    }

    pub fn summary(&self, app: &str, stream: &str) -> Option<StreamSummary> {
        Some(StreamSummary {
            app: app.to_string(),
            stream: stream.to_string(),
            state: self.state()?,
            segments: self.window.len(),
            segments_held: self.window.len() + self.retired.len(),
            bytes_held: self.bytes_held,
            target_duration_s: self.target_duration_s,
            media_sequence: self
                .window
                .front()
                .map_or(self.next_media_sequence, |l| l.meta.media_sequence),
            discontinuity_sequence: self.discontinuity_sequence,
            playlist_duration_ms: self.playlist_duration_90k() / 90,
            last_segment_unix_ms: self.last_segment_unix_ms,
            info: self.info.clone(),
        })
    }
}
