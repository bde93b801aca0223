//! Stage 1 of the pipeline: FLV / Enhanced RTMP tracks (parsed by `flv-tag`) to
//! container-neutral access units with their decoder configuration, per track id.
//!
//! * Video samples stay in ISO/IEC 14496-15 §5.3.2 / §8.3.2 sample format (length-prefixed NAL
//!   units for AVC/HEVC), an AV1 temporal unit of OBUs (AV1-ISOBMFF §2.4), a VP9 frame (VP Codec
//!   ISO Media File Format Binding §3); audio is one raw AAC frame (ISO/IEC 14496-3 §1.6), one
//!   MP3 frame (ISO/IEC 11172-3 §2.4.1), one Opus packet (RFC 7845 §3). Containers convert
//!   (the TS writer adds Annex B start codes and ADTS headers); nothing is copied here.
//! * Configuration: avcC, hvcC, av1C, vpcC, AudioSpecificConfig, OpusHead parse once per
//!   `SequenceStart`; MP3 is configured by its frame header. A changed record is reported as a
//!   [`ConfigChange`] so the writers start a new init segment with a discontinuity.
//! * Timing: the RTMP millisecond timestamp is unwrapped per track across the 2^32 ms wrap
//!   (RTMP 1.0 §5.3.1.1 serial arithmetic) into an `i64`; jump detection is per track
//!   (see [`crate::cmaf`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use flv_tag::{AudioCodec, Codec, Media, PacketKind, Tag, Track, VideoCodec};

use crate::aac::{self, AacConfig, Mp3Info};
use crate::avc::AvcConfig;
use crate::codec::{av1::Av1Config, hevc::HevcConfig, opus, opus::OpusConfig, vp9::Vp9Config};
use crate::fmp4::SampleEntry;
use crate::RemuxError;

/// Tracks of one media type whose configuration is remembered (ids are u8; this bounds the map
/// and the bytes of configuration records it holds).
pub const MAX_TRACKS_PER_MEDIA: usize = 16;

/// A track's decoder configuration.
#[derive(Clone, Debug)]
pub enum DecoderConfig {
    Avc(AvcConfig),
    Hevc(HevcConfig),
    Av1(Av1Config),
    /// vpcC has no dimensions: they come from the first keyframe's uncompressed header.
    Vp9(Vp9Config, Option<(u32, u32)>),
    Aac(AacConfig),
    Mp3(Mp3Info),
    Opus(OpusConfig),
}

/// Two configurations are equal when their records are (an AVC record is compared as bytes).
impl PartialEq for DecoderConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Avc(a), Self::Avc(b)) => a.raw == b.raw,
            (Self::Hevc(a), Self::Hevc(b)) => a == b,
            (Self::Av1(a), Self::Av1(b)) => a == b,
            (Self::Vp9(a, x), Self::Vp9(b, y)) => a == b && x == y,
            (Self::Aac(a), Self::Aac(b)) => a == b,
            (Self::Mp3(a), Self::Mp3(b)) => a == b,
            (Self::Opus(a), Self::Opus(b)) => a == b,
            _ => false,
        }
    }
}

impl DecoderConfig {
    pub fn media(&self) -> Media {
        match self {
            Self::Avc(_) | Self::Hevc(_) | Self::Av1(_) | Self::Vp9(..) => Media::Video,
            _ => Media::Audio,
        }
    }

    /// Track timescale: 90 kHz for video, the sample rate for AAC/MP3, 48 kHz for Opus
    /// (RFC 7845 §4, Opus in ISOBMFF §4.3).
    pub fn timescale(&self) -> u32 {
        match self {
            Self::Aac(c) => c.sample_rate_hz.max(1),
            Self::Mp3(m) => m.sample_rate_hz.max(1),
            Self::Opus(_) => 48_000,
            _ => 90_000,
        }
    }

    /// The fMP4 sample entry; `None` until a VP9 keyframe gave the dimensions.
    pub fn sample_entry(&self) -> Option<SampleEntry> {
        Some(match self {
            Self::Avc(c) => SampleEntry::from_avc(c),
            Self::Hevc(c) => SampleEntry::from_hevc(c),
            Self::Av1(c) => SampleEntry::from_av1(c),
            Self::Vp9(c, size) => {
                let (w, h) = (*size)?;
                SampleEntry::from_vp9(c, w, h)
            }
            Self::Aac(c) => SampleEntry::Aac {
                asc: c.raw.clone(),
                channels: u16::from(c.channels),
                sample_rate_hz: c.sample_rate_hz,
            },
            Self::Mp3(m) => SampleEntry::Mp3 {
                channels: u16::from(m.channels),
                sample_rate_hz: m.sample_rate_hz,
            },
            Self::Opus(c) => SampleEntry::from_opus(c),
        })
    }

    /// RFC 6381 codecs string as the fMP4 sample entry describes it.
    pub fn codec_string(&self) -> String {
        match self {
            Self::Avc(c) => c.codecs_string(),
            Self::Hevc(c) => c.codec_string(),
            Self::Av1(c) => c.codec_string(),
            Self::Vp9(c, _) => c.codec_string(),
            Self::Aac(c) => c.codecs_string(),
            // `mp4a` with objectTypeIndication 0x6B (MPEG-1 audio) in fMP4.
            Self::Mp3(_) => "mp4a.6B".into(),
            Self::Opus(c) => c.codec_string(),
        }
    }

    /// Short codec name for stats.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Avc(_) => "h264",
            Self::Hevc(_) => "hevc",
            Self::Av1(_) => "av1",
            Self::Vp9(..) => "vp9",
            Self::Aac(_) => "aac",
            Self::Mp3(_) => "mp3",
            Self::Opus(_) => "opus",
        }
    }

    /// Video width × height when known.
    pub fn video_size(&self) -> Option<(u32, u32)> {
        match self {
            Self::Avc(c) => c.sps_info.as_ref().map(|s| (s.width, s.height)),
            Self::Hevc(c) => Some((c.width, c.height)),
            Self::Av1(c) => c.dimensions(),
            Self::Vp9(_, s) => *s,
            _ => None,
        }
        .filter(|(w, h)| *w > 0 && *h > 0)
    }

    /// H.264, AAC and MP3 are the codecs the MPEG-TS writer carries.
    pub fn fits_ts(&self) -> bool {
        matches!(self, Self::Avc(_) | Self::Aac(_) | Self::Mp3(_))
    }

    /// Exact per-frame duration in the track timescale where the codec fixes it.
    fn frame_duration(&self, data: &[u8]) -> Option<u32> {
        match self {
            Self::Aac(c) => Some(c.samples_per_frame),
            Self::Mp3(m) => Some(m.samples_per_frame),
            Self::Opus(_) => opus::packet_duration_48k(data),
            _ => None,
        }
    }
}

/// One access unit of one track.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessUnit {
    pub media: Media,
    pub track_id: u8,
    /// Decode time, the RTMP timestamp unwrapped per track (ms; may exceed 2^32).
    pub dts_ms: i64,
    /// PTS − DTS in ms (signed; 0 for codecs without composition time).
    pub cts_ms: i32,
    /// Random access point (video keyframe; every audio frame).
    pub keyframe: bool,
    /// The sample, zero-copy.
    pub data: Bytes,
    /// Exact duration in the track timescale when the codec fixes it (audio).
    pub duration: Option<u32>,
}

/// A track got its first or a different configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigChange {
    pub media: Media,
    pub track_id: u8,
    pub config: DecoderConfig,
    /// False for the first configuration of the track.
    pub changed: bool,
}

/// What the stage emits for one tag.
#[derive(Clone, Debug, PartialEq)]
pub enum AuEvent {
    Config(ConfigChange),
    Unit(AccessUnit),
    /// A track uses a codec the pipeline does not write (reported per tag; the caller rate-limits).
    Unsupported {
        media: Media,
        track_id: u8,
        codec: Codec,
    },
}

#[derive(Default)]
struct TrackState {
    config: Option<DecoderConfig>,
    last_ts_ms: Option<u32>,
    unwrapped_ms: i64,
}

/// The access-unit stage for one stream: every track addressable by (media, track id).
#[derive(Default)]
pub struct AccessUnits {
    tracks: BTreeMap<(u8, u8), TrackState>,
    /// Tracks refused because [`MAX_TRACKS_PER_MEDIA`] were already known.
    pub tracks_refused: u64,
}

fn media_key(m: Media) -> u8 {
    match m {
        Media::Audio => 0,
        Media::Video => 1,
    }
}

impl AccessUnits {
    /// The configuration of a track, if it has one.
    pub fn config(&self, media: Media, track_id: u8) -> Option<&DecoderConfig> {
        self.tracks
            .get(&(media_key(media), track_id))?
            .config
            .as_ref()
    }

    /// Configured track ids of one media type, ascending.
    pub fn track_ids(&self, media: Media) -> impl Iterator<Item = u8> + '_ {
        self.tracks
            .iter()
            .filter(move |((m, _), s)| *m == media_key(media) && s.config.is_some())
            .map(|((_, id), _)| *id)
    }

    /// Feeds every track of one parsed message; events go to `out`.
    pub fn push(
        &mut self,
        tag: &Tag,
        timestamp_ms: u32,
        out: &mut Vec<AuEvent>,
    ) -> Result<(), RemuxError> {
        let mut first_err = None;
        for track in &tag.tracks {
            if let Err(e) = self.push_track(tag.media, track, timestamp_ms, out) {
                first_err.get_or_insert(e.at(timestamp_ms));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn state(&mut self, media: Media, track_id: u8) -> Option<&mut TrackState> {
        let key = (media_key(media), track_id);
        if !self.tracks.contains_key(&key) {
            let n = self.tracks.keys().filter(|k| k.0 == key.0).count();
            if n >= MAX_TRACKS_PER_MEDIA {
                self.tracks_refused += 1;
                return None;
            }
        }
        Some(self.tracks.entry(key).or_default())
    }

    fn push_track(
        &mut self,
        media: Media,
        t: &Track,
        timestamp_ms: u32,
        out: &mut Vec<AuEvent>,
    ) -> Result<(), RemuxError> {
        let supported = matches!(
            t.codec,
            Codec::Video(VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1 | VideoCodec::Vp9)
                | Codec::Audio(AudioCodec::Aac | AudioCodec::Mp3 | AudioCodec::Opus)
        );
        if !supported {
            if matches!(
                t.packet,
                PacketKind::SequenceStart | PacketKind::CodedFrames
            ) {
                out.push(AuEvent::Unsupported {
                    media,
                    track_id: t.track_id,
                    codec: t.codec,
                });
            }
            return Ok(());
        }
        let Some(state) = self.state(media, t.track_id) else {
            return Ok(());
        };
        let mut new_config = None;
        match t.packet {
            PacketKind::SequenceStart if t.codec.has_sequence_start() => {
                new_config = Some(parse_config(t.codec, &t.body)?);
            }
            PacketKind::CodedFrames => {}
            _ => return Ok(()),
        }
        if t.packet == PacketKind::CodedFrames && !t.body.is_empty() {
            match (&state.config, t.codec) {
                (_, Codec::Audio(AudioCodec::Mp3)) => {
                    let info = aac::parse_mp3_header(&t.body)?;
                    if state.config != Some(DecoderConfig::Mp3(info)) {
                        new_config = Some(DecoderConfig::Mp3(info));
                    }
                }
                (Some(DecoderConfig::Vp9(c, None)), _) if t.is_keyframe => {
                    if let Some(size) = Vp9Config::frame_size(&t.body) {
                        new_config = Some(DecoderConfig::Vp9(c.clone(), Some(size)));
                    }
                }
                _ => {}
            }
        }
        if let Some(mut c) = new_config {
            // A repeated VP9 record keeps the dimensions already learnt.
            if let (DecoderConfig::Vp9(nc, size @ None), Some(DecoderConfig::Vp9(oc, old))) =
                (&mut c, &state.config)
            {
                if nc == oc {
                    *size = *old;
                }
            }
            if state.config.as_ref() != Some(&c) {
                let vp9_size_learnt = matches!(
                    (&state.config, &c),
                    (Some(DecoderConfig::Vp9(a, None)), DecoderConfig::Vp9(b, Some(_))) if a == b
                );
                let changed = state.config.is_some() && !vp9_size_learnt;
                state.config = Some(c.clone());
                out.push(AuEvent::Config(ConfigChange {
                    media,
                    track_id: t.track_id,
                    config: c,
                    changed,
                }));
            }
        }
        if t.packet != PacketKind::CodedFrames || t.body.is_empty() {
            return Ok(());
        }
        let Some(config) = &state.config else {
            return Err(RemuxError::NotConfigured {
                kind: match media {
                    Media::Audio => crate::TagKind::Audio,
                    Media::Video => crate::TagKind::Video,
                },
                timestamp_ms,
            });
        };
        // A codec switch without a new sequence header: the frames do not match the config.
        if codec_of(config) != t.codec {
            return Err(RemuxError::Unsupported {
                kind: crate::TagKind::Video,
                what: format!("{} frames on a {} track", t.codec.name(), config.name()),
                timestamp_ms,
            });
        }
        let duration = config.frame_duration(&t.body);
        state.unwrapped_ms = match state.last_ts_ms {
            None => i64::from(timestamp_ms),
            Some(last) => state.unwrapped_ms + i64::from(timestamp_ms.wrapping_sub(last) as i32),
        };
        state.last_ts_ms = Some(timestamp_ms);
        out.push(AuEvent::Unit(AccessUnit {
            media,
            track_id: t.track_id,
            dts_ms: state.unwrapped_ms,
            cts_ms: t.composition_time_ms,
            keyframe: media == Media::Audio || t.is_keyframe,
            data: t.body.clone(),
            duration,
        }));
        Ok(())
    }
}

fn codec_of(c: &DecoderConfig) -> Codec {
    match c {
        DecoderConfig::Avc(_) => Codec::Video(VideoCodec::Avc),
        DecoderConfig::Hevc(_) => Codec::Video(VideoCodec::Hevc),
        DecoderConfig::Av1(_) => Codec::Video(VideoCodec::Av1),
        DecoderConfig::Vp9(..) => Codec::Video(VideoCodec::Vp9),
        DecoderConfig::Aac(_) => Codec::Audio(AudioCodec::Aac),
        DecoderConfig::Mp3(_) => Codec::Audio(AudioCodec::Mp3),
        DecoderConfig::Opus(_) => Codec::Audio(AudioCodec::Opus),
    }
}

/// Parses a `SequenceStart` body for a supported codec.
pub fn parse_config(codec: Codec, body: &Bytes) -> Result<DecoderConfig, RemuxError> {
    Ok(match codec {
        Codec::Video(VideoCodec::Avc) => DecoderConfig::Avc(AvcConfig::parse(body)?),
        Codec::Video(VideoCodec::Hevc) => DecoderConfig::Hevc(HevcConfig::parse(body)?),
        Codec::Video(VideoCodec::Av1) => DecoderConfig::Av1(Av1Config::parse(body)?),
        Codec::Video(VideoCodec::Vp9) => DecoderConfig::Vp9(Vp9Config::parse(body)?, None),
        Codec::Audio(AudioCodec::Aac) => DecoderConfig::Aac(AacConfig::parse(body)?),
        Codec::Audio(AudioCodec::Opus) => DecoderConfig::Opus(OpusConfig::parse(body)?),
        other => {
            return Err(RemuxError::Unsupported {
                kind: match other.media() {
                    Media::Audio => crate::TagKind::Audio,
                    Media::Video => crate::TagKind::Video,
                },
                what: format!("sequence start for {}", other.name()),
                timestamp_ms: 0,
            })
        }
    })
}
