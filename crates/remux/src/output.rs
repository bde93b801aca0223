//! What the remuxer emits: init segments, LL-HLS parts and segments per container
//! (RFC 8216bis §3.1, §4.4.4.9), warnings, codec descriptions (RFC 6381 `CODECS`) and counters.

use std::sync::Arc;

use bytes::Bytes;

use crate::TagKind;

/// The container of a part, segment or init segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Container {
    Ts,
    Cmaf,
}

/// A CMAF initialization segment (`ftyp`+`moov`); a new version follows every configuration
/// change and the next segment is a discontinuity.
#[derive(Clone, Debug)]
pub struct InitSegment {
    pub container: Container,
    /// 1, 2, ...: segments name the version they need (`Segment::init_version`).
    pub version: u32,
    pub bytes: Bytes,
    pub codec: Arc<CodecInfo>,
}

/// Video track description.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    pub codec: &'static str,
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
    /// From the SPS VUI, else measured from timestamps once a GOP has been seen.
    pub frame_rate: Option<f64>,
}

/// Audio track description.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AudioInfo {
    pub codec: &'static str,
    pub sample_rate_hz: u32,
    pub channels: u8,
    /// MPEG-4 audio object type (AAC only).
    pub object_type: Option<u8>,
}

/// Tracks of the stream, for playlists and stats.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CodecInfo {
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// RFC 6381 `CODECS`, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
}

/// One CMAF chunk (ISO/IEC 23000-19 §7.3.2.3: `moof`+`mdat`, `styp` before the first of a
/// segment) of the part being written, emitted as soon as its samples are final. The chunks of
/// a part, in order, concatenated, are exactly the part's bytes ([`Part::chunks`] holds the same
/// `Bytes`); a [`RemuxOutput::Part`] closes the part after its last chunk. CMAF only.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub container: Container,
    /// The segment and part (0-based within the segment) this chunk belongs to, numbered as in
    /// [`Part`].
    pub segment_sequence: u64,
    pub part_index: u32,
    /// The chunk: box headers, then sample data pieces (not copied).
    pub bytes: Vec<Bytes>,
    /// Starts with a sync sample of the lead track (always for audio only).
    pub independent: bool,
}

/// A finished part (LL-HLS partial segment).
#[derive(Clone, Debug)]
pub struct Part {
    pub container: Container,
    pub segment_sequence: u64,
    pub index: u32,
    /// The part's bytes; concatenated they are the part (zero-copy pieces for CMAF).
    pub chunks: Vec<Bytes>,
    pub duration_90k: u64,
    pub independent: bool,
    /// The segment this part belongs to starts with `#EXT-X-DISCONTINUITY` (known when its
    /// first part is written, so the edge can list the tag before the first `EXT-X-PART`).
    pub discontinuity: bool,
    /// Wall-clock arrival of the segment's first frame (as `Segment::first_arrival_ms`).
    pub segment_first_arrival_ms: u64,
    /// With this part the segment reached its target duration: the next lead keyframe starts a
    /// new segment (lets the edge predict the next part's name for `EXT-X-PRELOAD-HINT`).
    pub segment_target_reached: bool,
}

/// A finished segment; `parts` concatenated are the segment bytes.
#[derive(Clone, Debug)]
pub struct Segment {
    pub container: Container,
    /// 0-based within this Remuxer, per container.
    pub sequence: u64,
    pub parts: Vec<Bytes>,
    pub len: usize,
    pub duration_90k: u64,
    /// First DTS (first PTS for audio-only) on the unwrapped 90 kHz output timeline
    /// (RTMP ms × 90 + 63000, rebased after jumps); the TS carries it modulo 2^33.
    pub first_dts_90k: u64,
    /// Starts with a keyframe (false only after a forced cut).
    pub independent: bool,
    pub discontinuity: bool,
    /// The EXT-X-TARGETDURATION the playlist must state; fixed for the Remuxer's lifetime.
    pub target_duration_s: u32,
    /// PART-TARGET of the parts (ms).
    pub part_target_ms: u32,
    /// The init segment version it needs (CMAF; 0 for TS).
    pub init_version: u32,
    pub first_arrival_ms: u64,
    pub codec: Arc<CodecInfo>,
    /// The segment's first keyframe as a byte range of the segment, decodable on its own (TS:
    /// from PAT/PMT through the keyframe's last packet; CMAF: the first `moof`+`mdat`, with the
    /// init segment): the entry of the I-frame playlist. `None` without video or when the
    /// segment does not start with a keyframe.
    pub keyframe_range: Option<crate::ByteRange>,
}

/// Things the operator should know about; none stops the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum RemuxWarning {
    /// The measured keyframe interval does not fit the segment target (reported once).
    GopExceedsTarget { gop_ms: u32, target_ms: u32 },
    /// A track uses a codec we do not remux; it is ignored (reported once per codec).
    UnsupportedCodec { kind: TagKind, codec: String },
    /// Timestamps jumped; a discontinuity follows. Values are output-timeline ms.
    TimestampJump { from_ms: u64, to_ms: u64 },
    /// A segment was cut without a keyframe.
    ForcedCut { sequence: u64, reason: &'static str },
    /// A new sequence header with different parameters; applied with a discontinuity.
    CodecChanged { kind: TagKind },
}

/// What [`Remuxer::poll_output`](crate::Remuxer::poll_output) returns.
#[derive(Clone, Debug)]
pub enum RemuxOutput {
    Init(InitSegment),
    /// A CMAF chunk of the open part (before the part's own event).
    Chunk(Chunk),
    Part(Part),
    Segment(Segment),
    Warning(RemuxWarning),
}

/// Counters for the stats API and metrics.
#[derive(Clone, Debug, Default)]
pub struct RemuxStats {
    pub video_frames_in: u64,
    pub audio_frames_in: u64,
    pub keyframes: u64,
    pub gop_ms_last: Option<u32>,
    pub gop_ms_max: Option<u32>,
    pub gop_exceeds_target: bool,
    pub segments: u64,
    pub parts: u64,
    pub forced_cuts: u64,
    pub discontinuities: u64,
    pub timestamp_jumps: u64,
    /// DTS nudged forward to keep a track strictly increasing.
    pub timestamps_nudged: u64,
    /// Presentation delay added because of negative composition times.
    pub pts_delay_ms: u32,
    /// Sum of the dropped_* counters.
    pub dropped_frames: u64,
    pub dropped_before_keyframe: u64,
    pub dropped_before_config: u64,
    pub dropped_errors: u64,
    pub dropped_unsupported: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub target_duration_s: Option<u32>,
    pub codec: Option<Arc<CodecInfo>>,
    /// At most [`MAX_UNSUPPORTED_CODECS_LISTED`] names (each logged once).
    pub unsupported_codecs: Vec<String>,
    /// Unsupported-codec tags whose name did not fit in the list.
    pub unsupported_codecs_unlisted: u64,
}

/// Distinct unsupported codec names remembered (and logged) per stream.
pub const MAX_UNSUPPORTED_CODECS_LISTED: usize = 8;
