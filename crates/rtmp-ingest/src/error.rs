//! The crate's one error type, grouped by who is at fault (house style "Errors and logs").
//!
//! Every variant that comes from peer input carries enough context to find the bad bytes in a
//! capture: chunk stream id, message type id, byte offset and a capped hex excerpt.

use std::fmt;

/// At most this many bytes are kept in a [`HexExcerpt`].
pub const EXCERPT_BYTES: usize = 16;

/// A short, capped hex dump of the bytes around an error (never more than [`EXCERPT_BYTES`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexExcerpt {
    bytes: [u8; EXCERPT_BYTES],
    len: u8,
}

impl HexExcerpt {
    /// Copies up to [`EXCERPT_BYTES`] bytes from the start of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut bytes = [0u8; EXCERPT_BYTES];
        let len = data.len().min(EXCERPT_BYTES);
        bytes[..len].copy_from_slice(&data[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// Copies up to [`EXCERPT_BYTES`] bytes starting at `offset` (empty if out of range).
    pub fn at(data: &[u8], offset: usize) -> Self {
        Self::of(data.get(offset..).unwrap_or(&[]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Display for HexExcerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HexExcerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{self}]")
    }
}

/// Who is at fault for an [`IngestError`]; used for metrics labels and log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The peer broke the protocol (malformed bytes).
    PeerProtocol,
    /// A well-formed message arrived at a time it is not allowed.
    WrongTime,
    /// A feature we do not implement (RTMPE, AMF3 objects, ...).
    Unsupported,
    /// A configured limit was exceeded (sizes, counts, deadlines).
    Limit,
    /// The socket failed.
    Io,
}

/// The session deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// `handshake_to_publish_timeout`: from accept until a publish was accepted.
    HandshakeToPublish,
    /// `idle_timeout`: no media while publishing (or after unpublishing).
    Idle,
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HandshakeToPublish => "handshake_to_publish_timeout",
            Self::Idle => "idle_timeout",
        })
    }
}

/// Everything that can end an RTMP connection.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    // ---- peer protocol violations ----
    /// C0 carried something other than 3 (plain RTMP).
    #[error("handshake: C0 version {version} is not 3 (plain RTMP)")]
    BadVersion { version: u8 },

    /// A chunk header was malformed or inconsistent with the chunk stream's state.
    #[error("chunk stream {csid}: {reason} at byte offset {offset} [{excerpt}]")]
    MalformedChunk {
        csid: u32,
        reason: &'static str,
        offset: u64,
        excerpt: HexExcerpt,
    },

    /// A message body was malformed (control payload, aggregate, command).
    #[error("message type {type_id} on chunk stream {csid}: {reason} at body offset {offset} [{excerpt}]")]
    MalformedMessage {
        csid: u32,
        type_id: u8,
        reason: String,
        offset: usize,
        excerpt: HexExcerpt,
    },

    /// AMF0 data was malformed (offset is relative to the decoded buffer).
    #[error("AMF0: {reason} at offset {offset} [{excerpt}]")]
    Amf0 {
        reason: &'static str,
        offset: usize,
        excerpt: HexExcerpt,
    },

    /// Set Chunk Size carried 0 or a value with the top bit set.
    #[error("Set Chunk Size {size} is invalid (0 or top bit set)")]
    InvalidChunkSize { size: u32 },

    // ---- valid message at the wrong time ----
    /// A well-formed command or message that is not allowed in the current state.
    #[error("{what} is not allowed while {state}")]
    UnexpectedMessage { what: String, state: &'static str },

    // ---- unsupported ----
    /// Something we recognise but do not implement.
    #[error("unsupported: {what}")]
    Unsupported { what: String },

    // ---- limits ----
    /// A configured size or count limit was exceeded (checked before allocating).
    #[error("{limit} exceeded: {value} > {max} (chunk stream {csid:?}, message type {type_id:?})")]
    LimitExceeded {
        limit: &'static str,
        value: u64,
        max: u64,
        csid: Option<u32>,
        type_id: Option<u8>,
    },

    /// A deadline passed (`handshake_to_publish_timeout`, `idle_timeout`).
    #[error("{deadline} passed after {elapsed_ms} ms")]
    Timeout { deadline: Deadline, elapsed_ms: u64 },

    // ---- io ----
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl IngestError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            Self::BadVersion { .. }
            | Self::MalformedChunk { .. }
            | Self::MalformedMessage { .. }
            | Self::Amf0 { .. }
            | Self::InvalidChunkSize { .. } => Fault::PeerProtocol,
            Self::UnexpectedMessage { .. } => Fault::WrongTime,
            Self::Unsupported { .. } => Fault::Unsupported,
            Self::LimitExceeded { .. } | Self::Timeout { .. } => Fault::Limit,
            Self::Io(_) => Fault::Io,
        }
    }

    /// A short stable label for metrics (`reason` label values).
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadVersion { .. } => "bad_version",
            Self::MalformedChunk { .. } => "malformed_chunk",
            Self::MalformedMessage { .. } => "malformed_message",
            Self::Amf0 { .. } => "malformed_amf0",
            Self::InvalidChunkSize { .. } => "invalid_chunk_size",
            Self::UnexpectedMessage { .. } => "unexpected_message",
            Self::Unsupported { .. } => "unsupported",
            Self::LimitExceeded { .. } => "limit_exceeded",
            Self::Timeout { .. } => "timeout",
            Self::Io(_) => "io",
        }
    }

    pub(crate) fn limit(limit: &'static str, value: u64, max: u64) -> Self {
        Self::LimitExceeded {
            limit,
            value,
            max,
            csid: None,
            type_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_capped_and_formatted() {
        let cases: &[(&[u8], &str)] = &[
            (&[], ""),
            (&[0x03], "03"),
            (&[0xde, 0xad, 0xbe, 0xef], "de ad be ef"),
            (&[0xff; 40], &"ff ".repeat(16)[..47]),
        ];
        for (input, want) in cases {
            assert_eq!(HexExcerpt::of(input).to_string(), *want);
        }
        assert_eq!(HexExcerpt::at(&[1, 2, 3], 5).as_bytes(), &[] as &[u8]);
    }

    #[test]
    fn faults() {
        assert_eq!(
            IngestError::BadVersion { version: 6 }.fault(),
            Fault::PeerProtocol
        );
        assert_eq!(IngestError::limit("x", 2, 1).fault(), Fault::Limit);
    }
}
