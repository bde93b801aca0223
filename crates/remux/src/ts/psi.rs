//! Program Specific Information: PAT and PMT sections (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8) and
//! CRC-32/MPEG-2 (Annex A: poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final XOR).
//! Each section is sent in its own packet, padded with 0xFF after the section.

use bytes::{BufMut, BytesMut};

use super::packet::{write_header, ContinuityCounter, PACKET_LEN};
use super::{PID_AUDIO, PID_PMT, PID_VIDEO};

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A), as the `crc` crate's catalogue defines it.
static CRC32_MPEG2: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2);

/// CRC-32/MPEG-2 of `data`.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    CRC32_MPEG2.checksum(data)
}

/// Elementary streams declared in the PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// stream_type of the video track (0x1B H.264), if the stream has one.
    pub video: Option<u8>,
    /// stream_type of the audio track (0x0F AAC, 0x03/0x04 MP3), if the stream has one.
    pub audio: Option<u8>,
    /// PMT version_number (5 bits), bumped when the track set changes.
    pub version: u8,
}

impl Program {
    /// PCR PID: video when present, else audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            PID_VIDEO
        } else {
            PID_AUDIO
        }
    }
}

fn finish_section(out: &mut BytesMut, start: usize) {
    let crc = crc32_mpeg2(&out[start..]);
    out.put_u32(crc);
}

fn pad(out: &mut BytesMut, packet_start: usize) {
    let used = out.len() - packet_start;
    out.put_bytes(0xFF, PACKET_LEN - used);
}

/// Writes one PAT packet: program 1 → PMT PID.
pub fn write_pat(out: &mut BytesMut, cc: &mut ContinuityCounter) {
    let p = out.len();
    write_header(out, 0, true, 1, cc.next_value());
    out.put_u8(0); // pointer_field
    let s = out.len();
    out.put_slice(&[0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01]);
    out.put_u16(0xE000 | PID_PMT);
    finish_section(out, s);
    pad(out, p);
}

/// Writes one PMT packet declaring exactly the tracks in `program`.
pub fn write_pmt(out: &mut BytesMut, cc: &mut ContinuityCounter, program: &Program) {
    let p = out.len();
    write_header(out, PID_PMT, true, 1, cc.next_value());
    out.put_u8(0);
    let s = out.len();
    let n = usize::from(program.video.is_some()) + usize::from(program.audio.is_some());
    let section_length = 9 + 5 * n + 4;
    out.put_u8(0x02);
    out.put_u16(0xB000 | section_length as u16);
    out.put_u16(1); // program_number
    out.put_u8(0xC1 | ((program.version & 0x1F) << 1));
    out.put_u8(0);
    out.put_u8(0);
    out.put_u16(0xE000 | program.pcr_pid());
    out.put_u16(0xF000); // program_info_length 0
    for (st, pid) in [(program.video, PID_VIDEO), (program.audio, PID_AUDIO)] {
        if let Some(st) = st {
            out.put_u8(st);
            out.put_u16(0xE000 | pid);
            out.put_u16(0xF000);
        }
    }
    finish_section(out, s);
    pad(out, p);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    /// Golden vectors: nginx-rtmp's fixed PAT/PMT (`hls/ngx_rtmp_mpegts.c`; ISO/IEC 13818-1
    /// §2.4.4.3 and §2.4.4.8; nginx's PMT PID is
    /// 0x1001, ours is 0x1000, so the PAT is checked via the CRC residue instead of bytes).
    #[test]
    fn pat_pmt_golden() {
        let nginx_pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x01,
        ];
        assert_eq!(crc32_mpeg2(&nginx_pat), 0x2E70_1905);
        let mut out = BytesMut::new();
        write_pat(&mut out, &mut ContinuityCounter::default());
        assert_eq!(
            &out[..17],
            &[
                0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00,
                0x01, 0xF0, 0x00
            ]
        );
        assert_eq!(out.len(), 188);
        assert!(out[21..].iter().all(|&b| b == 0xFF));
        assert_eq!(crc32_mpeg2(&out[5..21]), 0);
        let mut out = BytesMut::new();
        write_pmt(
            &mut out,
            &mut ContinuityCounter::default(),
            &Program {
                video: Some(0x1B),
                audio: Some(0x0F),
                version: 0,
            },
        );
        assert_eq!(
            &out[..31],
            &[
                0x47, 0x50, 0x00, 0x10, 0x00, 0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1,
                0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00, 0x2F,
                0x44, 0xB9, 0x9B
            ]
        );
        assert_eq!(out.len(), 188);
    }

    #[test]
    fn audio_only_pmt_has_one_track_and_audio_pcr() {
        let mut out = BytesMut::new();
        write_pmt(
            &mut out,
            &mut ContinuityCounter::default(),
            &Program {
                video: None,
                audio: Some(0x0F),
                version: 3,
            },
        );
        assert_eq!(&out[5..8], &[0x02, 0xB0, 0x12]);
        assert_eq!(&out[13..15], &[0xE1, 0x01]);
        assert_eq!(out[17], 0x0F);
        assert_eq!(crc32_mpeg2(&out[5..5 + 3 + 0x12]), 0);
    }
}
