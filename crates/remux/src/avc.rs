//! H.264: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), the SPS fields needed for
//! resolution and frame rate (ITU-T H.264 §7.3.2.1.1 and Annex E.1.1, exp-Golomb per §9.1), and
//! the AVCC (length-prefixed) → Annex B conversion for MPEG-TS (ISO/IEC 13818-1 §2.14).

use bytes::Bytes;

use crate::codec::bits::{rbsp, BitReader};
use crate::{RemuxError, TagKind};

/// The AUD NAL we insert when an access unit lacks one: primary_pic_type 7 (any slice type).
pub const AUD_NAL: &[u8] = &[0x00, 0x00, 0x00, 0x01, 0x09, 0xF0];
/// Start code for every NAL after the first of an access unit (3 bytes: smaller than AVCC's 4).
pub const START_CODE_3: &[u8] = &[0x00, 0x00, 0x01];
/// Start code for the first NAL of an access unit.
pub const START_CODE_4: &[u8] = &[0x00, 0x00, 0x00, 0x01];

/// Upper bound on SPS/PPS counts and sizes we keep from a configuration record.
const MAX_PARAM_SETS: usize = 32;

/// Fields decoded from a sequence parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
    /// From VUI timing info when present (time_scale / (2 × num_units_in_tick)).
    pub frame_rate: Option<f64>,
}

/// A parsed AVCDecoderConfigurationRecord. Parameter sets are zero-copy slices of the tag.
#[derive(Clone, Debug)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub compatibility: u8,
    pub level_idc: u8,
    /// 1, 2 or 4.
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    pub sps_info: Option<SpsInfo>,
    /// The record as received, to tell a re-sent identical header from a real change.
    pub raw: Bytes,
}

fn bad(reason: &'static str, data: &[u8], offset: usize) -> RemuxError {
    RemuxError::malformed(
        TagKind::Video,
        "AVCDecoderConfigurationRecord",
        reason,
        data,
        offset,
    )
}

impl AvcConfig {
    /// Parses the record. Fails on truncation or an illegal NAL length size.
    pub fn parse(raw: &Bytes) -> Result<Self, RemuxError> {
        let d = &raw[..];
        if d.len() < 7 {
            return Err(bad("shorter than 7 bytes", d, 0));
        }
        if d[0] != 1 {
            return Err(bad("configurationVersion is not 1", d, 0));
        }
        let nal_length_size = (d[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(bad("lengthSizeMinusOne = 2 is illegal", d, 4));
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Bytes>, RemuxError> {
            if count > MAX_PARAM_SETS {
                return Err(bad("too many parameter sets", d, *pos));
            }
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                let h = d
                    .get(*pos..*pos + 2)
                    .ok_or_else(|| bad("truncated parameter set length", d, *pos))?;
                let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
                let start = *pos + 2;
                let end = start + len;
                if end > d.len() {
                    return Err(bad("parameter set overruns record", d, *pos));
                }
                if len > 0 {
                    v.push(raw.slice(start..end));
                }
                *pos = end;
            }
            Ok(v)
        };
        let num_sps = usize::from(d[5] & 0x1F);
        pos += 1;
        let sps = read_sets(num_sps, &mut pos)?;
        let num_pps = usize::from(
            *d.get(pos)
                .ok_or_else(|| bad("truncated before PPS count", d, pos))?,
        );
        pos += 1;
        let pps = read_sets(num_pps, &mut pos)?;
        // The High-profile trailer (chroma format, bit depths, SPS-ext) is optional in practice and
        // not needed for TS: the SPS itself carries the same fields.
        let sps_info = sps.first().and_then(|s| parse_sps(s).ok());
        Ok(AvcConfig {
            profile_idc: d[1],
            compatibility: d[2],
            level_idc: d[3],
            nal_length_size,
            sps,
            pps,
            sps_info,
            raw: raw.clone(),
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codecs_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.compatibility, self.level_idc
        )
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: u32) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            // i64: a hostile delta_scale near i32::MAX must not overflow (found by fuzzing).
            next = (i64::from(last) + i64::from(delta)).rem_euclid(256) as i32;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Parses an SPS NAL (with its 1-byte header) for profile, level, cropped size and VUI frame rate.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, RemuxError> {
    let rb = rbsp(nal, 512);
    parse_sps_rbsp(&rb).ok_or_else(|| {
        RemuxError::malformed(TagKind::Video, "SPS", "truncated or out of range", nal, 0)
    })
}

fn parse_sps_rbsp(rb: &[u8]) -> Option<SpsInfo> {
    if rb.first()? & 0x1F != 7 {
        return None;
    }
    let mut r = BitReader::new(rb.get(1..)?);
    let profile_idc = r.bits(8)? as u8;
    let _constraints = r.bits(8)?;
    let level_idc = r.bits(8)? as u8;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let _bit_depth_luma = r.ue()?;
        let _bit_depth_chroma = r.ue()?;
        let _qpprime = r.flag()?;
        if r.flag()? {
            let n = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..n {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num = r.ue()?;
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.flag()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        2 => {}
        _ => return None,
    }
    let _max_ref_frames = r.ue()?;
    let _gaps = r.flag()?;
    let w_mbs = u64::from(r.ue()?) + 1;
    let h_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?;
    }
    let _direct_8x8 = r.flag()?;
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        cl = r.ue()?.into();
        cr = r.ue()?.into();
        ct = r.ue()?.into();
        cb = r.ue()?.into();
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_x, crop_y) = if chroma_array_type == 0 {
        (1, field_factor)
    } else {
        (sub_w, sub_h * field_factor)
    };
    let width = (w_mbs * 16).checked_sub(crop_x * (cl + cr))?;
    let height = (field_factor * h_map_units * 16).checked_sub(crop_y * (ct + cb))?;
    let mut frame_rate = None;
    if r.flag() == Some(true) {
        frame_rate = parse_vui_frame_rate(&mut r);
    }
    Some(SpsInfo {
        profile_idc,
        level_idc,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        frame_rate,
    })
}

fn parse_vui_frame_rate(r: &mut BitReader<'_>) -> Option<f64> {
    if r.flag()? && r.bits(8)? == 255 {
        r.bits(32)?;
    }
    if r.flag()? {
        r.flag()?;
    }
    if r.flag()? {
        r.bits(4)?;
        if r.flag()? {
            r.bits(24)?;
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?;
    }
    if r.flag()? {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        if units > 0 && scale > 0 {
            return Some(f64::from(scale) / (2.0 * f64::from(units)));
        }
    }
    None
}

/// One access unit in Annex B form as a list of zero-copy pieces (start codes are static).
#[derive(Debug, Default)]
pub struct AnnexB {
    pub pieces: Vec<Bytes>,
    pub len: usize,
    /// The frame holds an IDR slice.
    pub has_idr: bool,
}

impl AnnexB {
    fn push(&mut self, b: Bytes) {
        self.len += b.len();
        self.pieces.push(b);
    }
}

/// Converts one AVCC frame to Annex B: AUD first (unless present), stored SPS/PPS before the first
/// IDR slice unless the frame carries its own, zero-length NALs skipped. An overrunning NAL length
/// fails the whole frame (an error for that tag only).
pub fn to_annex_b(
    frame: &Bytes,
    config: &AvcConfig,
    max_nals: usize,
) -> Result<AnnexB, RemuxError> {
    let d = &frame[..];
    let n = usize::from(config.nal_length_size);
    // First pass: validate lengths, count NALs and learn what the frame carries.
    let (mut pos, mut count) = (0usize, 0usize);
    let (mut has_aud, mut has_sps, mut has_pps, mut has_idr) = (false, false, false, false);
    while pos < d.len() {
        let Some(len_bytes) = d.get(pos..pos + n) else {
            return Err(RemuxError::NalOverrun {
                timestamp_ms: 0,
                offset: pos,
                nal_len: n,
                remaining: d.len() - pos,
                excerpt: crate::error::excerpt(d, pos),
            });
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        let start = pos + n;
        if len > d.len() - start {
            return Err(RemuxError::NalOverrun {
                timestamp_ms: 0,
                offset: pos,
                nal_len: len,
                remaining: d.len() - start,
                excerpt: crate::error::excerpt(d, pos),
            });
        }
        if len > 0 {
            count += 1;
            if count > max_nals {
                return Err(RemuxError::LimitExceeded {
                    kind: TagKind::Video,
                    what: "NAL units per frame",
                    timestamp_ms: 0,
                    value: count,
                    limit: max_nals,
                });
            }
            match d[start] & 0x1F {
                9 => has_aud = true,
                7 => has_sps = true,
                8 => has_pps = true,
                5 => has_idr = true,
                _ => {}
            }
        }
        pos = start + len;
    }
    let mut au = AnnexB {
        pieces: Vec::with_capacity(2 * count + 4 + 2 * (config.sps.len() + config.pps.len())),
        len: 0,
        has_idr,
    };
    let mut first = true;
    if !has_aud {
        au.push(Bytes::from_static(AUD_NAL));
        first = false;
    }
    let mut start_code = |au: &mut AnnexB| {
        au.push(Bytes::from_static(if first {
            START_CODE_4
        } else {
            START_CODE_3
        }));
        first = false;
    };
    let mut inserted = has_sps && has_pps;
    pos = 0;
    while pos < d.len() {
        let len = d[pos..pos + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        let start = pos + n;
        pos = start + len;
        if len == 0 {
            continue;
        }
        let t = d[start] & 0x1F;
        if t == 5 && !inserted {
            inserted = true;
            for ps in config.sps.iter().chain(config.pps.iter()) {
                start_code(&mut au);
                au.push(ps.clone());
            }
        }
        start_code(&mut au);
        au.push(frame.slice(start..pos));
    }
    Ok(au)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS from x264, 640x360 High@3.0, VUI timing 30 fps (time_scale 60, units 1).
    pub(crate) const SPS_640X360: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];

    /// Fuzzer find (avc_config): a scaling-list delta near i32::MAX overflowed `last + delta`.
    #[test]
    fn regression_scaling_list_delta_overflow() {
        let data = include_bytes!("../tests/regressions/avc_config-scaling-list-overflow.bin");
        let _ = parse_sps(data);
        let b = bytes::Bytes::from_static(data);
        if let Ok(c) = AvcConfig::parse(&b) {
            let _ = to_annex_b(&b, &c, 64);
        }
    }

    #[test]
    fn sps_640x360() {
        let i = parse_sps(SPS_640X360).unwrap();
        assert_eq!(
            (i.profile_idc, i.level_idc, i.width, i.height),
            (100, 30, 640, 360)
        );
        assert_eq!(i.frame_rate, Some(30.0));
    }

    fn record(nal_len_minus1: u8) -> Bytes {
        let mut v = vec![1, 0x64, 0x00, 0x1e, 0xFC | nal_len_minus1, 0xE1];
        v.extend_from_slice(&(SPS_640X360.len() as u16).to_be_bytes());
        v.extend_from_slice(SPS_640X360);
        v.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        Bytes::from(v)
    }

    #[test]
    fn config_and_annex_b_for_each_length_size() {
        for (m, n) in [(0u8, 1usize), (1, 2), (3, 4)] {
            let c = AvcConfig::parse(&record(m)).unwrap();
            assert_eq!(c.nal_length_size as usize, n);
            assert_eq!(c.codecs_string(), "avc1.64001e");
            assert_eq!(c.sps_info.as_ref().unwrap().width, 640);
            let mut f = Vec::new();
            for nal in [&[0x65u8, 0x88, 0x84][..], &[][..], &[0x06, 0x05][..]] {
                f.extend_from_slice(&(nal.len() as u32).to_be_bytes()[4 - n..]);
                f.extend_from_slice(nal);
            }
            let au = to_annex_b(&Bytes::from(f), &c, 16).unwrap();
            let flat: Vec<u8> = au.pieces.iter().flat_map(|b| b.iter().copied()).collect();
            let mut want = AUD_NAL.to_vec();
            want.extend_from_slice(&[0, 0, 1]);
            want.extend_from_slice(SPS_640X360);
            want.extend_from_slice(&[
                0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 1, 0x06, 0x05,
            ]);
            assert_eq!(flat, want);
            assert!(au.has_idr);
            assert_eq!(au.len, want.len());
        }
    }

    #[test]
    fn in_band_parameter_sets_kept_not_duplicated() {
        let c = AvcConfig::parse(&record(3)).unwrap();
        let f = Bytes::from_static(&[
            0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 2, 0x67, 1, 0, 0, 0, 2, 0x68, 1, 0, 0, 0, 2, 0x65, 1,
        ]);
        let au = to_annex_b(&f, &c, 16).unwrap();
        let flat: Vec<u8> = au.pieces.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(
            flat,
            [0, 0, 0, 1, 0x09, 0x10, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 1, 0, 0, 1, 0x65, 1]
        );
    }

    #[test]
    fn overrun_and_limits() {
        let c = AvcConfig::parse(&record(3)).unwrap();
        assert!(matches!(
            to_annex_b(&Bytes::from_static(&[0, 0, 0, 9, 0x65]), &c, 16),
            Err(RemuxError::NalOverrun { .. })
        ));
        assert!(matches!(
            to_annex_b(&Bytes::from_static(&[0, 0]), &c, 16),
            Err(RemuxError::NalOverrun { .. })
        ));
        assert!(matches!(
            to_annex_b(&Bytes::from_static(&[0, 0, 0, 1, 1, 0, 0, 0, 1, 1]), &c, 1),
            Err(RemuxError::LimitExceeded { .. })
        ));
        assert!(
            AvcConfig::parse(&Bytes::from_static(&[1, 0x64, 0, 0x1e, 0xFE, 0xE1, 0, 9])).is_err()
        );
    }
}
