//! Codec recognition for FLV audio/video tag bodies, legacy and Enhanced RTMP
//! ([FLV] E.4.2.1, E.4.3.1; [ERTMP1]/[ERTMP2] "Enhanced Video"/"Enhanced Audio").
//!
//! ```text
//! legacy video : FrameType:4 | CodecID:4 | [AVCPacketType:8 | CTS:si24] ...
//! ex video     : 1 | FrameType:3 | PacketType:4 | (ModEx)* | [Multitrack byte] | FourCC:32 | [trackId] ...
//! legacy audio : SoundFormat:4 | rate:2 | size:1 | type:1 | [AACPacketType:8] ...
//! ex audio     : 9:4 | PacketType:4 | (ModEx)* | [Multitrack byte] | FourCC:32 | [trackId] ...
//! ```
//! Only the header is inspected; the body is never copied. For multitrack messages the first
//! track is reported.

/// The codec of one track, as far as ingest can tell from the tag header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    Vp8,
    Vvc,
    Aac,
    Mp3,
    Opus,
    Flac,
    Ac3,
    Eac3,
    /// Anything else: a legacy CodecID/SoundFormat number, or a FourCC as a big-endian u32.
    Other(u32),
}

impl MediaCodec {
    /// Maps an E-RTMP FourCC.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Self {
        match &fourcc {
            b"avc1" => Self::Avc,
            b"hvc1" => Self::Hevc,
            b"av01" => Self::Av1,
            b"vp09" => Self::Vp9,
            b"vp08" => Self::Vp8,
            b"vvc1" => Self::Vvc,
            b"mp4a" => Self::Aac,
            b".mp3" => Self::Mp3,
            b"Opus" => Self::Opus,
            b"fLaC" => Self::Flac,
            b"ac-3" => Self::Ac3,
            b"ec-3" => Self::Eac3,
            _ => Self::Other(u32::from_be_bytes(fourcc)),
        }
    }
}

/// What ingest knows about one audio/video tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagInfo {
    pub codec: MediaCodec,
    /// Codec configuration (AVC/HEVC/AV1 config record, AudioSpecificConfig, Opus header, ...).
    pub is_sequence_header: bool,
    /// Video frame type key (1) or generated key (4). Always false for audio.
    pub is_keyframe: bool,
    /// E-RTMP multitrack track id (0 = default track / not multitrack).
    pub track_id: u8,
    /// The tag used the Enhanced RTMP header.
    pub enhanced: bool,
    /// End of sequence (AVC end of sequence / E-RTMP SequenceEnd).
    pub is_sequence_end: bool,
    /// Signed composition time offset in ms where the format carries one (AVC/HEVC/VVC frames).
    pub composition_time_ms: Option<i32>,
}

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

mod audio_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const SEQUENCE_END: u8 = 2;
    pub const MULTITRACK: u8 = 5;
    pub const MODEX: u8 = 7;
}

const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_GENERATED_KEY: u8 = 4;
const FRAME_TYPE_COMMAND: u8 = 5;
const MULTITRACK_MANY_TRACKS_MANY_CODECS: u8 = 2;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn fourcc(&mut self) -> Option<[u8; 4]> {
        let s = self.take(4)?;
        Some([s[0], s[1], s[2], s[3]])
    }
    fn si24(&mut self) -> Option<i32> {
        let s = self.take(3)?;
        let v = (i32::from(s[0]) << 16) | (i32::from(s[1]) << 8) | i32::from(s[2]);
        Some((v << 8) >> 8)
    }
    /// Skips ModEx blocks while `packet_type` is ModEx; returns the real packet type.
    fn skip_modex(&mut self, mut packet_type: u8, modex: u8) -> Option<u8> {
        // Each block consumes at least 2 bytes, so this terminates within the body length.
        while packet_type == modex {
            let mut size = usize::from(self.u8()?) + 1;
            if size == 256 {
                let s = self.take(2)?;
                size = usize::from(u16::from_be_bytes([s[0], s[1]])) + 1;
            }
            self.take(size)?;
            packet_type = self.u8()? & 0x0f;
        }
        Some(packet_type)
    }
}

/// Inspects a video tag body (RTMP message type 9). `None` if empty or too short to tell.
pub fn inspect_video(body: &[u8]) -> Option<TagInfo> {
    let mut c = Cursor { b: body, pos: 0 };
    let b0 = c.u8()?;
    if b0 & 0x80 == 0 {
        let frame_type = b0 >> 4;
        let codec = match b0 & 0x0f {
            7 => MediaCodec::Avc,
            // CodecID 12: the widespread non-standard HEVC extension (pre-E-RTMP Chinese CDNs/encoders).
            12 => MediaCodec::Hevc,
            n => MediaCodec::Other(u32::from(n)),
        };
        let is_keyframe = frame_type == FRAME_TYPE_KEY || frame_type == FRAME_TYPE_GENERATED_KEY;
        let mut info = TagInfo {
            codec,
            is_sequence_header: false,
            is_keyframe,
            track_id: 0,
            enhanced: false,
            is_sequence_end: false,
            composition_time_ms: None,
        };
        if matches!(codec, MediaCodec::Avc | MediaCodec::Hevc) && frame_type != FRAME_TYPE_COMMAND {
            let packet_type = c.u8()?;
            info.is_sequence_header = packet_type == 0;
            info.is_sequence_end = packet_type == 2;
            if packet_type == 1 {
                info.composition_time_ms = c.si24();
            }
        }
        return Some(info);
    }
    let frame_type = (b0 >> 4) & 0x07;
    let packet_type = c.skip_modex(b0 & 0x0f, video_packet::MODEX)?;
    if frame_type == FRAME_TYPE_COMMAND && packet_type != video_packet::METADATA {
        // A video command (seek start/end): no codec in the header.
        return None;
    }
    let (packet_type, track_id, fourcc) = ex_track(&mut c, packet_type, video_packet::MULTITRACK)?;
    let codec = MediaCodec::from_fourcc(fourcc);
    let mut info = TagInfo {
        codec,
        is_sequence_header: matches!(
            packet_type,
            video_packet::SEQUENCE_START | video_packet::MPEG2TS_SEQUENCE_START
        ),
        is_keyframe: frame_type == FRAME_TYPE_KEY || frame_type == FRAME_TYPE_GENERATED_KEY,
        track_id,
        enhanced: true,
        is_sequence_end: packet_type == video_packet::SEQUENCE_END,
        composition_time_ms: None,
    };
    if packet_type == video_packet::METADATA {
        info.is_keyframe = false;
    }
    if matches!(codec, MediaCodec::Avc | MediaCodec::Hevc | MediaCodec::Vvc) {
        match packet_type {
            video_packet::CODED_FRAMES => info.composition_time_ms = c.si24(),
            video_packet::CODED_FRAMES_X => info.composition_time_ms = Some(0),
            _ => {}
        }
    }
    Some(info)
}

/// Reads the optional multitrack byte, the FourCC and the first track id.
fn ex_track(c: &mut Cursor<'_>, packet_type: u8, multitrack: u8) -> Option<(u8, u8, [u8; 4])> {
    if packet_type != multitrack {
        return Some((packet_type, 0, c.fourcc()?));
    }
    let b = c.u8()?;
    let multitrack_type = b >> 4;
    let real_packet_type = b & 0x0f;
    let fourcc = if multitrack_type == MULTITRACK_MANY_TRACKS_MANY_CODECS {
        None
    } else {
        Some(c.fourcc()?)
    };
    let fourcc = match fourcc {
        Some(f) => f,
        None => c.fourcc()?,
    };
    let track_id = c.u8()?;
    Some((real_packet_type, track_id, fourcc))
}

/// Inspects an audio tag body (RTMP message type 8). `None` for an empty body (silence) or
/// one too short to tell.
pub fn inspect_audio(body: &[u8]) -> Option<TagInfo> {
    let mut c = Cursor { b: body, pos: 0 };
    let b0 = c.u8()?;
    let sound_format = b0 >> 4;
    if sound_format != 9 {
        let codec = match sound_format {
            10 => MediaCodec::Aac,
            2 | 14 => MediaCodec::Mp3,
            n => MediaCodec::Other(u32::from(n)),
        };
        let is_sequence_header = codec == MediaCodec::Aac && c.u8()? == 0;
        return Some(TagInfo {
            codec,
            is_sequence_header,
            is_keyframe: false,
            track_id: 0,
            enhanced: false,
            is_sequence_end: false,
            composition_time_ms: None,
        });
    }
    let packet_type = c.skip_modex(b0 & 0x0f, audio_packet::MODEX)?;
    let (packet_type, track_id, fourcc) = ex_track(&mut c, packet_type, audio_packet::MULTITRACK)?;
    Some(TagInfo {
        codec: MediaCodec::from_fourcc(fourcc),
        is_sequence_header: packet_type == audio_packet::SEQUENCE_START,
        is_keyframe: false,
        track_id,
        enhanced: true,
        is_sequence_end: packet_type == audio_packet::SEQUENCE_END,
        composition_time_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (body, codec, sequence header, keyframe, track id, enhanced, cts)
    type Row = (&'static [u8], MediaCodec, bool, bool, u8, bool, Option<i32>);

    #[test]
    fn video_table() {
        let rows: &[Row] = &[
            (
                &[0x17, 0x00, 0, 0, 0, 1],
                MediaCodec::Avc,
                true,
                true,
                0,
                false,
                None,
            ),
            (
                &[0x17, 0x01, 0, 0, 0x28],
                MediaCodec::Avc,
                false,
                true,
                0,
                false,
                Some(40),
            ),
            (
                &[0x27, 0x01, 0xff, 0xff, 0xd8],
                MediaCodec::Avc,
                false,
                false,
                0,
                false,
                Some(-40),
            ),
            (&[0x1c, 0x00], MediaCodec::Hevc, true, true, 0, false, None),
            (
                &[0x22, 0x00],
                MediaCodec::Other(2),
                false,
                false,
                0,
                false,
                None,
            ),
            // Enhanced: key + SequenceStart hvc1.
            (
                &[0x90, b'h', b'v', b'c', b'1', 1],
                MediaCodec::Hevc,
                true,
                true,
                0,
                true,
                None,
            ),
            // inter + CodedFrames av01 (no CTS for AV1).
            (
                &[0xA1, b'a', b'v', b'0', b'1', 0x12],
                MediaCodec::Av1,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x93, b'v', b'p', b'0', b'9'],
                MediaCodec::Vp9,
                false,
                true,
                0,
                true,
                None,
            ),
            (
                &[0xA3, b'v', b'p', b'0', b'8'],
                MediaCodec::Vp8,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x91, b'a', b'v', b'c', b'1', 0, 0, 0x50],
                MediaCodec::Avc,
                false,
                true,
                0,
                true,
                Some(80),
            ),
            (
                &[0x93, b'h', b'v', b'c', b'1'],
                MediaCodec::Hevc,
                false,
                true,
                0,
                true,
                Some(0),
            ),
            (
                &[0x95, b'a', b'v', b'0', b'1'],
                MediaCodec::Av1,
                true,
                true,
                0,
                true,
                None,
            ),
            // Multitrack OneTrack (OBS extra encoder): key, type 6, then (0 << 4 | CodedFramesX), avc1, trackId 2.
            (
                &[0x96, 0x03, b'a', b'v', b'c', b'1', 2],
                MediaCodec::Avc,
                false,
                true,
                2,
                true,
                Some(0),
            ),
            // ManyTracksManyCodecs: (2 << 4 | SequenceStart), then per-track FourCC + id.
            (
                &[0x96, 0x20, b'h', b'v', b'c', b'1', 1, 0, 0, 1],
                MediaCodec::Hevc,
                true,
                true,
                1,
                true,
                None,
            ),
            // ModEx (TimestampOffsetNano: size 3, then type 0 | next packet type CodedFramesX).
            (
                &[0x97, 2, 0x00, 0x01, 0x02, 0x03, b'a', b'v', b'c', b'1'],
                MediaCodec::Avc,
                false,
                true,
                0,
                true,
                Some(0),
            ),
            // Unknown FourCC.
            (
                &[0x90, b'x', b'y', b'z', b'w'],
                MediaCodec::Other(u32::from_be_bytes(*b"xyzw")),
                true,
                true,
                0,
                true,
                None,
            ),
        ];
        for (body, codec, sh, key, track, enhanced, cts) in rows {
            let info = inspect_video(body).unwrap_or_else(|| panic!("{body:02x?}"));
            assert_eq!(
                (
                    info.codec,
                    info.is_sequence_header,
                    info.is_keyframe,
                    info.track_id,
                    info.enhanced,
                    info.composition_time_ms
                ),
                (*codec, *sh, *key, *track, *enhanced, *cts),
                "{body:02x?}"
            );
        }
        for short in [
            &[][..],
            &[0x17],
            &[0x90, b'h', b'v'],
            &[0x97, 5, 0],
            &[0x96, 0x03, b'a'],
            &[0xD0, 1],
        ] {
            assert_eq!(inspect_video(short), None, "{short:02x?}");
        }
    }

    #[test]
    fn audio_table() {
        let rows: &[Row] = &[
            (
                &[0xAF, 0x00, 0x12, 0x10],
                MediaCodec::Aac,
                true,
                false,
                0,
                false,
                None,
            ),
            (
                &[0xAF, 0x01, 0x21],
                MediaCodec::Aac,
                false,
                false,
                0,
                false,
                None,
            ),
            (&[0x2F, 0xff], MediaCodec::Mp3, false, false, 0, false, None),
            (&[0xE2], MediaCodec::Mp3, false, false, 0, false, None),
            (&[0x72], MediaCodec::Other(7), false, false, 0, false, None),
            (
                &[0x90, b'm', b'p', b'4', b'a', 0x12],
                MediaCodec::Aac,
                true,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x91, b'O', b'p', b'u', b's'],
                MediaCodec::Opus,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x91, b'.', b'm', b'p', b'3'],
                MediaCodec::Mp3,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x90, b'f', b'L', b'a', b'C'],
                MediaCodec::Flac,
                true,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x91, b'a', b'c', b'-', b'3'],
                MediaCodec::Ac3,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x91, b'e', b'c', b'-', b'3'],
                MediaCodec::Eac3,
                false,
                false,
                0,
                true,
                None,
            ),
            (
                &[0x95, 0x01, b'm', b'p', b'4', b'a', 3],
                MediaCodec::Aac,
                false,
                false,
                3,
                true,
                None,
            ),
            (
                &[0x97, 0, 0xAA, 0x01, b'O', b'p', b'u', b's'],
                MediaCodec::Opus,
                false,
                false,
                0,
                true,
                None,
            ),
        ];
        for (body, codec, sh, key, track, enhanced, _) in rows {
            let info = inspect_audio(body).unwrap_or_else(|| panic!("{body:02x?}"));
            assert_eq!(
                (
                    info.codec,
                    info.is_sequence_header,
                    info.is_keyframe,
                    info.track_id,
                    info.enhanced
                ),
                (*codec, *sh, *key, *track, *enhanced),
                "{body:02x?}"
            );
        }
        assert_eq!(inspect_audio(&[]), None, "zero-length audio is silence");
        assert_eq!(inspect_audio(&[0xAF]), None);
    }

    proptest! {
        #[test]
        fn never_panics(body in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = inspect_video(&body);
            let _ = inspect_audio(&body);
        }
    }
}
