//! AV1: the AV1CodecConfigurationRecord (AV1 Codec ISO Media File Format Binding §2.3, the
//! `av1C` payload and the Enhanced RTMP `av01` SequenceStart body), its configOBUs (OBU syntax
//! per AV1 Bitstream & Decoding Process Specification §5.3, sequence header §5.5) and the
//! "Codecs Parameter String" of the binding (`av01.P.LLT.DD`).
//!
//! ```text
//! 1b marker = 1 | 7b version = 1
//! 3b seq_profile | 5b seq_level_idx_0
//! 1b seq_tier_0 | 1b high_bitdepth | 1b twelve_bit | 1b monochrome
//!   | 1b chroma_subsampling_x | 1b chroma_subsampling_y | 2b chroma_sample_position
//! 3b reserved | 1b initial_presentation_delay_present | 4b delay_minus_one / reserved
//! configOBUs: zero or more OBUs (a sequence header and metadata), to the end of the record
//! ```
//! An OBU here must have a clear forbidden bit, a sequence header or metadata type, and an
//! `obu_size` (leb128) that stays inside the record: anything else is rejected as garbage.
//!
//! Field note: FFmpeg 9 with libaom sends an *empty* SequenceStart body first and the real
//! record with the first frame; [`Av1Config::parse`] rejects the empty one.

use bytes::Bytes;

use super::bad_video;
use super::bits::{leb128, BitReader};
use crate::RemuxError;

const WHAT: &str = "AV1CodecConfigurationRecord";
/// OBU types (AV1 spec §6.2.2).
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// Temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// Metadata.
pub const OBU_METADATA: u8 = 5;

/// The fields of a sequence header OBU needed for the picture size and the codec string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceHeader {
    /// seq_profile (0 Main, 1 High, 2 Professional).
    pub seq_profile: u8,
    /// seq_level_idx of operating point 0.
    pub seq_level_idx_0: u8,
    /// seq_tier of operating point 0.
    pub seq_tier_0: bool,
    /// max_frame_width_minus_1 + 1.
    pub max_frame_width: u32,
    /// max_frame_height_minus_1 + 1.
    pub max_frame_height: u32,
}

/// A parsed AV1CodecConfigurationRecord.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Av1Config {
    /// The record exactly as received: the `av1C` box payload.
    pub raw: Bytes,
    /// seq_profile.
    pub seq_profile: u8,
    /// seq_level_idx_0.
    pub seq_level_idx_0: u8,
    /// seq_tier_0.
    pub seq_tier_0: bool,
    /// high_bitdepth.
    pub high_bitdepth: bool,
    /// twelve_bit.
    pub twelve_bit: bool,
    /// monochrome.
    pub monochrome: bool,
    /// chroma_subsampling_x.
    pub chroma_subsampling_x: bool,
    /// chroma_subsampling_y.
    pub chroma_subsampling_y: bool,
    /// chroma_sample_position.
    pub chroma_sample_position: u8,
    /// The configOBUs (zero-copy slice of `raw`).
    pub config_obus: Bytes,
    /// The sequence header from configOBUs, if the record carries one (it may be empty).
    pub sequence_header: Option<SequenceHeader>,
}

impl Av1Config {
    /// Parses the record and validates its configOBUs.
    pub fn parse(data: &[u8]) -> Result<Av1Config, RemuxError> {
        if data.len() < 4 {
            return Err(bad_video(WHAT, "shorter than 4 bytes", data, 0));
        }
        if data[0] != 0x81 {
            return Err(bad_video(WHAT, "marker/version is not 1/1", data, 0));
        }
        let raw = Bytes::copy_from_slice(data);
        let mut sequence_header = None;
        let mut pos = 4;
        while pos < data.len() {
            let obu = parse_obu(data, pos)
                .ok_or_else(|| bad_video(WHAT, "malformed OBU in configOBUs", data, pos))?;
            match obu.obu_type {
                OBU_SEQUENCE_HEADER => {
                    if sequence_header.is_some() {
                        return Err(bad_video(WHAT, "two sequence header OBUs", data, pos));
                    }
                    let sh =
                        parse_sequence_header(&data[obu.payload.clone()]).ok_or_else(|| {
                            bad_video(WHAT, "sequence header OBU does not parse", data, pos)
                        })?;
                    sequence_header = Some(sh);
                }
                OBU_METADATA => {}
                _ => return Err(bad_video(WHAT, "OBU type not allowed in av1C", data, pos)),
            }
            pos = obu.end;
        }
        let (b1, b2) = (data[1], data[2]);
        Ok(Av1Config {
            seq_profile: b1 >> 5,
            seq_level_idx_0: b1 & 0x1F,
            seq_tier_0: b2 & 0x80 != 0,
            high_bitdepth: b2 & 0x40 != 0,
            twelve_bit: b2 & 0x20 != 0,
            monochrome: b2 & 0x10 != 0,
            chroma_subsampling_x: b2 & 0x08 != 0,
            chroma_subsampling_y: b2 & 0x04 != 0,
            chroma_sample_position: b2 & 0x03,
            config_obus: raw.slice(4..),
            sequence_header,
            raw,
        })
    }

    /// Bit depth: 12 if twelve_bit, else 10 if high_bitdepth, else 8.
    pub fn bit_depth(&self) -> u8 {
        match (self.high_bitdepth, self.twelve_bit) {
            (true, true) => 12,
            (true, false) => 10,
            _ => 8,
        }
    }

    /// `(width, height)` from the sequence header's max_frame_width/height, if present.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        self.sequence_header
            .map(|s| (s.max_frame_width, s.max_frame_height))
    }

    /// The binding's codecs parameter string, short form: `av01.P.LLT.DD`, e.g. `av01.0.04M.08`
    /// (Main profile, level index 4 = level 3.0, Main tier, 8-bit).
    pub fn codec_string(&self) -> String {
        let tier = if self.seq_tier_0 { 'H' } else { 'M' };
        format!(
            "av01.{}.{:02}{tier}.{:02}",
            self.seq_profile,
            self.seq_level_idx_0,
            self.bit_depth()
        )
    }
}

/// One OBU's place in a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obu {
    /// obu_type.
    pub obu_type: u8,
    /// Byte range of the payload.
    pub payload: std::ops::Range<usize>,
    /// Offset just past the OBU.
    pub end: usize,
}

/// Parses the OBU starting at `pos` (AV1 spec §5.3.1): checks the forbidden bit, reads the
/// optional extension byte and `obu_size`; an OBU without `obu_size` runs to the end of `data`.
/// `None` if the header is malformed or the size overruns `data`.
pub fn parse_obu(data: &[u8], pos: usize) -> Option<Obu> {
    let header = *data.get(pos)?;
    if header & 0x80 != 0 {
        return None; // obu_forbidden_bit
    }
    let obu_type = (header >> 3) & 0x0F;
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let mut p = pos + 1 + usize::from(has_extension);
    if p > data.len() {
        return None;
    }
    let size = if has_size {
        let (size, used) = leb128(&data[p..])?;
        p += used;
        usize::try_from(size).ok()?
    } else {
        data.len() - p
    };
    let end = p.checked_add(size)?;
    if end > data.len() {
        return None;
    }
    Some(Obu {
        obu_type,
        payload: p..end,
        end,
    })
}

/// Finds and parses the sequence header OBU in a temporal unit (a keyframe in low-overhead
/// bitstream format, as Enhanced RTMP `av01` CodedFrames carry it). `None` if there is none or
/// the OBUs do not parse.
pub fn find_sequence_header(temporal_unit: &[u8]) -> Option<SequenceHeader> {
    let mut pos = 0;
    while pos < temporal_unit.len() {
        let obu = parse_obu(temporal_unit, pos)?;
        if obu.obu_type == OBU_SEQUENCE_HEADER {
            return parse_sequence_header(&temporal_unit[obu.payload]);
        }
        pos = obu.end;
    }
    None
}

/// Parses sequence_header_obu() (AV1 spec §5.5.1) up to max_frame_height_minus_1.
pub fn parse_sequence_header(payload: &[u8]) -> Option<SequenceHeader> {
    let mut r = BitReader::new(payload);
    let seq_profile = r.bits(3)? as u8;
    if seq_profile > 2 {
        return None;
    }
    let _still_picture = r.flag()?;
    let reduced_still_picture_header = r.flag()?;
    let (seq_level_idx_0, seq_tier_0);
    if reduced_still_picture_header {
        seq_level_idx_0 = r.bits(5)? as u8;
        seq_tier_0 = false;
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.flag()? {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        let (mut level0, mut tier0) = (0u8, false);
        for i in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            let level = r.bits(5)? as u8;
            let tier = level > 7 && r.flag()?;
            if i == 0 {
                (level0, tier0) = (level, tier);
            }
            if decoder_model_info_present && r.flag()? {
                r.skip(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay_present && r.flag()? {
                r.skip(4)?;
            }
        }
        seq_level_idx_0 = level0;
        seq_tier_0 = tier0;
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let max_frame_width = r.bits(width_bits)?.checked_add(1)?;
    let max_frame_height = r.bits(height_bits)?.checked_add(1)?;
    Some(SequenceHeader {
        seq_profile,
        seq_level_idx_0,
        seq_tier_0,
        max_frame_width,
        max_frame_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record SVT-AV1 (FFmpeg 9) sends for 320x240 yuv420p: 81 = marker+version 1;
    /// 00 = profile 0, level index 0; 0C = Main tier, 8-bit, 4:2:0 (subsampling x and y),
    /// sample position 0; 00 = no presentation delay; then one sequence header OBU
    /// (0A = type 1 with obu_size, size 0B = 11 bytes).
    pub(crate) const SVT_320X240: &[u8] = &[
        0x81, 0x00, 0x0C, 0x00, 0x0A, 0x0B, 0x02, 0x00, 0x00, 0x05, 0x61, 0xE7, 0xFD, 0xE0, 0x17,
        0xC0, 0x02,
    ];

    #[test]
    fn parses_svt_record() {
        let c = Av1Config::parse(SVT_320X240).unwrap();
        assert_eq!(
            (c.seq_profile, c.seq_level_idx_0, c.seq_tier_0),
            (0, 0, false)
        );
        assert_eq!(c.bit_depth(), 8);
        assert!(c.chroma_subsampling_x && c.chroma_subsampling_y);
        assert_eq!(c.dimensions(), Some((320, 240)));
        assert_eq!(c.codec_string(), "av01.0.00M.08");
        assert_eq!(c.config_obus.len(), SVT_320X240.len() - 4);
        assert_eq!(find_sequence_header(&SVT_320X240[4..]), c.sequence_header);
    }

    #[test]
    fn codec_string_fields() {
        let mut c = Av1Config::parse(&SVT_320X240[..4]).unwrap();
        assert_eq!(c.dimensions(), None, "configOBUs may be empty");
        c.seq_level_idx_0 = 8;
        c.seq_tier_0 = true;
        c.high_bitdepth = true;
        // The binding's example form: av01.0.08H.10 style.
        assert_eq!(c.codec_string(), "av01.0.08H.10");
        c.twelve_bit = true;
        c.seq_profile = 2;
        assert_eq!(c.codec_string(), "av01.2.08H.12");
    }

    #[test]
    fn rejects_garbage() {
        assert!(
            Av1Config::parse(&[]).is_err(),
            "empty (libaom's first SequenceStart)"
        );
        assert!(
            Av1Config::parse(&[0x01, 0, 0x0C, 0]).is_err(),
            "marker bit clear"
        );
        let mut v = SVT_320X240.to_vec();
        v[5] = 0x20;
        assert!(Av1Config::parse(&v).is_err(), "obu_size overruns");
        let mut v = SVT_320X240.to_vec();
        v[4] |= 0x80;
        assert!(Av1Config::parse(&v).is_err(), "forbidden bit");
        let mut v = SVT_320X240.to_vec();
        v[4] = 0x32; // frame OBU (type 6) with size
        assert!(Av1Config::parse(&v).is_err(), "frame OBU in configOBUs");
        let mut v = SVT_320X240.to_vec();
        v.extend_from_slice(&SVT_320X240[4..]);
        assert!(Av1Config::parse(&v).is_err(), "two sequence headers");
        let mut v = SVT_320X240[..4].to_vec();
        v.extend_from_slice(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert!(Av1Config::parse(&v).is_err(), "leb128 longer than 8 bytes");
        let mut v = SVT_320X240[..4].to_vec();
        v.extend_from_slice(&[0x0A, 0x01, 0xE0]);
        assert!(Av1Config::parse(&v).is_err(), "profile 7 sequence header");
    }

    /// MSB-first bit packing for hand-built headers.
    fn pack(fields: &[(u64, u32)]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &(v, n) in fields {
            for i in (0..n).rev() {
                bits.push(((v >> i) & 1) as u8);
            }
        }
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |a, (i, b)| a | (b << (7 - i)))
            })
            .collect()
    }

    #[test]
    fn sequence_header_with_timing_decoder_model_and_two_operating_points() {
        // AV1 spec §5.5.1, every optional branch taken once.
        let sh = pack(&[
            (0, 3),      // seq_profile
            (0, 1),      // still_picture
            (0, 1),      // reduced_still_picture_header
            (1, 1),      // timing_info_present_flag
            (1001, 32),  // num_units_in_display_tick
            (60000, 32), // time_scale
            (1, 1),      // equal_picture_interval
            (1, 1),      // num_ticks_per_picture_minus_1 = uvlc "1" = 0
            (1, 1),      // decoder_model_info_present_flag
            (9, 5),      // buffer_delay_length_minus_1: delays are 10 bits
            (1, 32),     // num_units_in_decoding_tick
            (31, 5),     // buffer_removal_time_length_minus_1
            (31, 5),     // frame_presentation_time_length_minus_1
            (1, 1),      // initial_display_delay_present_flag
            (1, 5),      // operating_points_cnt_minus_1: two points
            (0x10F, 12), // op 0: operating_point_idc
            (9, 5),      // op 0: seq_level_idx 9 (level 4.1) > 7, so a tier bit
            (1, 1),      // op 0: seq_tier High
            (1, 1),      // op 0: decoder_model_present_for_this_op
            (500, 10),   // op 0: decoder_buffer_delay
            (500, 10),   // op 0: encoder_buffer_delay
            (0, 1),      // op 0: low_delay_mode_flag
            (1, 1),      // op 0: initial_display_delay_present_for_this_op
            (9, 4),      // op 0: initial_display_delay_minus_1
            (0x103, 12), // op 1: operating_point_idc
            (4, 5),      // op 1: seq_level_idx 4: no tier bit
            (0, 1),      // op 1: decoder_model_present_for_this_op
            (0, 1),      // op 1: initial_display_delay_present_for_this_op
            (10, 4),     // frame_width_bits_minus_1
            (10, 4),     // frame_height_bits_minus_1
            (1919, 11),  // max_frame_width_minus_1
            (1079, 11),  // max_frame_height_minus_1
        ]);
        let got = parse_sequence_header(&sh).unwrap();
        assert_eq!(
            got,
            SequenceHeader {
                seq_profile: 0,
                seq_level_idx_0: 9,
                seq_tier_0: true,
                max_frame_width: 1920,
                max_frame_height: 1080,
            }
        );
        for cut in 0..sh.len() - 1 {
            assert_eq!(
                parse_sequence_header(&sh[..cut]),
                None,
                "truncated at {cut}"
            );
        }
        // Reduced still picture header: level only, no operating points.
        let still = pack(&[
            (1, 3),
            (1, 1),
            (1, 1),
            (12, 5),
            (3, 4),
            (3, 4),
            (15, 4),
            (7, 4),
        ]);
        let got = parse_sequence_header(&still).unwrap();
        assert_eq!((got.seq_profile, got.seq_level_idx_0), (1, 12));
        assert_eq!((got.max_frame_width, got.max_frame_height), (16, 8));
    }

    #[test]
    fn metadata_obus_and_sizeless_last_obu_are_accepted() {
        // Metadata OBU (type 5 with size 1) then the sequence header without obu_size.
        let mut v = SVT_320X240[..4].to_vec();
        v.extend_from_slice(&[0x2A, 0x01, 0x00, 0x08]);
        v.extend_from_slice(&SVT_320X240[6..]);
        let c = Av1Config::parse(&v).unwrap();
        assert_eq!(c.dimensions(), Some((320, 240)));
    }
}
