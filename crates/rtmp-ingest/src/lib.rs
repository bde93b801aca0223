//! Sluice RTMP ingest: a sans-IO RTMP server core (handshake, chunk stream, AMF0, publish
//! sessions, Enhanced RTMP codec recognition) plus a thin tokio driver in [`server`].
//!
//! ```text
//! TcpStream ─► server (tokio, no protocol decisions) ─► session::Session (sans-IO)
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
pub mod handshake;
pub mod message;
pub mod query;
pub mod server;
pub mod session;

/// The shared FLV / Enhanced RTMP tag semantics ([`IngestTag::info`] is a [`flv_tag::TagInfo`]).
pub use flv_tag;

use std::net::SocketAddr;
use std::time::Duration;

pub use config::IngestConfig;
pub use error::IngestError;
pub use server::{serve, IngestCounters};

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

/// A publish waiting for the binary's decision.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    pub connection_id: u64,
    pub peer: SocketAddr,
    pub app: String,
    /// The publish name without its query string.
    pub stream: String,
    /// Percent-decoded query parameters of the publish name (stream keys: never log the values).
    pub params: Vec<(String, String)>,
    pub tc_url: Option<String>,
    /// The driver closes the connection when this is cancelled ("kick publisher").
    pub kick: tokio_util::sync::CancellationToken,
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

/// Implemented by the binary.
pub trait IngestHandler: Send + Sync + 'static {
    type Sink: MediaSink;
    /// Decide on a publish before NetStream.Publish.Start is sent. May await (webhooks).
    fn authorize(
        &self,
        request: PublishRequest,
    ) -> impl std::future::Future<Output = Result<Self::Sink, PublishRefusal>> + Send;
}

/// Receives the tags of one accepted publish.
pub trait MediaSink: Send + 'static {
    /// Called synchronously from the connection task for every tag, in arrival order. Must not block.
    fn on_tag(&mut self, tag: IngestTag);
    /// The publisher left (unpublish, deleteStream, disconnect, error, timeout, kick or shutdown). Called exactly once.
    fn on_close(self, summary: PublishSummary);
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
