//! The parser for FLV §E.4.2.1 / §E.4.3.1 legacy headers and the Enhanced RTMP v2
//! ExVideoTagHeader / ExAudioTagHeader (ModEx, Multitrack), bounded and panic-free: every read is
//! checked against the body length, ModEx chains and tracks per message are capped.

use bytes::Bytes;

use crate::error::excerpt;
use crate::{
    AudioCodec, Codec, FlvTagError, FourCc, FrameType, Media, PacketKind, Tag, TagInfo, Track,
    VideoCodec, MAX_MODEX_BLOCKS, MAX_TRACKS_PER_MESSAGE,
};

/// Enhanced VideoPacketType values.
mod video_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
    pub const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub const MULTITRACK: u8 = 6;
    pub const MODEX: u8 = 7;
}

/// Enhanced AudioPacketType values.
mod audio_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const MULTICHANNEL_CONFIG: u8 = 4;
    pub const MULTITRACK: u8 = 5;
    pub const MODEX: u8 = 7;
}

/// AvMultitrackType values.
const ONE_TRACK: u8 = 0;
const MANY_TRACKS_MANY_CODECS: u8 = 2;

/// ModEx type 0: TimestampOffsetNano (u24 nanoseconds).
const MODEX_TIMESTAMP_OFFSET_NANO: u8 = 0;

/// Legacy SoundFormat 9 announces the ExAudioTagHeader.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// Parses one message body of RTMP message type 8 (`Media::Audio`) or 9 (`Media::Video`).
pub fn parse(media: Media, body: &Bytes) -> Result<Tag, FlvTagError> {
    match media {
        Media::Audio => parse_audio(body),
        Media::Video => parse_video(body),
    }
}

/// The default track's summary, or `None` for silence, command frames and bodies that do not
/// parse (ingest only counts; the pipeline reports the error).
pub fn inspect(media: Media, body: &Bytes) -> Option<TagInfo> {
    parse(media, body).ok()?.info()
}

struct Reader<'a> {
    media: Media,
    body: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self, what: &'static str) -> FlvTagError {
        FlvTagError::Truncated {
            media: self.media.name(),
            what,
            offset: self.pos,
            excerpt: excerpt(self.body, self.pos),
        }
    }

    fn reserved(&self, what: &'static str, value: u8, offset: usize) -> FlvTagError {
        FlvTagError::Reserved {
            media: self.media.name(),
            what,
            value,
            offset,
            excerpt: excerpt(self.body, offset),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FlvTagError> {
        let v = *self
            .body
            .get(self.pos)
            .ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FlvTagError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.body.len())
            .ok_or_else(|| self.truncated(what))?;
        let s = &self.body[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u24(&mut self, what: &'static str) -> Result<u32, FlvTagError> {
        let s = self.take(3, what)?;
        Ok((u32::from(s[0]) << 16) | (u32::from(s[1]) << 8) | u32::from(s[2]))
    }

    fn fourcc(&mut self) -> Result<FourCc, FlvTagError> {
        let s = self.take(4, "FourCC")?;
        Ok(FourCc([s[0], s[1], s[2], s[3]]))
    }

    fn rest(&self) -> Bytes {
        self.body.slice(self.pos.min(self.body.len())..)
    }

    /// Skips ModEx blocks while `packet_type` is ModEx; returns the real packet type and the
    /// TimestampOffsetNano value if one was present.
    fn modex(&mut self, mut packet_type: u8, modex: u8) -> Result<(u8, u32), FlvTagError> {
        let mut offset_ns = 0;
        let mut blocks = 0;
        while packet_type == modex {
            blocks += 1;
            if blocks > MAX_MODEX_BLOCKS {
                return Err(FlvTagError::TooManyModEx {
                    media: self.media.name(),
                    limit: MAX_MODEX_BLOCKS,
                });
            }
            let mut size = usize::from(self.u8("ModEx size")?) + 1;
            if size == 256 {
                let s = self.take(2, "ModEx size")?;
                size = usize::from(u16::from_be_bytes([s[0], s[1]])) + 1;
            }
            let data = self.take(size, "ModEx data")?;
            let b = self.u8("ModEx type")?;
            if b >> 4 == MODEX_TIMESTAMP_OFFSET_NANO && data.len() >= 3 {
                offset_ns =
                    (u32::from(data[0]) << 16) | (u32::from(data[1]) << 8) | u32::from(data[2]);
            }
            packet_type = b & 0x0f;
        }
        Ok((packet_type, offset_ns))
    }

    /// The Multitrack (or plain single-track) part of an Ex header: every track's FourCC, id and
    /// body. `multitrack` is the media's Multitrack packet type.
    fn tracks(
        &mut self,
        packet_type: u8,
        multitrack: u8,
        modex: u8,
    ) -> Result<Vec<(u8, FourCc, u8, Bytes)>, FlvTagError> {
        if packet_type != multitrack {
            let f = self.fourcc()?;
            return Ok(vec![(packet_type, f, 0, self.rest())]);
        }
        let at = self.pos;
        let b = self.u8("multitrack type")?;
        let (mt_type, packet_type) = (b >> 4, b & 0x0f);
        if mt_type > MANY_TRACKS_MANY_CODECS {
            return Err(self.reserved("AvMultitrackType", mt_type, at));
        }
        if packet_type == multitrack || packet_type == modex {
            return Err(self.reserved("packet type inside multitrack", packet_type, at));
        }
        let shared = if mt_type == MANY_TRACKS_MANY_CODECS {
            None
        } else {
            Some(self.fourcc()?)
        };
        let mut out: Vec<(u8, FourCc, u8, Bytes)> = Vec::new();
        loop {
            if out.len() == MAX_TRACKS_PER_MESSAGE {
                return Err(FlvTagError::TooManyTracks {
                    media: self.media.name(),
                    limit: MAX_TRACKS_PER_MESSAGE,
                    offset: self.pos,
                });
            }
            let f = match shared {
                Some(f) => f,
                None => self.fourcc()?,
            };
            let id_at = self.pos;
            let track_id = self.u8("track id")?;
            if out.iter().any(|t| t.2 == track_id) {
                return Err(FlvTagError::DuplicateTrack {
                    media: self.media.name(),
                    track_id,
                    offset: id_at,
                });
            }
            if mt_type == ONE_TRACK {
                out.push((packet_type, f, track_id, self.rest()));
                return Ok(out);
            }
            let size = self.u24("track size")? as usize;
            let start = self.pos;
            self.take(size, "track body")?;
            out.push((packet_type, f, track_id, self.body.slice(start..self.pos)));
            if self.pos >= self.body.len() {
                return Ok(out);
            }
        }
    }
}

fn si24(b: &[u8]) -> i32 {
    let raw = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    // Sign-extend bit 23.
    ((raw << 8) as i32) >> 8
}

/// Parses a video message body (RTMP message type 9).
pub fn parse_video(body: &Bytes) -> Result<Tag, FlvTagError> {
    let mut r = Reader {
        media: Media::Video,
        body,
        pos: 0,
    };
    let b0 = r.u8("video header")?;
    let mut tag = Tag {
        media: Media::Video,
        enhanced: b0 & 0x80 != 0,
        frame_type: None,
        timestamp_offset_ns: 0,
        command: None,
        tracks: Vec::new(),
    };
    if !tag.enhanced {
        let frame_type = FrameType::from_bits(b0 >> 4);
        tag.frame_type = Some(frame_type);
        if frame_type == FrameType::Command {
            tag.command = Some(r.u8("command")?);
            return Ok(tag);
        }
        let codec = VideoCodec::from_legacy_id(b0 & 0x0f);
        let mut track = Track {
            track_id: 0,
            codec: Codec::Video(codec),
            packet: PacketKind::CodedFrames,
            composition_time_ms: 0,
            is_keyframe: false,
            body: Bytes::new(),
        };
        if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
            let at = r.pos;
            track.packet = match r.u8("AVCPacketType")? {
                0 => PacketKind::SequenceStart,
                1 => PacketKind::CodedFrames,
                2 => PacketKind::SequenceEnd,
                n => return Err(r.reserved("AVCPacketType", n, at)),
            };
            if track.packet == PacketKind::CodedFrames {
                track.composition_time_ms = si24(r.take(3, "CompositionTime")?);
            } else {
                // The CompositionTime field is 0 here; some encoders omit it on SequenceEnd.
                r.pos = (r.pos + 3).min(body.len());
            }
        }
        track.is_keyframe = frame_type.is_key() && track.packet == PacketKind::CodedFrames;
        track.body = r.rest();
        tag.tracks.push(track);
        return Ok(tag);
    }
    let frame_type = FrameType::from_bits((b0 >> 4) & 0x07);
    tag.frame_type = Some(frame_type);
    let (packet_type, offset_ns) = r.modex(b0 & 0x0f, video_packet::MODEX)?;
    tag.timestamp_offset_ns = offset_ns;
    if frame_type == FrameType::Command && packet_type != video_packet::METADATA {
        tag.command = Some(r.u8("command")?);
        return Ok(tag);
    }
    let tracks = r.tracks(packet_type, video_packet::MULTITRACK, video_packet::MODEX)?;
    tag.tracks.reserve_exact(tracks.len());
    for (packet_type, fourcc, track_id, track_body) in tracks {
        let codec = VideoCodec::from_fourcc(fourcc);
        let packet = match packet_type {
            video_packet::SEQUENCE_START => PacketKind::SequenceStart,
            video_packet::CODED_FRAMES | video_packet::CODED_FRAMES_X => PacketKind::CodedFrames,
            video_packet::SEQUENCE_END => PacketKind::SequenceEnd,
            video_packet::METADATA => PacketKind::Metadata,
            video_packet::MPEG2TS_SEQUENCE_START => PacketKind::Mpeg2TsSequenceStart,
            n => return Err(r.reserved("VideoPacketType", n, 0)),
        };
        let (composition_time_ms, track_body) =
            if packet_type == video_packet::CODED_FRAMES && codec.carries_composition_time() {
                let cts = track_body.get(..3).ok_or_else(|| FlvTagError::Truncated {
                    media: "video",
                    what: "CompositionTime",
                    offset: body.len() - track_body.len(),
                    excerpt: excerpt(&track_body, 0),
                })?;
                (si24(cts), track_body.slice(3..))
            } else {
                (0, track_body)
            };
        tag.tracks.push(Track {
            track_id,
            codec: Codec::Video(codec),
            packet,
            composition_time_ms,
            is_keyframe: frame_type.is_key() && packet == PacketKind::CodedFrames,
            body: track_body,
        });
    }
    Ok(tag)
}

/// Parses an audio message body (RTMP message type 8). A zero-length body is silence: a tag
/// with no tracks.
pub fn parse_audio(body: &Bytes) -> Result<Tag, FlvTagError> {
    let mut r = Reader {
        media: Media::Audio,
        body,
        pos: 0,
    };
    let mut tag = Tag {
        media: Media::Audio,
        enhanced: false,
        frame_type: None,
        timestamp_offset_ns: 0,
        command: None,
        tracks: Vec::new(),
    };
    let Some(&b0) = body.first() else {
        return Ok(tag);
    };
    r.pos = 1;
    let format = b0 >> 4;
    if format != SOUND_FORMAT_EX_HEADER {
        let codec = AudioCodec::from_sound_format(format);
        let mut packet = PacketKind::CodedFrames;
        if codec == AudioCodec::Aac {
            let at = r.pos;
            packet = match r.u8("AACPacketType")? {
                0 => PacketKind::SequenceStart,
                1 => PacketKind::CodedFrames,
                n => return Err(r.reserved("AACPacketType", n, at)),
            };
        }
        tag.tracks.push(Track {
            track_id: 0,
            codec: Codec::Audio(codec),
            packet,
            composition_time_ms: 0,
            is_keyframe: false,
            body: r.rest(),
        });
        return Ok(tag);
    }
    tag.enhanced = true;
    let (packet_type, offset_ns) = r.modex(b0 & 0x0f, audio_packet::MODEX)?;
    tag.timestamp_offset_ns = offset_ns;
    let tracks = r.tracks(packet_type, audio_packet::MULTITRACK, audio_packet::MODEX)?;
    tag.tracks.reserve_exact(tracks.len());
    for (packet_type, fourcc, track_id, track_body) in tracks {
        let packet = match packet_type {
            audio_packet::SEQUENCE_START => PacketKind::SequenceStart,
            audio_packet::CODED_FRAMES => PacketKind::CodedFrames,
            audio_packet::SEQUENCE_END => PacketKind::SequenceEnd,
            audio_packet::MULTICHANNEL_CONFIG => PacketKind::MultichannelConfig,
            n => return Err(r.reserved("AudioPacketType", n, 0)),
        };
        tag.tracks.push(Track {
            track_id,
            codec: Codec::Audio(AudioCodec::from_fourcc(fourcc)),
            packet,
            composition_time_ms: 0,
            is_keyframe: false,
            body: track_body,
        });
    }
    Ok(tag)
}
