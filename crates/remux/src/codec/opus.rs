//! Opus: the identification header `OpusHead` (RFC 7845 §5.1, little-endian) that an Enhanced
//! RTMP `Opus` SequenceStart carries, its translation into the `dOps` box payload (Encapsulation
//! of Opus in ISO Base Media File Format §4.3.2, big-endian, version 0, no magic), and packet
//! durations from the TOC byte (RFC 6716 §3.1, §3.2.5).
//!
//! ```text
//! OpusHead (RFC 7845)                     dOps (ISO BMFF binding)
//! 8  "OpusHead"                           -
//! u8 version (1; major nibble 0)          u8 Version = 0
//! u8 channel count                        u8 OutputChannelCount
//! u16le pre-skip                          u16be PreSkip
//! u32le input sample rate                 u32be InputSampleRate
//! i16le output gain                       i16be OutputGain
//! u8 mapping family                       u8 ChannelMappingFamily
//! [family != 0: u8 stream count, u8 coupled count, u8 mapping[channel count]]  (same, same order)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::bad_audio;
use crate::RemuxError;

const WHAT: &str = "OpusHead";
const MAGIC: &[u8; 8] = b"OpusHead";
/// Fixed part of OpusHead: magic, version, channels, pre-skip, rate, gain, family.
const FIXED_BYTES: usize = 19;
/// Longest legal Opus packet: 120 ms at 48 kHz (RFC 6716 §3.2.5).
pub const MAX_PACKET_DURATION_48K: u32 = 5760;

/// A parsed Opus identification header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusConfig {
    /// The header exactly as received.
    pub raw: Bytes,
    /// The `dOps` box payload built from it.
    pub dops: Bytes,
    /// Output channel count (1..=255).
    pub channels: u8,
    /// Samples at 48 kHz to discard from the decoder output at the start.
    pub pre_skip: u16,
    /// The original input sample rate (informational; Opus always decodes at 48 kHz here).
    pub input_sample_rate_hz: u32,
    /// Output gain, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family (0 mono/stereo, 1 Vorbis order, 255 undefined, ...).
    pub mapping_family: u8,
}

impl OpusConfig {
    /// Parses an `OpusHead`. Fails on a bad magic, an unsupported major version, zero channels,
    /// family 0 with more than two channels, or an inconsistent channel mapping table.
    pub fn parse(data: &[u8]) -> Result<OpusConfig, RemuxError> {
        if data.len() < FIXED_BYTES {
            return Err(bad_audio(WHAT, "shorter than 19 bytes", data, 0));
        }
        if &data[..8] != MAGIC {
            return Err(bad_audio(WHAT, "magic is not OpusHead", data, 0));
        }
        let version = data[8];
        if version >> 4 != 0 || version == 0 {
            return Err(bad_audio(WHAT, "unsupported version", data, 8));
        }
        let channels = data[9];
        if channels == 0 {
            return Err(bad_audio(WHAT, "zero channels", data, 9));
        }
        let pre_skip = u16::from_le_bytes([data[10], data[11]]);
        let rate = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
        let gain = i16::from_le_bytes([data[16], data[17]]);
        let family = data[18];
        let mut dops = BytesMut::with_capacity(11 + 2 + usize::from(channels));
        dops.put_u8(0); // Version
        dops.put_u8(channels);
        dops.put_u16(pre_skip);
        dops.put_u32(rate);
        dops.put_i16(gain);
        dops.put_u8(family);
        if family == 0 {
            if channels > 2 {
                return Err(bad_audio(
                    WHAT,
                    "mapping family 0 with more than 2 channels",
                    data,
                    9,
                ));
            }
        } else {
            let table_end = FIXED_BYTES + 2 + usize::from(channels);
            let Some(table) = data.get(FIXED_BYTES..table_end) else {
                return Err(bad_audio(WHAT, "channel mapping table truncated", data, 19));
            };
            let (streams, coupled) = (table[0], table[1]);
            if streams == 0 || coupled > streams || u16::from(streams) + u16::from(coupled) > 255 {
                return Err(bad_audio(WHAT, "bad stream/coupled counts", data, 19));
            }
            let decoded = streams + coupled;
            if let Some(i) = table[2..].iter().position(|&m| m != 255 && m >= decoded) {
                return Err(bad_audio(
                    WHAT,
                    "channel mapping out of range",
                    data,
                    21 + i,
                ));
            }
            dops.put_slice(table);
        }
        Ok(OpusConfig {
            raw: Bytes::copy_from_slice(data),
            dops: dops.freeze(),
            channels,
            pre_skip,
            input_sample_rate_hz: rate,
            output_gain: gain,
            mapping_family: family,
        })
    }

    /// RFC 6381 / Opus-in-ISOBMFF codecs parameter: `opus`.
    pub fn codec_string(&self) -> String {
        "opus".to_string()
    }
}

/// Duration of one Opus packet in 48 kHz samples from its TOC byte and, for code 3, the frame
/// count byte (RFC 6716 §3.1–3.2). `None` for an empty packet, a missing or zero frame count,
/// or a total over 120 ms (illegal, §3.2.5).
pub fn packet_duration_48k(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes per configuration (RFC 6716 Table 2), in 48 kHz samples.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config & 3)], // SILK-only: 10/20/40/60 ms
        12..=15 => [480, 960][usize::from(config & 1)],            // Hybrid: 10/20 ms
        _ => [120, 240, 480, 960][usize::from(config & 3)],        // CELT-only: 2.5/5/10/20 ms
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = frame * frames;
    (frames > 0 && total <= MAX_PACKET_DURATION_48K).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What FFmpeg 9 (libopus, mono 48 kHz) sends: version 1, 1 channel, pre-skip 0x0138 = 312,
    /// input rate 48000 (0xBB80), gain 0, family 0.
    const FFMPEG9_MONO: &[u8] = &[
        0x4F, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64, 0x01, 0x01, 0x38, 0x01, 0x80, 0xBB, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn opus_head_to_dops() {
        let c = OpusConfig::parse(FFMPEG9_MONO).unwrap();
        assert_eq!(c.channels, 1);
        assert_eq!(c.pre_skip, 312);
        assert_eq!(c.input_sample_rate_hz, 48_000);
        assert_eq!(c.codec_string(), "opus");
        // Version 0, 1 channel, pre-skip 312 big-endian, 48000 big-endian, gain 0, family 0.
        assert_eq!(
            &c.dops[..],
            &[0x00, 0x01, 0x01, 0x38, 0x00, 0x00, 0xBB, 0x80, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn family_1_mapping_table_is_copied() {
        let mut v = FFMPEG9_MONO.to_vec();
        v[9] = 6; // 5.1
        v[18] = 1;
        v.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        let c = OpusConfig::parse(&v).unwrap();
        assert_eq!(c.dops.len(), 11 + 2 + 6);
        assert_eq!(&c.dops[11..], &[4, 2, 0, 4, 1, 2, 3, 5]);
        let mut bad = v.clone();
        bad[26] = 6; // index 6 >= 4 + 2 decoded channels
        assert!(OpusConfig::parse(&bad).is_err());
        assert!(
            OpusConfig::parse(&v[..v.len() - 1]).is_err(),
            "table truncated"
        );
        let mut bad = v.clone();
        bad[20] = 5; // more coupled than streams
        assert!(OpusConfig::parse(&bad).is_err());
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(OpusConfig::parse(&FFMPEG9_MONO[..18]).is_err());
        let mut v = FFMPEG9_MONO.to_vec();
        v[0] = b'o';
        assert!(OpusConfig::parse(&v).is_err(), "magic");
        let mut v = FFMPEG9_MONO.to_vec();
        v[8] = 0x10;
        assert!(OpusConfig::parse(&v).is_err(), "major version 1");
        let mut v = FFMPEG9_MONO.to_vec();
        v[9] = 0;
        assert!(OpusConfig::parse(&v).is_err(), "zero channels");
        let mut v = FFMPEG9_MONO.to_vec();
        v[9] = 3;
        assert!(OpusConfig::parse(&v).is_err(), "family 0 with 3 channels");
    }

    #[test]
    fn toc_durations() {
        // Table-driven from RFC 6716 Table 2 and §3.2.
        let cases: &[(&[u8], Option<u32>)] = &[
            (&[], None),
            (&[0xF8], Some(960)), // config 31 CELT FB 20 ms, code 0 (libopus default)
            (&[0xF9], Some(1920)), // code 1: two 20 ms frames
            (&[0xFA], Some(1920)), // code 2
            (&[0xFB, 0x03], Some(2880)), // code 3, 3 frames
            (&[0xFB], None),      // code 3 without the count byte
            (&[0xFB, 0x00], None), // zero frames
            (&[0xFB, 0x07], None), // 140 ms > 120 ms
            (&[0x18], Some(2880)), // config 3 SILK NB 60 ms
            (&[0x19], Some(5760)), // code 1: two 60 ms SILK frames = 120 ms, the maximum
            (&[0x60], Some(480)), // config 12 Hybrid SWB 10 ms
            (&[0x80], Some(120)), // config 16 CELT NB 2.5 ms
        ];
        for (pkt, want) in cases {
            assert_eq!(packet_duration_48k(pkt), *want, "packet {pkt:02x?}");
        }
    }
}
