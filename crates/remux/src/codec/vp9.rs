//! VP9: the VPCodecConfigurationRecord (VP Codec ISO Media File Format Binding §2.2, the `vpcC`
//! box, version 1), the `vp09.PP.LL.DD` codecs parameter string (same binding, "Codecs Parameter
//! String"), and the picture size from a keyframe's uncompressed header (VP9 Bitstream &
//! Decoding Process Specification §6.2, frame_size() §6.2.5), since `vpcC` carries none.
//!
//! ```text
//! [u8 version = 1 | u24 flags = 0]   FullBox header: present in the Enhanced RTMP body
//! u8  profile
//! u8  level
//! 4b bitDepth | 3b chromaSubsampling | 1b videoFullRangeFlag
//! u8  colourPrimaries
//! u8  transferCharacteristics
//! u8  matrixCoefficients
//! u16 codecInitializationDataSize (0 for VP9) + that many bytes
//! ```
//! FFmpeg 9 sends the FullBox header (`01 00 00 00`) before the record; a bare record is also
//! accepted (its second to fourth bytes, level and bit depth, are never all zero).

use bytes::{BufMut, Bytes, BytesMut};

use super::bad_video;
use super::bits::BitReader;
use crate::RemuxError;

const WHAT: &str = "VPCodecConfigurationRecord";
/// Size of the record without the FullBox header and initialization data.
const RECORD_BYTES: usize = 8;

/// A parsed VPCodecConfigurationRecord.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vp9Config {
    /// The body exactly as received.
    pub raw: Bytes,
    /// The `vpcC` box payload: FullBox header (version 1, flags 0) + record. Equal to `raw` when
    /// the header was sent.
    pub box_payload: Bytes,
    /// profile (0..=3).
    pub profile: u8,
    /// level (10 = 1.0 ... 62 = 6.2).
    pub level: u8,
    /// bitDepth: 8, 10 or 12.
    pub bit_depth: u8,
    /// chromaSubsampling (0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2, 3 4:4:4).
    pub chroma_subsampling: u8,
    /// videoFullRangeFlag.
    pub video_full_range_flag: bool,
    /// colourPrimaries (ISO/IEC 23091-2).
    pub colour_primaries: u8,
    /// transferCharacteristics.
    pub transfer_characteristics: u8,
    /// matrixCoefficients.
    pub matrix_coefficients: u8,
}

impl Vp9Config {
    /// Parses the record, with or without its FullBox header.
    pub fn parse(data: &[u8]) -> Result<Vp9Config, RemuxError> {
        let has_full_box_header =
            data.len() >= 4 + RECORD_BYTES && data[0] == 1 && data[1..4] == [0, 0, 0];
        let start = if has_full_box_header { 4 } else { 0 };
        let Some(rec) = data.get(start..start + RECORD_BYTES) else {
            return Err(bad_video(WHAT, "shorter than 8 bytes", data, 0));
        };
        if data.len() >= 4 && data[0] != 1 && data[1..4] == [0, 0, 0] {
            return Err(bad_video(WHAT, "FullBox version is not 1", data, 0));
        }
        let profile = rec[0];
        if profile > 3 {
            return Err(bad_video(WHAT, "profile above 3", data, start));
        }
        let bit_depth = rec[2] >> 4;
        if ![8, 10, 12].contains(&bit_depth) {
            return Err(bad_video(
                WHAT,
                "bitDepth is not 8, 10 or 12",
                data,
                start + 2,
            ));
        }
        let chroma_subsampling = (rec[2] >> 1) & 0x07;
        if chroma_subsampling > 3 {
            return Err(bad_video(
                WHAT,
                "reserved chromaSubsampling",
                data,
                start + 2,
            ));
        }
        let init_len = usize::from(u16::from_be_bytes([rec[6], rec[7]]));
        let end = start + RECORD_BYTES + init_len;
        if end > data.len() {
            return Err(bad_video(
                WHAT,
                "codecInitializationData overruns the record",
                data,
                start + 6,
            ));
        }
        let raw = Bytes::copy_from_slice(data);
        let box_payload = if has_full_box_header {
            raw.clone()
        } else {
            let mut b = BytesMut::with_capacity(4 + data.len());
            b.put_slice(&[1, 0, 0, 0]);
            b.put_slice(data);
            b.freeze()
        };
        Ok(Vp9Config {
            raw,
            box_payload,
            profile,
            level: rec[1],
            bit_depth,
            chroma_subsampling,
            video_full_range_flag: rec[2] & 1 != 0,
            colour_primaries: rec[3],
            transfer_characteristics: rec[4],
            matrix_coefficients: rec[5],
        })
    }

    /// The short codecs parameter string `vp09.PP.LL.DD`, e.g. `vp09.00.10.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        )
    }

    /// `(width, height)` of a VP9 keyframe from its uncompressed header (VP9 spec §6.2); `None`
    /// for inter frames, shown-existing frames and anything that does not parse. A superframe
    /// starts with its first frame, so it can be passed whole.
    pub fn frame_size(frame: &[u8]) -> Option<(u32, u32)> {
        let mut r = BitReader::new(frame);
        if r.bits(2)? != 2 {
            return None; // frame_marker
        }
        let profile_low = r.bit()?;
        let profile_high = r.bit()?;
        let profile = (profile_high << 1) | profile_low;
        if profile == 3 {
            r.skip(1)?; // reserved_zero
        }
        if r.flag()? {
            return None; // show_existing_frame
        }
        let frame_type = r.bit()?;
        if frame_type != 0 {
            return None; // not a KEY_FRAME
        }
        r.skip(2)?; // show_frame, error_resilient_mode
        if r.bits(24)? != 0x49_83_42 {
            return None; // frame_sync_code
        }
        // color_config() (§6.2.2)
        if profile >= 2 {
            r.skip(1)?; // ten_or_twelve_bit
        }
        let color_space = r.bits(3)?;
        if color_space != 7 {
            r.skip(1)?; // color_range
            if profile == 1 || profile == 3 {
                r.skip(3)?; // subsampling_x, subsampling_y, reserved_zero
            }
        } else if profile == 1 || profile == 3 {
            r.skip(1)?; // reserved_zero
        }
        let width = r.bits(16)? + 1;
        let height = r.bits(16)? + 1;
        Some((width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What FFmpeg 9 (libvpx-vp9, yuv420p) sends: FullBox header 01 000000; profile 0; level 0x14
    /// = 20 (level 2); 0x80 = 8-bit, 4:2:0 vertical (0), limited range; BT.709-ish defaults
    /// 02/02/02 (unspecified); no initialization data.
    const FFMPEG9_420: &[u8] = &[
        0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0x80, 0x02, 0x02, 0x02, 0x00, 0x00,
    ];

    #[test]
    fn parses_with_and_without_full_box_header() {
        let c = Vp9Config::parse(FFMPEG9_420).unwrap();
        assert_eq!((c.profile, c.level, c.bit_depth), (0, 20, 8));
        assert_eq!(c.chroma_subsampling, 0);
        assert_eq!(c.codec_string(), "vp09.00.20.08");
        assert_eq!(c.box_payload, c.raw);
        let bare = Vp9Config::parse(&FFMPEG9_420[4..]).unwrap();
        assert_eq!(bare.box_payload, c.box_payload);
        assert_eq!(bare.codec_string(), "vp09.00.20.08");
    }

    #[test]
    fn rejects_bad_records() {
        assert!(Vp9Config::parse(&FFMPEG9_420[..7]).is_err());
        let mut v = FFMPEG9_420.to_vec();
        v[6] = 0x90; // bitDepth 9
        assert!(Vp9Config::parse(&v).is_err());
        let mut v = FFMPEG9_420.to_vec();
        v[4] = 4;
        assert!(Vp9Config::parse(&v).is_err(), "profile 4");
        let mut v = FFMPEG9_420.to_vec();
        v[11] = 1; // one byte of initialization data that is not there
        assert!(Vp9Config::parse(&v).is_err());
        let mut v = FFMPEG9_420.to_vec();
        v[0] = 0; // version 0 FullBox
        assert!(Vp9Config::parse(&v).is_err());
    }

    #[test]
    fn keyframe_size() {
        // frame_marker 10, profile 0 (0,0), show_existing 0, key 0, show 1, error_res 0,
        // sync code 49 83 42, color_space 2 (3 bits) + color_range 0, width-1 = 319,
        // height-1 = 239.
        let mut bits: Vec<u8> = Vec::new();
        let mut push = |v: u32, n: u32| {
            for i in (0..n).rev() {
                bits.push(((v >> i) & 1) as u8);
            }
        };
        push(2, 2);
        push(0, 2);
        push(0, 1);
        push(0, 1);
        push(1, 1);
        push(0, 1);
        push(0x49_83_42, 24);
        push(2, 3);
        push(0, 1);
        push(319, 16);
        push(239, 16);
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |a, (i, b)| a | (b << (7 - i)))
            })
            .collect();
        assert_eq!(Vp9Config::frame_size(&bytes), Some((320, 240)));
        assert_eq!(Vp9Config::frame_size(&bytes[..6]), None, "truncated");
        let mut inter = bytes.clone();
        inter[0] |= 0x04; // frame_type 1
        assert_eq!(Vp9Config::frame_size(&inter), None);
        assert_eq!(Vp9Config::frame_size(&[]), None);
    }
}
