//! Audio configuration: MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), the 7-byte ADTS
//! header written in front of every raw AAC frame for MPEG-TS (ISO/IEC 13818-7 §6.2, stream_type
//! 0x0F), and the MP3 frame header (ISO/IEC 11172-3 §2.4.1.3 / 13818-3) used to pick stream_type
//! 0x03 (MPEG-1) or 0x04 (MPEG-2/2.5).

use bytes::Bytes;

use crate::codec::bits::BitReader;
use crate::{RemuxError, TagKind};

/// Sampling frequency table indexed by samplingFrequencyIndex 0..=12.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What we keep from an AudioSpecificConfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// The signalled (outer) audio object type: 5 = SBR, 29 = PS for explicit HE-AAC.
    pub object_type: u8,
    /// ADTS profile field (core AOT − 1; AOT > 4 mapped to LC = 1).
    pub adts_profile: u8,
    /// Core sampling frequency index (0..=12), as written in ADTS.
    pub sampling_index: u8,
    /// Output sample rate (the extension rate for explicit SBR).
    pub sample_rate_hz: u32,
    pub channels: u8,
    /// 1024, or 960 when frameLengthFlag is set.
    pub samples_per_frame: u32,
    pub raw: Bytes,
}

fn bad(reason: &'static str, data: &[u8]) -> RemuxError {
    RemuxError::malformed(TagKind::Audio, "AudioSpecificConfig", reason, data, 0)
}

fn read_aot(r: &mut BitReader<'_>) -> Option<u8> {
    let a = r.bits(5)?;
    let a = if a == 31 { 32 + r.bits(6)? } else { a };
    u8::try_from(a).ok()
}

/// Reads a sampling index; an explicit frequency (index 15) is mapped to the table entry with
/// exactly that rate, or left as `None` with the rate.
fn read_rate(r: &mut BitReader<'_>) -> Option<(Option<u8>, u32)> {
    let idx = r.bits(4)?;
    if idx == 15 {
        let hz = r.bits(24)?;
        let mapped = SAMPLE_RATES
            .iter()
            .position(|&x| x == hz)
            .and_then(|i| u8::try_from(i).ok());
        return Some((mapped, hz));
    }
    let hz = *SAMPLE_RATES.get(usize::try_from(idx).ok()?)?;
    Some((u8::try_from(idx).ok(), hz))
}

impl AacConfig {
    /// Parses an AudioSpecificConfig. Rejects configs that cannot be expressed in ADTS
    /// (sampling index 13/14, an explicit rate not in the table, channel configuration 0 or > 7).
    pub fn parse(raw: &Bytes) -> Result<Self, RemuxError> {
        let d = &raw[..];
        let mut r = BitReader::new(d);
        let object_type = read_aot(&mut r).ok_or_else(|| bad("truncated object type", d))?;
        if object_type == 0 {
            return Err(bad("audio object type 0", d));
        }
        let (core_index, core_rate) =
            read_rate(&mut r).ok_or_else(|| bad("reserved or truncated sampling index", d))?;
        let channels = r
            .bits(4)
            .ok_or_else(|| bad("truncated channel configuration", d))? as u8;
        let mut sample_rate_hz = core_rate;
        let mut core_aot = object_type;
        if object_type == 5 || object_type == 29 {
            // Explicit hierarchical SBR/PS signalling: extension rate, then the real core AOT.
            let (_, ext_rate) =
                read_rate(&mut r).ok_or_else(|| bad("bad extension sampling index", d))?;
            sample_rate_hz = ext_rate;
            core_aot = read_aot(&mut r).ok_or_else(|| bad("truncated core object type", d))?;
        }
        let ga = matches!(core_aot, 1..=4 | 6 | 7 | 17 | 19..=23);
        let samples_per_frame = if ga && r.flag() == Some(true) {
            960
        } else {
            1024
        };
        let sampling_index =
            core_index.ok_or_else(|| bad("explicit sampling rate has no ADTS index", d))?;
        if channels == 0 || channels > 7 {
            return Err(RemuxError::Unsupported {
                kind: TagKind::Audio,
                what: format!("AAC channel configuration {channels}"),
                timestamp_ms: 0,
            });
        }
        let adts_profile = if (1..=4).contains(&core_aot) {
            core_aot - 1
        } else {
            1
        };
        Ok(AacConfig {
            object_type,
            adts_profile,
            sampling_index,
            sample_rate_hz,
            channels,
            samples_per_frame,
            raw: raw.clone(),
        })
    }

    /// RFC 6381 codec string: `mp4a.40.<aot>`.
    pub fn codecs_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// Duration of one frame at the core rate, in 90 kHz ticks (rounded down).
    pub fn frame_duration_90k(&self) -> u64 {
        let core = SAMPLE_RATES
            .get(usize::from(self.sampling_index))
            .copied()
            .unwrap_or(44100);
        u64::from(self.samples_per_frame) * 90_000 / u64::from(core)
    }

    /// The 7-byte ADTS header (MPEG-4 ID, no CRC) for a raw frame of `raw_len` bytes.
    pub fn adts_header(&self, raw_len: usize) -> Result<[u8; 7], RemuxError> {
        adts_header(
            self.adts_profile,
            self.sampling_index,
            self.channels,
            raw_len,
        )
    }
}

/// Writes an ADTS header. `len` is the 13-bit aac_frame_length, header included.
pub fn adts_header(
    profile: u8,
    sampling_index: u8,
    channels: u8,
    raw_len: usize,
) -> Result<[u8; 7], RemuxError> {
    let len = raw_len + 7;
    if len > 0x1FFF {
        return Err(RemuxError::LimitExceeded {
            kind: TagKind::Audio,
            what: "ADTS frame length",
            timestamp_ms: 0,
            value: len,
            limit: 0x1FFF,
        });
    }
    if sampling_index > 12 || profile > 3 || channels > 7 {
        return Err(RemuxError::Unsupported {
            kind: TagKind::Audio,
            what: "ADTS field out of range".into(),
            timestamp_ms: 0,
        });
    }
    Ok([
        0xFF,
        0xF1,
        (profile << 6) | (sampling_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((len >> 11) as u8),
        ((len >> 3) & 0xFF) as u8,
        (((len & 7) as u8) << 5) | 0x1F,
        0xFC,
    ])
}

/// What the first MP3 frame header tells us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mp3Info {
    /// 0x03 for MPEG-1, 0x04 for MPEG-2 and MPEG-2.5.
    pub stream_type: u8,
    pub sample_rate_hz: u32,
    pub channels: u8,
    pub samples_per_frame: u32,
}

/// Parses an MPEG audio frame header (4 bytes, sync 0x7FF).
pub fn parse_mp3_header(d: &[u8]) -> Result<Mp3Info, RemuxError> {
    let bad = |reason| RemuxError::malformed(TagKind::Audio, "MP3 frame header", reason, d, 0);
    let h = d.get(..4).ok_or_else(|| bad("shorter than 4 bytes"))?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return Err(bad("no frame sync"));
    }
    let version = (h[1] >> 3) & 3; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    let layer = (h[1] >> 1) & 3; // 1 = layer III
    if version == 1 || layer == 0 {
        return Err(bad("reserved version or layer"));
    }
    let rate_idx = usize::from((h[2] >> 2) & 3);
    let base = [44100u32, 48000, 32000]
        .get(rate_idx)
        .copied()
        .ok_or_else(|| bad("reserved sample rate"))?;
    let sample_rate_hz = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    let samples_per_frame = match (version, layer) {
        (_, 3) => 384,
        (3, _) | (_, 2) => 1152,
        _ => 576,
    };
    Ok(Mp3Info {
        stream_type: if version == 3 { 0x03 } else { 0x04 },
        sample_rate_hz,
        channels,
        samples_per_frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_lc_44100_stereo() {
        let c = AacConfig::parse(&Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!(
            (
                c.object_type,
                c.adts_profile,
                c.sampling_index,
                c.sample_rate_hz,
                c.channels
            ),
            (2, 1, 4, 44100, 2)
        );
        assert_eq!(c.codecs_string(), "mp4a.40.2");
        assert_eq!(
            c.adts_header(100).unwrap(),
            [0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]
        );
        assert_eq!(c.frame_duration_90k(), 2089);
    }

    #[test]
    fn asc_explicit_he_aac_maps_to_lc_core() {
        // AOT 5, core idx 6 (24 kHz), stereo, ext idx 3 (48 kHz), core AOT 2.
        let c = AacConfig::parse(&Bytes::from_static(&[0x2B, 0x11, 0x88, 0x00])).unwrap();
        assert_eq!(
            (
                c.object_type,
                c.adts_profile,
                c.sampling_index,
                c.sample_rate_hz
            ),
            (5, 1, 6, 48000)
        );
    }

    #[test]
    fn asc_explicit_rate_mapped_or_rejected() {
        // AOT 2, idx 15, 48000 Hz explicit, 2 ch.
        let hz = 48000u32;
        let bits: u64 = (2u64 << 35) | (15 << 31) | (u64::from(hz) << 7) | (2 << 3);
        let b = bits.to_be_bytes();
        let c = AacConfig::parse(&Bytes::copy_from_slice(&b[3..8])).unwrap();
        assert_eq!(c.sampling_index, 3);
        let bits: u64 = (2u64 << 35) | (15 << 31) | (12345u64 << 7) | (2 << 3);
        let b = bits.to_be_bytes();
        assert!(AacConfig::parse(&Bytes::copy_from_slice(&b[3..8])).is_err());
        // Reserved index 13.
        assert!(AacConfig::parse(&Bytes::from_static(&[0x16, 0x90])).is_err());
    }

    #[test]
    fn adts_every_sampling_index() {
        for idx in 0..=12u8 {
            for ch in 1..=7u8 {
                for len in [0usize, 1, 371, 8184] {
                    let h = adts_header(1, idx, ch, len).unwrap();
                    assert_eq!(h[0], 0xFF);
                    assert_eq!(h[1] & 0xF6, 0xF0, "hls.js sync test");
                    assert_eq!(h[2] >> 6, 1);
                    assert_eq!((h[2] >> 2) & 0x0F, idx);
                    assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), ch);
                    let l = (usize::from(h[3] & 3) << 11)
                        | (usize::from(h[4]) << 3)
                        | usize::from(h[5] >> 5);
                    assert_eq!(l, len + 7);
                    assert_eq!((u16::from(h[5] & 0x1F) << 6) | u16::from(h[6] >> 2), 0x7FF);
                    assert_eq!(h[6] & 3, 0);
                }
            }
        }
        assert!(adts_header(1, 13, 2, 10).is_err());
        assert!(adts_header(1, 4, 2, 8185).is_err());
    }

    #[test]
    fn mp3_versions() {
        let m = parse_mp3_header(&[0xFF, 0xFB, 0x90, 0x64]).unwrap();
        assert_eq!(
            (
                m.stream_type,
                m.sample_rate_hz,
                m.channels,
                m.samples_per_frame
            ),
            (0x03, 44100, 2, 1152)
        );
        let m = parse_mp3_header(&[0xFF, 0xF3, 0x90, 0xC4]).unwrap();
        assert_eq!(
            (
                m.stream_type,
                m.sample_rate_hz,
                m.channels,
                m.samples_per_frame
            ),
            (0x04, 22050, 1, 576)
        );
        assert!(parse_mp3_header(&[0xFF, 0xEB, 0x90, 0x64]).is_err());
    }
}
