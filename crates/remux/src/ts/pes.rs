//! PES packets (ISO/IEC 13818-1 §2.4.3.6–2.4.3.7) and their split into TS packets, with PTS/DTS
//! in 33-bit 90 kHz form, PCR and random_access_indicator on the first packet, and stuffing via
//! the adaptation field on the last packet (§2.4.3.5).
//!
//! ```text
//! 00 00 01 | stream_id | PES_packet_length(16) | 0x80 | PTS_DTS_flags | hdr_len | PTS [DTS]
//! ```
//! Media bytes are copied exactly once, from the input `Bytes` slices into the output buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::packet::{adaptation_min, write_adaptation, write_header, ContinuityCounter};

/// stream_id for the (single) video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// stream_id for the (single) audio stream.
pub const STREAM_ID_AUDIO: u8 = 0xC0;

/// One piece of an elementary-stream payload: a zero-copy slice or a small header written inline.
#[derive(Clone, Debug)]
pub enum Piece {
    Shared(Bytes),
    /// An ADTS header.
    Adts([u8; 7]),
}

impl Piece {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Piece::Shared(b) => b,
            Piece::Adts(h) => h,
        }
    }
}

/// Encodes a 33-bit timestamp with the 4-bit prefix (0b0010 PTS only, 0b0011 PTS before DTS,
/// 0b0001 DTS). Values are taken modulo 2^33.
pub fn encode_timestamp(prefix: u8, t_90k: u64) -> [u8; 5] {
    let t = t_90k & ((1 << 33) - 1);
    [
        (prefix << 4) | ((((t >> 30) & 7) as u8) << 1) | 1,
        (t >> 22) as u8,
        ((((t >> 15) & 0x7F) as u8) << 1) | 1,
        (t >> 7) as u8,
        (((t & 0x7F) as u8) << 1) | 1,
    ]
}

/// Decodes a 5-byte timestamp (for tests and self-checks).
pub fn decode_timestamp(b: &[u8; 5]) -> u64 {
    (u64::from((b[0] >> 1) & 7) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// Parameters of one PES packet.
#[derive(Clone, Copy, Debug)]
pub struct PesParams {
    pub pid: u16,
    pub stream_id: u8,
    pub pts_90k: u64,
    /// Written only when it differs from the PTS.
    pub dts_90k: Option<u64>,
    pub pcr_90k: Option<u64>,
    pub random_access: bool,
}

/// Cursor over the PES header followed by the payload pieces.
struct Cursor<'a> {
    head: &'a [u8],
    pieces: &'a [Piece],
    idx: usize,
    off: usize,
}

impl Cursor<'_> {
    /// Copies up to `n` bytes into `out`; returns how many were copied.
    fn copy(&mut self, out: &mut BytesMut, mut n: usize) -> usize {
        let mut copied = 0;
        if !self.head.is_empty() {
            let take = self.head.len().min(n);
            out.put_slice(&self.head[..take]);
            self.head = &self.head[take..];
            n -= take;
            copied += take;
        }
        while n > 0 {
            let Some(cur) = self.pieces.get(self.idx).map(Piece::as_slice) else {
                break;
            };
            let rest = cur.get(self.off..).unwrap_or(&[]);
            let take = rest.len().min(n);
            out.put_slice(&rest[..take]);
            n -= take;
            copied += take;
            self.off += take;
            if self.off >= cur.len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        copied
    }
}

/// Writes a PES packet carrying `pieces` (total `payload_len` bytes) as TS packets into `out`.
/// Returns the number of bytes written.
pub fn write_pes(
    out: &mut BytesMut,
    cc: &mut ContinuityCounter,
    p: &PesParams,
    pieces: &[Piece],
    payload_len: usize,
) -> usize {
    let start_len = out.len();
    let mut hdr = [0u8; 19];
    hdr[..3].copy_from_slice(&[0, 0, 1]);
    hdr[3] = p.stream_id;
    let dts = p.dts_90k.filter(|d| *d != p.pts_90k);
    let hdr_data_len = if dts.is_some() { 10 } else { 5 };
    let pes_len = 3 + hdr_data_len + payload_len;
    // PES_packet_length 0 (unbounded) is only legal for video; callers keep audio PES small.
    let len_field = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    hdr[4..6].copy_from_slice(&len_field.to_be_bytes());
    hdr[6] = 0x80;
    hdr[7] = if dts.is_some() { 0xC0 } else { 0x80 };
    hdr[8] = hdr_data_len as u8;
    if let Some(d) = dts {
        hdr[9..14].copy_from_slice(&encode_timestamp(0b0011, p.pts_90k));
        hdr[14..19].copy_from_slice(&encode_timestamp(0b0001, d));
    } else {
        hdr[9..14].copy_from_slice(&encode_timestamp(0b0010, p.pts_90k));
    }
    let hdr_len = 9 + hdr_data_len;

    let mut cursor = Cursor {
        head: &hdr[..hdr_len],
        pieces,
        idx: 0,
        off: 0,
    };
    let mut remaining = hdr_len + payload_len;
    let mut first = true;
    let mut written = 0;
    while remaining > 0 {
        let (rai, pcr) = if first {
            (p.random_access, p.pcr_90k)
        } else {
            (false, None)
        };
        let af_min = adaptation_min(rai, pcr.is_some());
        let take = remaining.min(184 - af_min);
        let af_total = 184 - take;
        write_header(
            out,
            p.pid,
            first,
            if af_total > 0 { 3 } else { 1 },
            cc.next_value(),
        );
        if af_total > 0 {
            write_adaptation(out, af_total, rai, pcr);
        }
        let copied = cursor.copy(out, take);
        if copied < take {
            out.put_bytes(0xFF, take - copied); // defensive: payload_len overstated
        }
        remaining -= take;
        first = false;
        written += 188;
    }
    debug_assert_eq!(out.len() - start_len, written);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamp_prefixes_and_markers() {
        assert_eq!(encode_timestamp(0b0010, 0), [0x21, 0, 1, 0, 1]);
        assert_eq!(
            encode_timestamp(0b0011, (1 << 33) - 1),
            [0x3F, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        // 33-bit wrap: 2^33 encodes like 0, 2^33 + 5 like 5.
        assert_eq!(
            encode_timestamp(0b0001, 1 << 33),
            encode_timestamp(0b0001, 0)
        );
        assert_eq!(
            decode_timestamp(&encode_timestamp(0b0001, (1 << 33) + 5)),
            5
        );
    }

    proptest! {
        #[test]
        fn timestamp_round_trip(t in 0u64..(1 << 40)) {
            let e = encode_timestamp(0b0011, t);
            prop_assert_eq!(decode_timestamp(&e), t & ((1 << 33) - 1));
            prop_assert_eq!(e[0] & 1, 1);
            prop_assert_eq!(e[2] & 1, 1);
            prop_assert_eq!(e[4] & 1, 1);
        }

        #[test]
        fn packetizes_any_length(len in 0usize..5000, rai: bool, pcr: bool, split in 1usize..300) {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let pieces: Vec<Piece> = data.chunks(split).map(|c| Piece::Shared(Bytes::copy_from_slice(c))).collect();
            let mut out = BytesMut::new();
            let mut cc = ContinuityCounter::default();
            let p = PesParams { pid: 0x100, stream_id: STREAM_ID_VIDEO, pts_90k: 1000, dts_90k: Some(900), pcr_90k: pcr.then_some(800), random_access: rai };
            let n = write_pes(&mut out, &mut cc, &p, &pieces, len);
            prop_assert_eq!(n % 188, 0);
            prop_assert_eq!(n, out.len());
            // Reassemble the payload and compare.
            let mut es = Vec::new();
            for pkt in out.chunks(188) {
                prop_assert_eq!(pkt[0], 0x47);
                let afc = (pkt[3] >> 4) & 3;
                let start = if afc == 3 { 5 + usize::from(pkt[4]) } else { 4 };
                es.extend_from_slice(&pkt[start..]);
            }
            prop_assert_eq!(&es[19..], &data[..]);
            prop_assert_eq!(es.len(), 19 + len);
        }
    }
}
