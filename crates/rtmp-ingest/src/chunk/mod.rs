//! The RTMP chunk stream (RTMP §5.3–5.4): decoder and encoder.
//!
//! ```text
//! chunk = basic header (1-3 bytes: fmt:2 | csid:6 [+ 1-2 bytes])
//!       + message header (fmt 0: 11, fmt 1: 7, fmt 2: 3, fmt 3: 0 bytes)
//!       + [extended timestamp u32 when the 24-bit field is 0xFFFFFF]
//!       + min(chunk size, bytes left in the message) payload bytes
//! ```

pub mod decoder;
pub mod encoder;

use bytes::Bytes;

pub use decoder::ChunkDecoder;
pub use encoder::ChunkEncoder;

/// Chunk stream id (2..=65599 on the wire; 2 carries protocol control).
pub type ChunkStreamId = u32;
/// Message stream id (0 = NetConnection).
pub type MessageStreamId = u32;

/// Message type ids (RTMP §5.4, §7.1).
pub mod message_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const AMF3_DATA: u8 = 15;
    pub const AMF3_SHARED_OBJECT: u8 = 16;
    pub const AMF3_COMMAND: u8 = 17;
    pub const AMF0_DATA: u8 = 18;
    pub const AMF0_SHARED_OBJECT: u8 = 19;
    pub const AMF0_COMMAND: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// One complete RTMP message, body assembled once and frozen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: ChunkStreamId,
    pub timestamp_ms: u32,
    pub type_id: u8,
    pub stream_id: MessageStreamId,
    pub payload: Bytes,
}

/// The 24-bit timestamp value that announces an extended timestamp.
pub const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;
/// Chunk size before any Set Chunk Size.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

#[cfg(test)]
mod tests;
