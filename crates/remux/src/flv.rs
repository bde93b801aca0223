//! FLV tag bodies as carried in RTMP messages 8/9: legacy audio/video tag headers (FLV E.4.2.1,
//! E.4.3.1) and Enhanced RTMP ExVideoTagHeader / ExAudioTagHeader (Enhanced RTMP v2, including ModEx and
//! Multitrack). Only the header is parsed here; the body is returned as a zero-copy `Bytes` slice.
//!
//! ```text
//! legacy video: [FrameType:4 | CodecID:4] [AVCPacketType] [CTS: SI24] data...
//! enhanced:     [1 | FrameType:3 | PacketType:4] (ModEx)* [Multitrack hdr] FourCC [SI24 CTS] data...
//! ```

use bytes::Bytes;

use crate::{RemuxError, TagKind};

/// Video codec named by a tag header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    Vp8,
    Vvc,
    /// Legacy CodecID other than 7 (H.263, VP6, screen video…).
    Legacy(u8),
    /// Unknown Enhanced-RTMP FourCC.
    FourCc([u8; 4]),
}

impl VideoCodec {
    /// Name for warnings and stats.
    pub fn name(&self) -> String {
        match self {
            VideoCodec::Avc => "h264".into(),
            VideoCodec::Hevc => "hevc".into(),
            VideoCodec::Av1 => "av1".into(),
            VideoCodec::Vp9 => "vp9".into(),
            VideoCodec::Vp8 => "vp8".into(),
            VideoCodec::Vvc => "vvc".into(),
            VideoCodec::Legacy(id) => format!("flv-codec-{id}"),
            VideoCodec::FourCc(f) => String::from_utf8_lossy(f).into_owned(),
        }
    }
}

/// Audio codec named by a tag header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    /// Legacy SoundFormat other than AAC/MP3.
    Legacy(u8),
    FourCc([u8; 4]),
}

impl AudioCodec {
    pub fn name(&self) -> String {
        match self {
            AudioCodec::Aac => "aac".into(),
            AudioCodec::Mp3 => "mp3".into(),
            AudioCodec::Opus => "opus".into(),
            AudioCodec::Legacy(f) => format!("flv-sound-format-{f}"),
            AudioCodec::FourCc(f) => String::from_utf8_lossy(f).into_owned(),
        }
    }
}

/// What a media tag carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// Codec configuration record (never written as PES).
    SequenceHeader,
    /// One coded frame (video access unit / audio frame(s)).
    Frame,
    /// End of sequence, commands, metadata, silence, other tracks: nothing to write.
    Ignored,
}

/// A parsed video tag header plus the zero-copy body.
#[derive(Clone, Debug)]
pub struct VideoTag {
    pub codec: VideoCodec,
    pub keyframe: bool,
    pub packet: PacketKind,
    /// Signed composition time offset (PTS − DTS) in ms.
    pub cts_ms: i32,
    pub body: Bytes,
}

/// A parsed audio tag header plus the zero-copy body.
#[derive(Clone, Debug)]
pub struct AudioTag {
    pub codec: AudioCodec,
    pub packet: PacketKind,
    pub body: Bytes,
}

fn bad(kind: TagKind, reason: &'static str, data: &[u8], offset: usize) -> RemuxError {
    RemuxError::malformed(kind, "tag header", reason, data, offset)
}

fn byte(kind: TagKind, data: &[u8], pos: usize) -> Result<u8, RemuxError> {
    data.get(pos)
        .copied()
        .ok_or_else(|| bad(kind, "truncated", data, pos))
}

fn fourcc(kind: TagKind, data: &[u8], pos: usize) -> Result<[u8; 4], RemuxError> {
    let end = pos
        .checked_add(4)
        .ok_or_else(|| bad(kind, "truncated", data, pos))?;
    let s = data
        .get(pos..end)
        .ok_or_else(|| bad(kind, "truncated FourCC", data, pos))?;
    Ok([s[0], s[1], s[2], s[3]])
}

fn si24(kind: TagKind, data: &[u8], pos: usize) -> Result<i32, RemuxError> {
    let end = pos
        .checked_add(3)
        .ok_or_else(|| bad(kind, "truncated", data, pos))?;
    let s = data
        .get(pos..end)
        .ok_or_else(|| bad(kind, "truncated composition time", data, pos))?;
    let raw = (u32::from(s[0]) << 16) | (u32::from(s[1]) << 8) | u32::from(s[2]);
    // Sign-extend the 24-bit value (ffmpeg flvdec does the same).
    Ok(((raw << 8) as i32) >> 8)
}

/// Skips ModEx blocks (Enhanced RTMP v2 "ModEx"): returns (next packet type, position after them).
fn skip_modex(
    kind: TagKind,
    data: &[u8],
    mut pos: usize,
    mut packet_type: u8,
) -> Result<(u8, usize), RemuxError> {
    let mut guard = 0;
    while packet_type == 7 {
        guard += 1;
        if guard > 8 {
            return Err(bad(kind, "too many ModEx blocks", data, pos));
        }
        let mut size = usize::from(byte(kind, data, pos)?) + 1;
        pos += 1;
        if size == 256 {
            let hi = usize::from(byte(kind, data, pos)?);
            let lo = usize::from(byte(kind, data, pos + 1)?);
            size = ((hi << 8) | lo) + 1;
            pos += 2;
        }
        pos = pos
            .checked_add(size)
            .filter(|p| *p < data.len())
            .ok_or_else(|| bad(kind, "ModEx overrun", data, pos))?;
        packet_type = byte(kind, data, pos)? & 0x0F;
        pos += 1;
    }
    Ok((packet_type, pos))
}

/// Resolves a Multitrack header to the default track (trackId 0). Returns (packet type,
/// FourCC, body range) or `None` if the message has no track 0.
/// (packet type, FourCC, body start, body end) of the default track.
type TrackBody = (u8, [u8; 4], usize, usize);

fn multitrack(kind: TagKind, data: &[u8], pos: usize) -> Result<Option<TrackBody>, RemuxError> {
    let b = byte(kind, data, pos)?;
    let (mt_type, packet_type) = (b >> 4, b & 0x0F);
    let mut pos = pos + 1;
    let shared = if mt_type != 2 {
        let f = fourcc(kind, data, pos)?;
        pos += 4;
        Some(f)
    } else {
        None
    };
    let mut guard = 0;
    while pos < data.len() {
        guard += 1;
        if guard > 64 {
            return Err(bad(kind, "too many tracks", data, pos));
        }
        let f = match shared {
            Some(f) => f,
            None => {
                let f = fourcc(kind, data, pos)?;
                pos += 4;
                f
            }
        };
        let track_id = byte(kind, data, pos)?;
        pos += 1;
        let (start, end) = if mt_type == 0 {
            (pos, data.len())
        } else {
            let s = data
                .get(pos..pos.saturating_add(3))
                .ok_or_else(|| bad(kind, "truncated track size", data, pos))?;
            let len = (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]);
            let start = pos + 3;
            let end = start
                .checked_add(len)
                .filter(|e| *e <= data.len())
                .ok_or_else(|| bad(kind, "track size overrun", data, pos))?;
            (start, end)
        };
        if track_id == 0 {
            return Ok(Some((packet_type, f, start, end)));
        }
        if mt_type == 0 {
            return Ok(None);
        }
        pos = end;
    }
    Ok(None)
}

fn video_fourcc(f: [u8; 4]) -> VideoCodec {
    match &f {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        b"vp08" => VideoCodec::Vp8,
        b"vvc1" => VideoCodec::Vvc,
        _ => VideoCodec::FourCc(f),
    }
}

/// Parses a video tag body (legacy or enhanced).
pub fn parse_video(payload: &Bytes) -> Result<VideoTag, RemuxError> {
    const K: TagKind = TagKind::Video;
    let data = &payload[..];
    let b0 = byte(K, data, 0)?;
    if b0 & 0x80 == 0 {
        let frame_type = b0 >> 4;
        let codec_id = b0 & 0x0F;
        if codec_id != 7 {
            let packet = if frame_type == 5 {
                PacketKind::Ignored
            } else {
                PacketKind::Frame
            };
            return Ok(VideoTag {
                codec: VideoCodec::Legacy(codec_id),
                keyframe: frame_type == 1,
                packet,
                cts_ms: 0,
                body: Bytes::new(),
            });
        }
        if frame_type == 5 {
            return Ok(VideoTag {
                codec: VideoCodec::Avc,
                keyframe: false,
                packet: PacketKind::Ignored,
                cts_ms: 0,
                body: Bytes::new(),
            });
        }
        let packet_type = byte(K, data, 1)?;
        let cts_ms = si24(K, data, 2)?;
        let packet = match packet_type {
            0 => PacketKind::SequenceHeader,
            1 => PacketKind::Frame,
            2 => PacketKind::Ignored,
            _ => return Err(bad(K, "reserved AVCPacketType", data, 1)),
        };
        return Ok(VideoTag {
            codec: VideoCodec::Avc,
            keyframe: frame_type == 1,
            packet,
            cts_ms,
            body: payload.slice(5..),
        });
    }
    // Enhanced RTMP.
    let frame_type = (b0 >> 4) & 0x07;
    let (mut packet_type, mut pos) = skip_modex(K, data, 1, b0 & 0x0F)?;
    if frame_type == 5 && packet_type != 4 {
        return Ok(VideoTag {
            codec: VideoCodec::Avc,
            keyframe: false,
            packet: PacketKind::Ignored,
            cts_ms: 0,
            body: Bytes::new(),
        });
    }
    let (codec, end) = if packet_type == 6 {
        match multitrack(K, data, pos)? {
            Some((pt, f, start, end)) => {
                packet_type = pt;
                pos = start;
                (video_fourcc(f), end)
            }
            None => {
                return Ok(VideoTag {
                    codec: VideoCodec::Avc,
                    keyframe: false,
                    packet: PacketKind::Ignored,
                    cts_ms: 0,
                    body: Bytes::new(),
                })
            }
        }
    } else {
        let f = fourcc(K, data, pos)?;
        pos += 4;
        (video_fourcc(f), data.len())
    };
    let has_cts = matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Vvc);
    let (packet, cts_ms) = match packet_type {
        0 => (PacketKind::SequenceHeader, 0),
        1 if has_cts => {
            let c = si24(K, data, pos)?;
            pos += 3;
            (PacketKind::Frame, c)
        }
        1 | 3 => (PacketKind::Frame, 0),
        2 | 4 | 5 => (PacketKind::Ignored, 0),
        _ => return Err(bad(K, "reserved VideoPacketType", data, 0)),
    };
    if pos > end {
        return Err(bad(K, "truncated", data, pos));
    }
    Ok(VideoTag {
        codec,
        keyframe: frame_type == 1,
        packet,
        cts_ms,
        body: payload.slice(pos..end),
    })
}

fn audio_fourcc(f: [u8; 4]) -> AudioCodec {
    match &f {
        b"mp4a" => AudioCodec::Aac,
        b".mp3" => AudioCodec::Mp3,
        b"Opus" => AudioCodec::Opus,
        _ => AudioCodec::FourCc(f),
    }
}

/// Parses an audio tag body (legacy or enhanced). A zero-length message is silence (ignored).
pub fn parse_audio(payload: &Bytes) -> Result<AudioTag, RemuxError> {
    const K: TagKind = TagKind::Audio;
    let data = &payload[..];
    let Some(&b0) = data.first() else {
        return Ok(AudioTag {
            codec: AudioCodec::Aac,
            packet: PacketKind::Ignored,
            body: Bytes::new(),
        });
    };
    let format = b0 >> 4;
    match format {
        10 => {
            let packet = match byte(K, data, 1)? {
                0 => PacketKind::SequenceHeader,
                1 => PacketKind::Frame,
                _ => return Err(bad(K, "reserved AACPacketType", data, 1)),
            };
            Ok(AudioTag {
                codec: AudioCodec::Aac,
                packet,
                body: payload.slice(2..),
            })
        }
        2 | 14 => Ok(AudioTag {
            codec: AudioCodec::Mp3,
            packet: PacketKind::Frame,
            body: payload.slice(1..),
        }),
        9 => {
            let (mut packet_type, mut pos) = skip_modex(K, data, 1, b0 & 0x0F)?;
            let (codec, end) = if packet_type == 5 {
                match multitrack(K, data, pos)? {
                    Some((pt, f, start, end)) => {
                        packet_type = pt;
                        pos = start;
                        (audio_fourcc(f), end)
                    }
                    None => {
                        return Ok(AudioTag {
                            codec: AudioCodec::Aac,
                            packet: PacketKind::Ignored,
                            body: Bytes::new(),
                        })
                    }
                }
            } else {
                let f = fourcc(K, data, pos)?;
                pos += 4;
                (audio_fourcc(f), data.len())
            };
            let packet = match packet_type {
                0 => PacketKind::SequenceHeader,
                1 => PacketKind::Frame,
                2 | 4 => PacketKind::Ignored,
                _ => return Err(bad(K, "reserved AudioPacketType", data, 0)),
            };
            // `.mp3` has no sequence header: its frames configure the track.
            let packet = if codec == AudioCodec::Mp3 && packet == PacketKind::SequenceHeader {
                PacketKind::Ignored
            } else {
                packet
            };
            Ok(AudioTag {
                codec,
                packet,
                body: payload.slice(pos..end),
            })
        }
        f => Ok(AudioTag {
            codec: AudioCodec::Legacy(f),
            packet: PacketKind::Frame,
            body: Bytes::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_negative_cts() {
        let t = parse_video(&Bytes::from_static(&[
            0x17, 1, 0xFF, 0xFF, 0xDF, 0, 0, 0, 1, 0x65,
        ]))
        .unwrap();
        assert_eq!(t.codec, VideoCodec::Avc);
        assert!(t.keyframe);
        assert_eq!(t.cts_ms, -33);
        assert_eq!(&t.body[..], &[0, 0, 0, 1, 0x65]);
        let t = parse_video(&Bytes::from_static(&[0x27, 0, 0, 0, 0])).unwrap();
        assert_eq!(t.packet, PacketKind::SequenceHeader);
    }

    #[test]
    fn enhanced_fourccs_recognised() {
        for (f, c) in [
            (b"hvc1", VideoCodec::Hevc),
            (b"av01", VideoCodec::Av1),
            (b"vp09", VideoCodec::Vp9),
            (b"avc1", VideoCodec::Avc),
        ] {
            let mut v = vec![0x90];
            v.extend_from_slice(f);
            let t = parse_video(&Bytes::from(v)).unwrap();
            assert_eq!(t.codec, c);
            assert_eq!(t.packet, PacketKind::SequenceHeader);
            assert!(t.keyframe);
        }
        // CodedFrames for avc1 carries an SI24 CTS; CodedFramesX does not.
        let t = parse_video(&Bytes::from_static(&[
            0x91, b'a', b'v', b'c', b'1', 0, 0, 40, 9,
        ]))
        .unwrap();
        assert_eq!((t.cts_ms, &t.body[..]), (40, &[9u8][..]));
        let t = parse_video(&Bytes::from_static(&[0xA3, b'a', b'v', b'c', b'1', 9])).unwrap();
        assert_eq!((t.cts_ms, t.keyframe, &t.body[..]), (0, false, &[9u8][..]));
    }

    #[test]
    fn multitrack_and_modex() {
        // Multitrack OneTrack avc1 track 1: ignored (not the default track).
        let t = parse_video(&Bytes::from_static(&[
            0x96, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 0,
        ]))
        .unwrap();
        assert_eq!(t.packet, PacketKind::Ignored);
        // ModEx (1 byte of data) then CodedFramesX.
        let t = parse_video(&Bytes::from_static(&[
            0x97, 0, 0xAA, 0x03, b'a', b'v', b'c', b'1', 7,
        ]))
        .unwrap();
        assert_eq!((t.packet, &t.body[..]), (PacketKind::Frame, &[7u8][..]));
    }

    #[test]
    fn audio_headers() {
        let t = parse_audio(&Bytes::from_static(&[0xAF, 0, 0x12, 0x10])).unwrap();
        assert_eq!(
            (t.codec, t.packet, &t.body[..]),
            (
                AudioCodec::Aac,
                PacketKind::SequenceHeader,
                &[0x12u8, 0x10][..]
            )
        );
        let t = parse_audio(&Bytes::from_static(&[0x2F, 0xFF, 0xFB])).unwrap();
        assert_eq!(t.codec, AudioCodec::Mp3);
        let t = parse_audio(&Bytes::from_static(&[0x90, b'O', b'p', b'u', b's'])).unwrap();
        assert_eq!(t.codec, AudioCodec::Opus);
        assert_eq!(
            parse_audio(&Bytes::new()).unwrap().packet,
            PacketKind::Ignored
        );
    }

    #[test]
    fn truncated_never_panics() {
        for n in 0..12 {
            let v: Vec<u8> = [
                0x97u8, 0xFF, 0x01, 0xFF, 0x96, 0x21, b'a', b'v', b'c', b'1', 0, 0,
            ][..n]
                .to_vec();
            let _ = parse_video(&Bytes::from(v.clone()));
            let _ = parse_audio(&Bytes::from(v));
        }
    }
}
