//! The crate's single error type (house style: one `thiserror` enum, grouped by who is at fault,
//! every variant carrying enough context — tag timestamp, byte offset, a capped hex excerpt — to
//! find the offending tag in a capture).

use crate::TagKind;

/// Maximum number of payload bytes rendered into an error's hex excerpt.
const EXCERPT_MAX: usize = 16;

/// Hex excerpt of at most 16 bytes starting at `offset` (clamped to the slice).
pub(crate) fn excerpt(data: &[u8], offset: usize) -> String {
    let start = offset.min(data.len());
    let end = start.saturating_add(EXCERPT_MAX).min(data.len());
    let mut s = String::with_capacity((end - start) * 3);
    for (i, b) in data.get(start..end).unwrap_or(&[]).iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Everything that can go wrong while remuxing one tag. An error affects only the tag that
/// caused it; the [`crate::Remuxer`] keeps going.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RemuxError {
    /// The peer sent bytes that do not parse (truncated header, bad length, reserved value).
    #[error("malformed {what} in {kind:?} tag at {timestamp_ms} ms, offset {offset}: {reason} [{excerpt}]")]
    Malformed {
        kind: TagKind,
        what: &'static str,
        reason: &'static str,
        timestamp_ms: u32,
        offset: usize,
        excerpt: String,
    },
    /// The FLV / Enhanced RTMP tag header does not parse (see `flv_tag`).
    #[error("bad tag header at {timestamp_ms} ms: {source}")]
    Tag {
        timestamp_ms: u32,
        source: flv_tag::FlvTagError,
    },
    /// A NAL unit length runs past the end of the frame; the frame is dropped.
    #[error("NAL unit overrun in video tag at {timestamp_ms} ms, offset {offset}: length {nal_len} > {remaining} remaining [{excerpt}]")]
    NalOverrun {
        timestamp_ms: u32,
        offset: usize,
        nal_len: usize,
        remaining: usize,
        excerpt: String,
    },
    /// A configured limit was exceeded (frame size, NAL count, segment size).
    #[error("{what} limit exceeded in {kind:?} tag at {timestamp_ms} ms: {value} > {limit}")]
    LimitExceeded {
        kind: TagKind,
        what: &'static str,
        timestamp_ms: u32,
        value: usize,
        limit: usize,
    },
    /// A coded frame arrived before its track's sequence header; it is dropped.
    #[error("{kind:?} frame at {timestamp_ms} ms before any sequence header")]
    NotConfigured { kind: TagKind, timestamp_ms: u32 },
    /// Valid but unsupported media (codec, channel layout…); the track is ignored.
    #[error("unsupported {kind:?} feature at {timestamp_ms} ms: {what}")]
    Unsupported {
        kind: TagKind,
        what: String,
        timestamp_ms: u32,
    },
}

impl From<flv_tag::FlvTagError> for RemuxError {
    fn from(source: flv_tag::FlvTagError) -> Self {
        RemuxError::Tag {
            timestamp_ms: 0,
            source,
        }
    }
}

impl RemuxError {
    /// Builds a [`RemuxError::Malformed`] with the timestamp left at 0; see [`Self::at`].
    pub(crate) fn malformed(
        kind: TagKind,
        what: &'static str,
        reason: &'static str,
        data: &[u8],
        offset: usize,
    ) -> Self {
        RemuxError::Malformed {
            kind,
            what,
            reason,
            timestamp_ms: 0,
            offset,
            excerpt: excerpt(data, offset),
        }
    }

    /// Fills in the tag timestamp (parsers do not know it).
    pub(crate) fn at(mut self, ts: u32) -> Self {
        match &mut self {
            RemuxError::Malformed { timestamp_ms, .. }
            | RemuxError::NalOverrun { timestamp_ms, .. }
            | RemuxError::LimitExceeded { timestamp_ms, .. }
            | RemuxError::NotConfigured { timestamp_ms, .. }
            | RemuxError::Unsupported { timestamp_ms, .. }
            | RemuxError::Tag { timestamp_ms, .. } => *timestamp_ms = ts,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_capped_and_clamped() {
        let data: Vec<u8> = (0..40).collect();
        assert_eq!(excerpt(&data, 0).split(' ').count(), 16);
        assert_eq!(excerpt(&data, 38), "26 27");
        assert_eq!(excerpt(&data, 100), "");
    }
}
