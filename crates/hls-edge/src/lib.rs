//! Sluice's HLS edge: an in-memory store of live media playlists, one per container (MPEG-TS
//! and fMP4/CMAF) of each stream, with their segments, parts and init segments, and the axum
//! router that serves them to players and CDNs (HLS, "RFC 8216bis" = draft-pantos-hls-rfc8216bis:
//! §3 segment formats, §4 playlist format, §6.2 server responsibilities, Appendix B.1 caching).
//!
//! Data flow: the binary calls [`Store::begin_publish`] when a publisher starts (declaring the
//! target duration and part target), declares the containers it produces and their typed
//! description with [`StreamHandle::set_media`], and pushes each complete segment of each
//! container through [`StreamHandle::push_segment`] (its parts as immutable [`bytes::Bytes`],
//! plus the init segment for CMAF). For Low-Latency HLS the CMAF parts come one by one first
//! ([`StreamHandle::push_part`]): each is listed and downloadable at once, and requests blocked
//! on it (`_HLS_msn`/`_HLS_part`, the preload-hinted part) are woken by one notification;
//! `push_segment` then completes the segment from them. The store renders each playlist once per change and keeps
//! segment bodies in a byte-bounded `moka` cache; [`router`] serves both without copying. A
//! janitor task ([`Store::spawn_janitor`]) ends playlists after the grace period, removes them
//! after the ended retention and drops segments when their availability duration is over. Time
//! comes from an injected [`Clock`].
//!
//! The edge never parses media: containers, codecs and durations are what the producer says.
//!
//! Policies (details on the items):
//! * A playlist is served (else 404) once it lists at least one segment.
//! * `index.m3u8` serves the TS playlist when the producer makes TS, else the CMAF one;
//!   `cmaf.m3u8` always serves the CMAF one.
//! * The window holds `window_segments` segments but never less than 3 target durations.
//! * `#EXT-X-TARGETDURATION` is what the producer declared at the first publish of a playlist
//!   life; it never changes during that life.
//! * `#EXT-X-PROGRAM-DATE-TIME` is anchored on the arrival time of the first segment of a
//!   publish and after every discontinuity, then advanced by the listed durations.
//! * A segment that leaves the playlist stays downloadable for its duration plus the longest
//!   playlist that contained it, counted from the moment it left.
//! * Segment, part and init names (`seg-N.ts`, `seg-N.m4s`, `part-N.P.m4s`, `init-N.mp4`) are
//!   never reused for other bytes: numbers only grow, across reconnects and playlist lives; a
//!   segment left open by a publisher that leaves is listed with the parts it has.
//! * Low-Latency (CMAF, `EdgeConfig::low_latency`): `PART-TARGET` and `PART-HOLD-BACK` (3 part
//!   targets) are pinned with the target duration for the playlist's life; `CAN-SKIP-UNTIL` is
//!   6 target durations; parts are listed for the segments within 3 target durations of the
//!   end; a blocked request waits at most 3 target durations (then 503).

mod body;
pub mod clock;
pub mod config;
pub mod error;
mod eviction;
pub mod group;
mod growing;
pub mod http;
pub mod iframes;
mod ll;
pub mod media;
mod playlist;
mod rendition;
mod routes;
mod store;
mod stream;

pub use clock::{Clock, Now, SimClock, TokioClock};
pub use config::EdgeConfig;
pub use error::EdgeError;
pub use group::{GroupKind, GroupMemberSummary, GroupSummary, RenditionReport};
pub use iframes::{iframe_playlist_name, ByteRange};
pub use media::{
    AudioCodec, AudioInfo, Bandwidth, Container, PerContainer, PublishParams, Resume, StreamInfo,
    VideoCodec, VideoInfo,
};
pub use rendition::Continuation;
pub use rendition::RenditionSummary;
pub use routes::{playlist_max_age_s, router, Edge};
pub use store::{Store, StreamHandle};
pub use stream::{NewPart, NewSegment, PartDone, SegmentStart, StreamState, StreamSummary};
