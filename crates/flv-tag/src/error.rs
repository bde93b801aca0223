//! The crate's single error type: every way an FLV audio/video tag body (FLV E.4.2.1, E.4.3.1;
//! Enhanced RTMP v2 "ExVideoTagHeader"/"ExAudioTagHeader") can be refused, with the byte offset
//! and a capped hex excerpt so the tag can be found in a capture.

/// Maximum number of bytes rendered into an error's hex excerpt.
const EXCERPT_MAX: usize = 16;

/// Hex excerpt of at most 16 bytes starting at `offset` (clamped to the slice).
pub(crate) fn excerpt(data: &[u8], offset: usize) -> String {
    let start = offset.min(data.len());
    let end = start.saturating_add(EXCERPT_MAX).min(data.len());
    data[start..end]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a tag body was refused. All variants are the peer's fault: the body does not follow the
/// FLV / Enhanced RTMP layout, or exceeds a hard limit of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvTagError {
    /// The body ends before a field the header says is there.
    #[error("truncated {media} tag: {what} at offset {offset} [{excerpt}]")]
    Truncated {
        media: &'static str,
        what: &'static str,
        offset: usize,
        excerpt: String,
    },
    /// A field holds a value the specification reserves.
    #[error("reserved {what} {value} in {media} tag at offset {offset} [{excerpt}]")]
    Reserved {
        media: &'static str,
        what: &'static str,
        value: u8,
        offset: usize,
        excerpt: String,
    },
    /// A multitrack message names more tracks than [`crate::MAX_TRACKS_PER_MESSAGE`].
    #[error("{media} multitrack message with more than {limit} tracks (offset {offset})")]
    TooManyTracks {
        media: &'static str,
        limit: usize,
        offset: usize,
    },
    /// The same track id twice in one multitrack message.
    #[error("{media} multitrack message names track {track_id} twice (offset {offset})")]
    DuplicateTrack {
        media: &'static str,
        track_id: u8,
        offset: usize,
    },
    /// More ModEx blocks than [`crate::MAX_MODEX_BLOCKS`].
    #[error("{media} tag with more than {limit} ModEx blocks")]
    TooManyModEx { media: &'static str, limit: usize },
}
