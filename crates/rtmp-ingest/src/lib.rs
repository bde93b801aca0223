//! Sluice RTMP: a sans-IO RTMP server core (handshake, chunk stream, AMF0, publisher and player
//! sessions, Enhanced RTMP codec recognition, the player queue and join cache) plus, behind the
//! default `driver` feature, a thin tokio connection actor in [`server`] and the player
//! fan-out channel in [`fanout`] (RTMP = Adobe RTMP Specification 1.0, 21 Dec 2012).
//!
//! The split follows `quinn-proto`/`quinn`: built with `default-features = false` the crate has
//! no tokio dependency at all and no tokio type in its API; the driver feeds the same
//! [`session::Session`] whether the bytes come from TCP, TLS or RTMPT polling.
//!
//! ```text
//! TCP | TLS | RTMPT pipe ─► server (tokio, no protocol decisions) ─► session::Session (sans-IO)
//!                                                        ├─ handshake::Handshake
//!                                                        ├─ chunk::ChunkDecoder / ChunkEncoder
//!                                                        ├─ message (control, user control, aggregate)
//!                                                        ├─ amf0 (commands, metadata)
//!                                                        └─ flv_tag (codec / keyframe / sequence header)
//!           IngestHandler::authorize ◄── PublishRequested      MediaSink::on_tag ◄── Tag
//! ```
//! Invariants: peer input never panics; every length from the wire is checked against
//! [`IngestConfig`] before allocating; each message body is assembled once and passed on as
//! `Bytes`; stream keys (publish query parameters) are never logged.

pub mod amf0;
pub mod chunk;
pub mod config;
pub mod error;
#[cfg(feature = "driver")]
pub mod fanout;
pub mod handshake;
pub mod message;
pub mod play;
pub mod query;
pub mod rtmpt;
#[cfg(feature = "driver")]
pub mod server;
pub mod session;

/// The shared FLV / Enhanced RTMP tag semantics ([`IngestTag::info`] is a [`flv_tag::TagInfo`]).
pub use flv_tag;

use std::time::Duration;

pub use config::IngestConfig;
pub use error::IngestError;
#[cfg(feature = "driver")]
pub use server::{
    serve, IngestCounters, IngestHandler, MediaSink, PlayAccepted, PlayRequest, PublishRequest,
};

/// One media or script message of an accepted publish, exactly the FLV tag body RTMP carried.
#[derive(Clone, Debug)]
pub struct IngestTag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub payload: bytes::Bytes,
    pub info: Option<flv_tag::TagInfo>,
}

/// FLV tag types 8, 9, 18.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

impl TagKind {
    /// The FLV tag type / RTMP message type.
    pub fn type_id(self) -> u8 {
        match self {
            Self::Audio => 8,
            Self::Video => 9,
            Self::Script => 18,
        }
    }
}

/// Why a publish was refused. The string is sent to the client as the `onStatus` description
/// and must not contain stream keys.
#[derive(Clone, Debug)]
pub enum PublishRefusal {
    /// `NetStream.Publish.BadName`
    BadName(String),
    /// `NetStream.Publish.Unauthorized`
    Unauthorized(String),
}

/// Why a play was refused (sent as an error `onStatus`; no tokens in the text).
#[derive(Clone, Debug)]
pub enum PlayRefusal {
    /// `NetStream.Play.StreamNotFound`
    NotFound(String),
    /// `NetStream.Play.Failed` (bad or missing play key, webhook denied)
    Unauthorized(String),
    /// `NetStream.Play.Failed` (player caps)
    Failed(String),
}

/// How a publish ended.
#[derive(Clone, Debug)]
pub struct PublishSummary {
    pub reason: CloseReason,
    pub duration: Duration,
    /// Bytes received on the connection since the publish was accepted.
    pub bytes_received: u64,
    pub audio_tags: u64,
    pub video_tags: u64,
    /// Video key frames (sequence headers not counted).
    pub keyframes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Unpublished,
    Disconnected,
    ProtocolError(String),
    IdleTimeout,
    Kicked,
    Shutdown,
}
