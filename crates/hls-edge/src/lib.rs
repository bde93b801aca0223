//! Sluice's HLS edge: an in-memory store of live media playlists and MPEG-TS segments and the
//! axum router that serves them to players and CDNs (draft-pantos-hls-rfc8216bis, cited as RFC 8216bis:
//! §4 playlist format, §6.2 server responsibilities, Appendix B.1 caching).
//!
//! Data flow: the binary calls [`Store::begin_publish`] when a publisher starts and pushes each
//! complete segment through [`StreamHandle::push_segment`]; the store renders the playlist once
//! per change and keeps segment bodies (immutable [`bytes::Bytes`] chunks) in a byte-bounded
//! `moka` cache; [`router`] serves both without copying. A janitor task
//! ([`Store::spawn_janitor`]) ends playlists after the grace period, removes them after the
//! ended retention and drops segments when their availability duration is over.
//!
//! Policies (details on the items):
//! * A playlist is served (else 404) once it lists at least one segment.
//! * The window holds `window_segments` segments but never less than 3 target durations.
//! * `#EXT-X-TARGETDURATION` is pinned by the first segment of a playlist life.
//! * `#EXT-X-PROGRAM-DATE-TIME` is anchored on the arrival time of the first segment of a
//!   publish and after every discontinuity, then advanced by the listed durations.
//! * A segment that leaves the playlist stays downloadable for its duration plus the longest
//!   playlist that contained it, counted from the moment it left.

pub mod config;
pub mod error;
pub mod http;
mod playlist;
mod routes;
mod store;
mod stream;

pub use config::EdgeConfig;
pub use error::EdgeError;
pub use routes::{router, Edge};
pub use store::{Store, StreamHandle};
pub use stream::{NewSegment, StreamInfo, StreamState, StreamSummary};
