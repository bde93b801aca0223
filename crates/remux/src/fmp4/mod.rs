//! Fragmented MP4 / CMAF writer (ISO/IEC 14496-12, ISO/IEC 23000-19, as HLS uses it per
//! RFC 8216bis §3.1.2): initialization segments, `styp`, and `moof`+`mdat` chunks. Sans-IO and
//! infallible: configuration records arrive already parsed and checked (see [`crate::codec`],
//! [`crate::avc`], [`crate::aac`]), and sample data is passed through as `Bytes` without a copy.
//!
//! * [`write_init`]: `ftyp` + `moov` for a set of tracks ([`TrackConfig`]), one contiguous `Bytes`.
//! * [`write_styp`]: the `styp` box that opens a media segment (put it before the first chunk).
//! * [`write_fragment`]: one `moof` + `mdat` for one or more tracks ([`Fragment`]), returned as
//!   a list of `Bytes`: first the box headers, then every sample piece unchanged. An LL-HLS
//!   part is one such chunk; a segment is `styp` + its parts.
//!
//! Every `Bytes` inside a [`SampleEntry`] is a configuration box *payload* written verbatim:
//! `avcC`, `hvcC`, `av1C` are the records as Enhanced RTMP carries them; `vpcC` includes its
//! FullBox version (1) and flags ([`crate::codec::vp9::Vp9Config::box_payload`]); `dOps` is
//! built from the OpusHead ([`crate::codec::opus::OpusConfig::dops`]); AAC passes the
//! AudioSpecificConfig, which goes into `esds`.
//!
//! Samples are in ISO BMFF sample format: length-prefixed NAL units for AVC/HEVC (exactly the
//! RTMP payload: no Annex B, no AUD), a temporal unit of OBUs for AV1, a frame (or superframe)
//! for VP9, one raw AAC frame, one MP3 frame, one Opus packet.
//!
//! Times: `base_media_decode_time` and durations are in the track's timescale (90 000 for video
//! is usual; the sample rate for AAC/MP3; 48 000 for Opus); the composition offset is signed
//! (`trun` version 1), so a B-frame stream with negative CTS needs no presentation delay.

mod boxes;
mod fragment;
mod init;

use bytes::Bytes;

pub use fragment::{
    sample_flags, write_fragment, write_styp, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS,
};
pub use init::write_init;

use crate::avc::AvcConfig;
use crate::codec::{av1::Av1Config, hevc::HevcConfig, opus::OpusConfig, vp9::Vp9Config};

/// The codec-specific part of a track's sample description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleEntry {
    /// `avc1` + `avcC` (the AVCDecoderConfigurationRecord).
    Avc {
        avcc: Bytes,
        width: u16,
        height: u16,
    },
    /// `hvc1` + `hvcC` (the HEVCDecoderConfigurationRecord).
    Hevc {
        hvcc: Bytes,
        width: u16,
        height: u16,
    },
    /// `av01` + `av1C` (the AV1CodecConfigurationRecord).
    Av1 {
        av1c: Bytes,
        width: u16,
        height: u16,
    },
    /// `vp09` + `vpcC` (FullBox version 1 header + VPCodecConfigurationRecord).
    Vp9 {
        vpcc: Bytes,
        width: u16,
        height: u16,
    },
    /// `mp4a` + `esds` with objectTypeIndication 0x40 and the AudioSpecificConfig.
    Aac {
        asc: Bytes,
        channels: u16,
        sample_rate_hz: u32,
    },
    /// `mp4a` + `esds` with objectTypeIndication 0x6B (MPEG-1/2 audio, ISO/IEC 11172-3).
    Mp3 { channels: u16, sample_rate_hz: u32 },
    /// `Opus` + `dOps` (the box payload); the track timescale should be 48 000.
    Opus { dops: Bytes, channels: u16 },
}

/// Clamps a decoded dimension into the 16-bit sample entry field.
fn dim_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl SampleEntry {
    /// `avc1` from a parsed AVCDecoderConfigurationRecord; the size comes from its SPS (0x0 if
    /// the SPS did not parse: decoders take the size from the bitstream).
    pub fn from_avc(config: &AvcConfig) -> SampleEntry {
        let (w, h) = config
            .sps_info
            .as_ref()
            .map_or((0, 0), |s| (s.width, s.height));
        SampleEntry::Avc {
            avcc: config.raw.clone(),
            width: dim_u16(w),
            height: dim_u16(h),
        }
    }

    /// `hvc1` from a parsed HEVCDecoderConfigurationRecord.
    pub fn from_hevc(config: &HevcConfig) -> SampleEntry {
        SampleEntry::Hevc {
            hvcc: config.raw.clone(),
            width: dim_u16(config.width),
            height: dim_u16(config.height),
        }
    }

    /// `av01` from a parsed AV1CodecConfigurationRecord; the size is the sequence header's
    /// maximum frame size (0x0 if the record carries no sequence header).
    pub fn from_av1(config: &Av1Config) -> SampleEntry {
        let (w, h) = config.dimensions().unwrap_or((0, 0));
        SampleEntry::Av1 {
            av1c: config.raw.clone(),
            width: dim_u16(w),
            height: dim_u16(h),
        }
    }

    /// `vp09` from a parsed VPCodecConfigurationRecord and the size of a keyframe
    /// ([`Vp9Config::frame_size`]), since the record has none.
    pub fn from_vp9(config: &Vp9Config, width: u32, height: u32) -> SampleEntry {
        SampleEntry::Vp9 {
            vpcc: config.box_payload.clone(),
            width: dim_u16(width),
            height: dim_u16(height),
        }
    }

    /// `Opus` from a parsed OpusHead.
    pub fn from_opus(config: &OpusConfig) -> SampleEntry {
        SampleEntry::Opus {
            dops: config.dops.clone(),
            channels: u16::from(config.channels),
        }
    }

    /// `(width, height)` for video entries, `None` for audio.
    pub fn video_size(&self) -> Option<(u16, u16)> {
        match self {
            SampleEntry::Avc { width, height, .. }
            | SampleEntry::Hevc { width, height, .. }
            | SampleEntry::Av1 { width, height, .. }
            | SampleEntry::Vp9 { width, height, .. } => Some((*width, *height)),
            _ => None,
        }
    }
}

/// One track of an initialization segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    /// track_ID (non-zero, unique in the file).
    pub track_id: u32,
    /// Media timescale (ticks per second) for `mdhd` and every time in the fragments.
    pub timescale: u32,
    /// The sample description.
    pub entry: SampleEntry,
    /// ISO-639-2/T language, lower-case letters (`None` → `und`).
    pub language: Option<[u8; 3]>,
}

/// One access unit, already in ISO BMFF sample format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The sample's bytes as zero-copy pieces (e.g. the RTMP payload after its tag header).
    pub data: Vec<Bytes>,
    /// Duration in the track timescale.
    pub duration: u32,
    /// Presentation time minus decode time, in the track timescale; may be negative.
    pub composition_offset: i32,
    /// A sync sample (keyframe / random access point). Audio samples are all sync.
    pub is_sync: bool,
}

/// The samples of one track in one chunk.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// The track these samples belong to (as in the init segment).
    pub track_id: u32,
    /// Decode time of the first sample, in the track timescale (`tfdt`, 64-bit).
    pub base_media_decode_time: u64,
    /// The samples in decode order.
    pub samples: &'a [Sample],
}

#[cfg(test)]
mod tests;
