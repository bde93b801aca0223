//! Codec configuration records for the Enhanced RTMP codecs, as carried in a SequenceStart
//! message and stored in an ISO BMFF sample entry: HEVC (ISO/IEC 14496-15 §8.3.3.1), AV1
//! (AV1 Codec ISO Media File Format Binding §2.3), VP9 (VP Codec ISO Media File Format Binding
//! §2.2) and Opus (RFC 7845 §5.1 in, Encapsulation of Opus in ISO BMFF §4.3.2 out).
//!
//! Every parser here is sans-IO and bounded: each length is checked against the bytes actually
//! present before it is used, counts never size an allocation on their own (vectors grow only
//! as elements are really read), and no input panics (each has a fuzz target). A parser copies
//! the record once into a [`bytes::Bytes`] (`raw`); parameter sets are zero-copy slices of it.
//!
//! Each config offers `codec_string()`: the RFC 6381 `CODECS` value for HLS playlists.

pub mod av1;
pub mod bits;
pub mod hevc;
pub mod opus;
pub mod vp9;

use crate::{RemuxError, TagKind};

/// A malformed-record error for the video record `what` at byte `offset` of `data`.
pub(crate) fn bad_video(
    what: &'static str,
    reason: &'static str,
    data: &[u8],
    offset: usize,
) -> RemuxError {
    RemuxError::malformed(TagKind::Video, what, reason, data, offset)
}

/// A malformed-record error for the audio record `what` at byte `offset` of `data`.
pub(crate) fn bad_audio(
    what: &'static str,
    reason: &'static str,
    data: &[u8],
    offset: usize,
) -> RemuxError {
    RemuxError::malformed(TagKind::Audio, what, reason, data, offset)
}
