//! The one definition of FLV audio/video tag semantics as RTMP messages 8/9 carry them: the legacy
//! headers (Adobe FLV File Format Specification v10.1, "FLV", §E.4.2.1 AUDIODATA, §E.4.3.1 VIDEODATA)
//! and the Enhanced RTMP v2 headers (veovera "Enhanced RTMP" v2: ExVideoTagHeader,
//! ExAudioTagHeader, ModEx, Multitrack, FourCCs).
//!
//! Both `rtmp-ingest` (statistics, keyframe counts) and `remux` (the media pipeline) parse tags
//! here, so they agree by construction. No I/O, no allocation beyond one `Vec` of tracks per
//! message; track bodies are zero-copy slices of the message `Bytes`.
//!
//! ```text
//! legacy video : FrameType:4 | CodecID:4 | [AVCPacketType:8 | CompositionTime:si24] data
//! ex video     : 1 | FrameType:3 | PacketType:4 | (ModEx)* | [Multitrack] FourCC | track body
//! legacy audio : SoundFormat:4 | SoundRate:2 | SoundSize:1 | SoundType:1 | [AACPacketType:8] data
//! ex audio     : 9:4 | PacketType:4 | (ModEx)* | [Multitrack] FourCC | track body
//! multitrack   : AvMultitrackType:4 | PacketType:4 | [FourCC unless ManyTracksManyCodecs]
//!                ( [FourCC if ManyTracksManyCodecs] trackId:8 [sizeOfTrack:u24 unless OneTrack] body )+
//! ```
//!
//! Rules that used to drift between two copies and are now stated once:
//! - frame type 4 (generated keyframe) is a keyframe like 1; frame type 5 is a command frame
//!   (one command byte, no media) unless the packet is Metadata;
//! - legacy CodecID 12 is HEVC (the pre-E-RTMP extension: same layout as CodecID 7 with an
//!   HEVCDecoderConfigurationRecord as sequence header);
//! - every track of a multitrack message is returned, addressable by its track id; the default
//!   track is track 0, else the lowest id ([`Tag::default_track`]);
//! - only avc1/hvc1/vvc1 `CodedFrames` carry an SI24 composition time; `CodedFramesX` means 0;
//! - `.mp3` (and legacy MP3, AC-3, E-AC-3) has no sequence header ([`Codec::has_sequence_start`]).

mod error;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use bytes::Bytes;

pub use error::FlvTagError;
pub use parse::{inspect, parse, parse_audio, parse_video};

/// Hard cap on the tracks of one multitrack message (the format allows 256). A message naming
/// more is refused with [`FlvTagError::TooManyTracks`].
pub const MAX_TRACKS_PER_MESSAGE: usize = 16;

/// Hard cap on chained ModEx blocks in one message (each is at least two bytes; real encoders
/// send at most one, TimestampOffsetNano).
pub const MAX_MODEX_BLOCKS: usize = 8;

/// RTMP message type 8 (audio) or 9 (video).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Media {
    Audio,
    Video,
}

impl Media {
    pub fn name(self) -> &'static str {
        match self {
            Media::Audio => "audio",
            Media::Video => "video",
        }
    }
}

/// A FourCC as it appears on the wire (big-endian ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// Video codec named by a tag header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy CodecID 7 or `avc1`.
    Avc,
    /// Legacy CodecID 12 or `hvc1`.
    Hevc,
    /// `av01`.
    Av1,
    /// `vp09`.
    Vp9,
    /// `vp08`.
    Vp8,
    /// `vvc1`.
    Vvc,
    /// Another legacy CodecID (2 Sorenson H.263, 3 screen video, 4 VP6, 5 VP6 alpha, 6 screen v2).
    Legacy(u8),
    /// A FourCC this crate does not know.
    Unknown(FourCc),
}

/// Audio codec named by a tag header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Legacy SoundFormat 10 or `mp4a`.
    Aac,
    /// Legacy SoundFormat 2 / 14 (MP3 8 kHz) or `.mp3`.
    Mp3,
    /// `Opus`.
    Opus,
    /// `fLaC`.
    Flac,
    /// `ac-3`.
    Ac3,
    /// `ec-3`.
    Eac3,
    /// Another legacy SoundFormat (PCM, ADPCM, Nellymoser, G.711, Speex, ...).
    Legacy(u8),
    /// A FourCC this crate does not know.
    Unknown(FourCc),
}

/// The codec of one track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    Video(VideoCodec),
    Audio(AudioCodec),
}

impl VideoCodec {
    pub fn from_fourcc(f: FourCc) -> Self {
        match &f.0 {
            b"avc1" => Self::Avc,
            b"hvc1" => Self::Hevc,
            b"av01" => Self::Av1,
            b"vp09" => Self::Vp9,
            b"vp08" => Self::Vp8,
            b"vvc1" => Self::Vvc,
            _ => Self::Unknown(f),
        }
    }

    /// Legacy VIDEODATA CodecID (FLV §E.4.3.1; 12 = HEVC extension).
    pub fn from_legacy_id(id: u8) -> Self {
        match id {
            7 => Self::Avc,
            12 => Self::Hevc,
            n => Self::Legacy(n),
        }
    }

    /// Only AVC, HEVC and VVC `CodedFrames` carry an SI24 composition time offset.
    pub fn carries_composition_time(self) -> bool {
        matches!(self, Self::Avc | Self::Hevc | Self::Vvc)
    }

    /// Short lower-case name for logs and statistics.
    pub fn name(self) -> String {
        match self {
            Self::Avc => "h264".into(),
            Self::Hevc => "hevc".into(),
            Self::Av1 => "av1".into(),
            Self::Vp9 => "vp9".into(),
            Self::Vp8 => "vp8".into(),
            Self::Vvc => "vvc".into(),
            Self::Legacy(n) => format!("flv-codec-{n}"),
            Self::Unknown(f) => f.to_string(),
        }
    }
}

impl AudioCodec {
    pub fn from_fourcc(f: FourCc) -> Self {
        match &f.0 {
            b"mp4a" => Self::Aac,
            b".mp3" => Self::Mp3,
            b"Opus" => Self::Opus,
            b"fLaC" => Self::Flac,
            b"ac-3" => Self::Ac3,
            b"ec-3" => Self::Eac3,
            _ => Self::Unknown(f),
        }
    }

    /// Legacy AUDIODATA SoundFormat (FLV §E.4.2.1).
    pub fn from_sound_format(format: u8) -> Self {
        match format {
            10 => Self::Aac,
            2 | 14 => Self::Mp3,
            n => Self::Legacy(n),
        }
    }

    /// Short lower-case name for logs and statistics.
    pub fn name(self) -> String {
        match self {
            Self::Aac => "aac".into(),
            Self::Mp3 => "mp3".into(),
            Self::Opus => "opus".into(),
            Self::Flac => "flac".into(),
            Self::Ac3 => "ac3".into(),
            Self::Eac3 => "eac3".into(),
            Self::Legacy(n) => format!("flv-sound-format-{n}"),
            Self::Unknown(f) => f.to_string(),
        }
    }
}

impl Codec {
    /// Whether the codec is configured by a `SequenceStart` (decoder configuration record,
    /// AudioSpecificConfig, OpusHead, ...). MP3, AC-3 and E-AC-3 are self-describing: their
    /// frames configure the track and a `SequenceStart` for them carries nothing to use.
    pub fn has_sequence_start(self) -> bool {
        match self {
            Codec::Video(v) => !matches!(v, VideoCodec::Legacy(_) | VideoCodec::Unknown(_)),
            Codec::Audio(a) => matches!(a, AudioCodec::Aac | AudioCodec::Opus | AudioCodec::Flac),
        }
    }

    /// The FourCC Enhanced RTMP uses for this codec, if it has one.
    pub fn fourcc(self) -> Option<FourCc> {
        let f: &[u8; 4] = match self {
            Codec::Video(VideoCodec::Avc) => b"avc1",
            Codec::Video(VideoCodec::Hevc) => b"hvc1",
            Codec::Video(VideoCodec::Av1) => b"av01",
            Codec::Video(VideoCodec::Vp9) => b"vp09",
            Codec::Video(VideoCodec::Vp8) => b"vp08",
            Codec::Video(VideoCodec::Vvc) => b"vvc1",
            Codec::Audio(AudioCodec::Aac) => b"mp4a",
            Codec::Audio(AudioCodec::Mp3) => b".mp3",
            Codec::Audio(AudioCodec::Opus) => b"Opus",
            Codec::Audio(AudioCodec::Flac) => b"fLaC",
            Codec::Audio(AudioCodec::Ac3) => b"ac-3",
            Codec::Audio(AudioCodec::Eac3) => b"ec-3",
            Codec::Video(VideoCodec::Unknown(f)) | Codec::Audio(AudioCodec::Unknown(f)) => {
                return Some(f)
            }
            Codec::Video(VideoCodec::Legacy(_)) | Codec::Audio(AudioCodec::Legacy(_)) => {
                return None
            }
        };
        Some(FourCc(*f))
    }

    /// Short lower-case name for logs and statistics.
    pub fn name(self) -> String {
        match self {
            Codec::Video(v) => v.name(),
            Codec::Audio(a) => a.name(),
        }
    }

    pub fn media(self) -> Media {
        match self {
            Codec::Video(_) => Media::Video,
            Codec::Audio(_) => Media::Audio,
        }
    }
}

/// VideoFrameType (FLV §E.4.3.1; Enhanced RTMP keeps the values, in 3 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 1: keyframe (seekable).
    Key,
    /// 2: inter frame.
    Inter,
    /// 3: disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: generated keyframe (server-side only); a keyframe for every purpose here.
    GeneratedKey,
    /// 5: video info/command frame.
    Command,
    /// 0, 6, 7 (and 8..15 in legacy headers): reserved; treated as inter frames.
    Reserved(u8),
}

impl FrameType {
    pub fn from_bits(v: u8) -> Self {
        match v {
            1 => Self::Key,
            2 => Self::Inter,
            3 => Self::DisposableInter,
            4 => Self::GeneratedKey,
            5 => Self::Command,
            n => Self::Reserved(n),
        }
    }

    /// Key (1) and generated key (4) are both random access points.
    pub fn is_key(self) -> bool {
        matches!(self, Self::Key | Self::GeneratedKey)
    }
}

/// What one track's payload in a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Codec configuration: avcC/hvcC/av1C/vpcC/vvcC, AudioSpecificConfig, OpusHead, ...
    /// (legacy AVCPacketType/AACPacketType 0, Enhanced PacketType 0).
    SequenceStart,
    /// Coded frames (legacy type 1; Enhanced `CodedFrames` and `CodedFramesX`).
    CodedFrames,
    /// End of sequence (legacy AVCPacketType 2, Enhanced `SequenceEnd`).
    SequenceEnd,
    /// Enhanced video `Metadata` (AMF `colorInfo`).
    Metadata,
    /// Enhanced video `MPEG2TSSequenceStart` (AV1 video descriptor instead of av1C).
    Mpeg2TsSequenceStart,
    /// Enhanced audio `MultichannelConfig`.
    MultichannelConfig,
}

/// One track's payload within a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// Enhanced RTMP track id; 0 (the default track) outside multitrack messages.
    pub track_id: u8,
    pub codec: Codec,
    pub packet: PacketKind,
    /// PTS − DTS in ms: the signed SI24 of AVC/HEVC/VVC `CodedFrames`, otherwise 0.
    pub composition_time_ms: i32,
    /// A video `CodedFrames` payload in a key (1) or generated key (4) frame message.
    pub is_keyframe: bool,
    /// The payload after every header (zero-copy slice of the message).
    pub body: Bytes,
}

/// One parsed audio or video message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub media: Media,
    /// The message used ExVideoTagHeader / ExAudioTagHeader.
    pub enhanced: bool,
    /// Video only.
    pub frame_type: Option<FrameType>,
    /// Enhanced RTMP ModEx TimestampOffsetNano (0..=999_999 ns to add to the message timestamp).
    pub timestamp_offset_ns: u32,
    /// The command byte of a video command frame (frame type 5): 0 seek start, 1 seek end.
    pub command: Option<u8>,
    /// Every track the message carries, in wire order. Empty for a command frame or for a
    /// zero-length audio message (silence).
    pub tracks: Vec<Track>,
}

impl Tag {
    /// A zero-length audio message: silence, not an error.
    pub fn is_silence(&self) -> bool {
        self.media == Media::Audio && self.tracks.is_empty()
    }

    /// The track with this id, if the message carries it.
    pub fn track(&self, track_id: u8) -> Option<&Track> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }

    /// The default track: track 0, else the lowest track id in the message.
    pub fn default_track(&self) -> Option<&Track> {
        self.track(0)
            .or_else(|| self.tracks.iter().min_by_key(|t| t.track_id))
    }

    /// A `Copy` summary of the default track (what ingest statistics need).
    pub fn info(&self) -> Option<TagInfo> {
        let t = self.default_track()?;
        let has_cts = matches!(t.codec, Codec::Video(v) if v.carries_composition_time())
            && t.packet == PacketKind::CodedFrames;
        Some(TagInfo {
            codec: t.codec,
            packet: t.packet,
            is_sequence_header: t.packet == PacketKind::SequenceStart,
            is_sequence_end: t.packet == PacketKind::SequenceEnd,
            is_keyframe: t.is_keyframe,
            track_id: t.track_id,
            track_count: u8::try_from(self.tracks.len()).unwrap_or(u8::MAX),
            enhanced: self.enhanced,
            composition_time_ms: has_cts.then_some(t.composition_time_ms),
        })
    }
}

/// What ingest records about one message: the default track's header, plus the track count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagInfo {
    pub codec: Codec,
    pub packet: PacketKind,
    /// `SequenceStart` (codec configuration).
    pub is_sequence_header: bool,
    /// `SequenceEnd`.
    pub is_sequence_end: bool,
    /// A coded video frame in a key or generated-key message.
    pub is_keyframe: bool,
    /// The default track's id (0 unless the message is multitrack without track 0).
    pub track_id: u8,
    /// How many tracks the message carries.
    pub track_count: u8,
    pub enhanced: bool,
    /// The composition time offset where the format carries one (AVC/HEVC/VVC coded frames).
    pub composition_time_ms: Option<i32>,
}
