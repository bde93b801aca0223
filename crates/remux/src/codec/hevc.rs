//! HEVC: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1, the `hvcC` payload and
//! the Enhanced RTMP `hvc1` SequenceStart body), the SPS fields that give the picture size
//! (ITU-T H.265 §7.3.2.2.1, §7.3.3 profile_tier_level), and the `CODECS` string of
//! ISO/IEC 14496-15 Annex E.3 (RFC 6381 §3.3).
//!
//! ```text
//! u8   configurationVersion = 1
//! 2b general_profile_space | 1b general_tier_flag | 5b general_profile_idc
//! u32  general_profile_compatibility_flags
//! u48  general_constraint_indicator_flags
//! u8   general_level_idc
//! 4b '1111' | 12b min_spatial_segmentation_idc
//! 6b '111111' | 2b parallelismType
//! 6b '111111' | 2b chromaFormat
//! 5b '11111' | 3b bitDepthLumaMinus8
//! 5b '11111' | 3b bitDepthChromaMinus8
//! u16  avgFrameRate
//! 2b constantFrameRate | 3b numTemporalLayers | 1b temporalIdNested | 2b lengthSizeMinusOne
//! u8   numOfArrays, then per array:
//!      1b array_completeness | 1b reserved | 6b NAL_unit_type
//!      u16 numNalus, then per NAL: u16 nalUnitLength + NAL unit
//! ```
//! Reserved bits are not checked: encoders in the field leave some of them zero.

use bytes::Bytes;

use super::bad_video;
use super::bits::{rbsp, BitReader};
use crate::RemuxError;

const WHAT: &str = "HEVCDecoderConfigurationRecord";
/// Size of the fixed part of the record, before the NAL unit arrays.
const FIXED_BYTES: usize = 23;
/// NAL unit types (ITU-T H.265 Table 7-1).
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set.
pub const NAL_PPS: u8 = 34;
/// Bytes of an SPS unescaped to find the picture size: the fields come first (fewer than 60
/// bytes even with 7 sub-layers), so a hostile large SPS costs no more than this.
const SPS_RBSP_CAP_BYTES: usize = 256;

/// A parsed HEVCDecoderConfigurationRecord.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HevcConfig {
    /// The record exactly as received: the `hvcC` box payload.
    pub raw: Bytes,
    /// Bytes of each NAL unit length prefix in samples: 1, 2 or 4.
    pub length_size: u8,
    /// general_profile_space (0..=3).
    pub general_profile_space: u8,
    /// general_tier_flag: false Main tier, true High tier.
    pub general_tier_flag: bool,
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt, ...).
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flags, flag j at bit 31 − j.
    pub general_profile_compatibility_flags: u32,
    /// general_constraint_indicator_flags, 6 bytes in stream order.
    pub general_constraint_indicator_flags: [u8; 6],
    /// general_level_idc (30 × level number, e.g. 93 for level 3.1).
    pub general_level_idc: u8,
    /// chroma_format_idc (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u8,
    /// Luma bit depth (8..=16).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (8..=16).
    pub bit_depth_chroma: u8,
    /// Video parameter sets (NAL header included), zero-copy slices of `raw`.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Displayed width from the first SPS (conformance window applied).
    pub width: u32,
    /// Displayed height from the first SPS (conformance window applied).
    pub height: u32,
}

impl HevcConfig {
    /// Parses an HEVCDecoderConfigurationRecord. Fails on truncation, a version other than 1,
    /// an array that overruns the record, or a missing or unparsable SPS (an `hvc1` sample entry
    /// must carry its parameter sets, ISO/IEC 14496-15 §8.4.1.1, and the size comes from it).
    pub fn parse(data: &[u8]) -> Result<HevcConfig, RemuxError> {
        if data.len() < FIXED_BYTES {
            return Err(bad_video(WHAT, "shorter than 23 bytes", data, 0));
        }
        if data[0] != 1 {
            return Err(bad_video(WHAT, "configurationVersion is not 1", data, 0));
        }
        let raw = Bytes::copy_from_slice(data);
        let length_size_minus_one = data[21] & 0x03;
        if length_size_minus_one == 2 {
            return Err(bad_video(WHAT, "lengthSizeMinusOne is 2", data, 21));
        }
        let mut constraint = [0u8; 6];
        constraint.copy_from_slice(&data[6..12]);
        let num_arrays = data[22];
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        let mut pos = FIXED_BYTES;
        for _ in 0..num_arrays {
            let Some(&type_byte) = data.get(pos) else {
                return Err(bad_video(WHAT, "array header truncated", data, pos));
            };
            let Some(count) = data.get(pos + 1..pos + 3) else {
                return Err(bad_video(WHAT, "array header truncated", data, pos));
            };
            let count = u16::from_be_bytes([count[0], count[1]]);
            pos += 3;
            for _ in 0..count {
                let Some(len) = data.get(pos..pos + 2) else {
                    return Err(bad_video(WHAT, "NAL unit length truncated", data, pos));
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                pos += 2;
                if data.len() - pos < len {
                    return Err(bad_video(WHAT, "NAL unit overruns the record", data, pos));
                }
                let nal = raw.slice(pos..pos + len);
                pos += len;
                match type_byte & 0x3F {
                    NAL_VPS => vps.push(nal),
                    NAL_SPS => sps.push(nal),
                    NAL_PPS => pps.push(nal),
                    _ => {} // SEI and others: kept in `raw`, not needed here.
                }
            }
        }
        let Some(first_sps) = sps.first() else {
            return Err(bad_video(WHAT, "no SPS in the record", data, FIXED_BYTES));
        };
        let Some(size) = parse_sps_size(first_sps) else {
            return Err(bad_video(WHAT, "SPS does not parse", data, FIXED_BYTES));
        };
        Ok(HevcConfig {
            length_size: length_size_minus_one + 1,
            general_profile_space: data[1] >> 6,
            general_tier_flag: data[1] & 0x20 != 0,
            general_profile_idc: data[1] & 0x1F,
            general_profile_compatibility_flags: u32::from_be_bytes([
                data[2], data[3], data[4], data[5],
            ]),
            general_constraint_indicator_flags: constraint,
            general_level_idc: data[12],
            chroma_format_idc: data[16] & 0x03,
            bit_depth_luma: (data[17] & 0x07) + 8,
            bit_depth_chroma: (data[18] & 0x07) + 8,
            vps,
            sps,
            pps,
            width: size.0,
            height: size.1,
            raw,
        })
    }

    /// The ISO/IEC 14496-15 Annex E.3 codecs parameter, e.g. `hvc1.1.6.L93.B0`: profile space
    /// letter (none, A, B, C) and profile_idc; the compatibility flags bit-reversed in hex; tier
    /// `L`/`H` and level_idc; then the constraint bytes in hex up to the last non-zero one.
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.general_profile_space & 3)];
        let tier = if self.general_tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            self.general_level_idc
        );
        let flags = &self.general_constraint_indicator_flags;
        let used = flags.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for b in &flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// The displayed picture size `(width, height)` from an HEVC SPS NAL unit (2-byte NAL header
/// included), with the conformance window cropped. `None` if it does not parse.
pub fn parse_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rb = rbsp(nal, SPS_RBSP_CAP_BYTES);
    let mut r = BitReader::new(&rb);
    // nal_unit_header(): forbidden_zero_bit, nal_unit_type, nuh_layer_id, nuh_temporal_id_plus1.
    r.skip(1)?;
    if r.bits(6)? != u32::from(NAL_SPS) {
        return None;
    }
    r.skip(9)?;
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.skip(1)?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let _sps_id = r.ue()?;
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return None;
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = r.ue()?;
    let height = r.ue()?;
    // SubWidthC / SubHeightC (ITU-T H.265 Table 6-1); 1 for 4:4:4 and separate planes.
    let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
        (1, false) => (2, 2),
        (2, false) => (2, 1),
        _ => (1, 1),
    };
    let (mut crop_w, mut crop_h) = (0u64, 0u64);
    if r.flag()? {
        let left = u64::from(r.ue()?);
        let right = u64::from(r.ue()?);
        let top = u64::from(r.ue()?);
        let bottom = u64::from(r.ue()?);
        crop_w = (left + right) * sub_w;
        crop_h = (top + bottom) * sub_h;
    }
    let w = u64::from(width).checked_sub(crop_w)?;
    let h = u64::from(height).checked_sub(crop_h)?;
    if w == 0 || h == 0 {
        return None;
    }
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

/// profile_tier_level(1, sps_max_sub_layers_minus1) (ITU-T H.265 §7.3.3): 88 bits of general
/// profile, 8 bits of general level, then the sub-layer presence flags and sub-layer fields.
fn skip_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Option<()> {
    r.skip(88 + 8)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    let n = max_sub_layers_minus1 as usize; // 0..=7 from a 3-bit field
    for i in 0..n {
        profile_present[i] = r.flag()?;
        level_present[i] = r.flag()?;
    }
    if n > 0 {
        r.skip(2 * (8 - n))?; // reserved_zero_2bits
    }
    for i in 0..n {
        if profile_present[i] {
            r.skip(88)?;
        }
        if level_present[i] {
            r.skip(8)?;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPS libx265 (FFmpeg 9) writes for 320x240 yuv420p: Main, level 60 (2.0), with
    /// emulation prevention bytes (`00 00 03`) inside profile_tier_level.
    pub(crate) const SPS_320X240: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3C, 0xA0, 0x0A, 0x08, 0x0F, 0x16, 0x59, 0x59, 0xA4, 0x93, 0x2B, 0xC0, 0x5A,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];
    /// The SPS libx265 writes for 322x242: coded as 328x248 with a conformance window.
    const SPS_322X242: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3C, 0xA0, 0x0A, 0x48, 0x0F, 0x9C, 0x92, 0x65, 0x95, 0x9A, 0x49, 0x32, 0xBC,
        0x05, 0xA0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0x21,
    ];

    /// libx265 with `temporal-layers=3`: sps_max_sub_layers_minus1 = 2, so profile_tier_level
    /// carries two sub-layer flag pairs and 12 reserved bits before the SPS id.
    const SPS_320X240_3_SUB_LAYERS: &[u8] = &[
        0x42, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3C, 0x00, 0x00, 0xA0, 0x0A, 0x08, 0x0F, 0x16, 0x59, 0x59, 0x4A, 0xCA, 0x56,
        0x59, 0x24, 0xCA, 0xF0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0C,
        0x84,
    ];

    /// Builds a record around `sps`: Main profile (idc 1, compatibility flags 1 and 2 set =
    /// 0x60000000), constraint byte 0 = 0x90 (progressive_source, frame_only), level 60, 4:2:0,
    /// 8-bit, lengthSizeMinusOne 3, one SPS array.
    fn record(sps: &[u8]) -> Vec<u8> {
        let mut r = vec![
            0x01, // configurationVersion
            0x01, // profile_space 0, tier 0, profile_idc 1
            0x60, 0x00, 0x00, 0x00, // compatibility flags 1 and 2
            0x90, 0x00, 0x00, 0x00, 0x00, 0x00, // constraint indicator flags
            60,   // level_idc: level 2
            0xF0, 0x00, // min_spatial_segmentation_idc 0
            0xFC, // parallelismType 0
            0xFD, // chromaFormat 1
            0xF8, // bitDepthLumaMinus8 0
            0xF8, // bitDepthChromaMinus8 0
            0x00, 0x00, // avgFrameRate
            0x0F, // constantFrameRate 0, numTemporalLayers 1, temporalIdNested 1, length size 4
            0x01, // numOfArrays
            0xA1, // array_completeness 1, NAL type 33 (SPS)
            0x00, 0x01,
        ];
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(sps);
        r
    }

    #[test]
    fn parses_record_and_sps() {
        let c = HevcConfig::parse(&record(SPS_320X240)).unwrap();
        assert_eq!(c.length_size, 4);
        assert_eq!(c.general_profile_idc, 1);
        assert_eq!(c.general_level_idc, 60);
        assert_eq!(c.chroma_format_idc, 1);
        assert_eq!((c.bit_depth_luma, c.bit_depth_chroma), (8, 8));
        assert_eq!((c.width, c.height), (320, 240));
        assert_eq!(c.sps.len(), 1);
        assert_eq!(&c.sps[0][..], SPS_320X240);
        // Profile 1, flags 0x60000000 reversed = 0x6, Main tier level 60, constraint 0x90.
        assert_eq!(c.codec_string(), "hvc1.1.6.L60.90");
        // The conformance window crops 328x248 to 322x242 (SubWidthC = SubHeightC = 2).
        assert_eq!(parse_sps_size(SPS_322X242), Some((322, 242)));
    }

    #[test]
    fn codec_string_spec_examples() {
        let mut c = HevcConfig::parse(&record(SPS_320X240)).unwrap();
        // ISO/IEC 14496-15 E.3 example: hvc1.1.6.L93.B0 (Main, level 3.1, progressive, ...).
        c.general_level_idc = 93;
        c.general_constraint_indicator_flags = [0xB0, 0, 0, 0, 0, 0];
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
        // E.3 example: hev1.A4.41.H120.B0.23 style (space 1 = A, High tier, two constraint bytes).
        c.general_profile_space = 1;
        c.general_profile_idc = 4;
        c.general_profile_compatibility_flags = 0x8200_0000;
        c.general_tier_flag = true;
        c.general_level_idc = 120;
        c.general_constraint_indicator_flags = [0xB0, 0x23, 0, 0, 0, 0];
        assert_eq!(c.codec_string(), "hvc1.A4.41.H120.B0.23");
        c.general_constraint_indicator_flags = [0; 6];
        assert_eq!(c.codec_string(), "hvc1.A4.41.H120");
    }

    #[test]
    fn rejects_bad_records() {
        let good = record(SPS_320X240);
        assert!(
            HevcConfig::parse(&good[..22]).is_err(),
            "truncated fixed part"
        );
        let mut v = good.clone();
        v[0] = 0;
        assert!(HevcConfig::parse(&v).is_err(), "version 0");
        let mut v = good.clone();
        v[21] = 0x0E;
        assert!(HevcConfig::parse(&v).is_err(), "length size 3");
        assert!(
            HevcConfig::parse(&good[..good.len() - 1]).is_err(),
            "NAL overrun"
        );
        let mut v = good.clone();
        v[22] = 2;
        assert!(HevcConfig::parse(&v).is_err(), "missing second array");
        let mut v = good[..23].to_vec();
        v[22] = 0;
        assert!(HevcConfig::parse(&v).is_err(), "no SPS");
        // A huge count with no data must fail quickly without allocating for the count.
        let mut v = good[..23].to_vec();
        v.extend_from_slice(&[0xA1, 0xFF, 0xFF]);
        assert!(HevcConfig::parse(&v).is_err());
    }

    #[test]
    fn sps_size_rejects_garbage() {
        assert_eq!(parse_sps_size(&[]), None);
        assert_eq!(parse_sps_size(&[0x40, 0x01, 0xFF]), None, "a VPS");
        assert_eq!(parse_sps_size(&SPS_320X240[..12]), None, "truncated");
        assert_eq!(parse_sps_size(SPS_320X240), Some((320, 240)));
        assert_eq!(parse_sps_size(SPS_320X240_3_SUB_LAYERS), Some((320, 240)));
    }
}
