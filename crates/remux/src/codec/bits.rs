//! MSB-first bit reading for codec headers: fixed-width fields, Exp-Golomb `ue(v)` and `se(v)`
//! (ITU-T H.264 §9.1 and §9.1.1, identical in ITU-T H.265 §9.2), AV1 `uvlc()` and `leb128()` (AV1 Bitstream & Decoding Process Specification §4.10.3,
//! §4.10.5), and NAL unit RBSP extraction (ITU-T H.265 §7.3.1.1: emulation prevention bytes).
//!
//! All reads return `None` past the end of the data instead of panicking.

/// MSB-first bit reader over a byte slice.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit_pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, bit_pos: 0 }
    }

    /// Bits consumed so far.
    pub fn position_bits(&self) -> usize {
        self.bit_pos
    }

    /// One bit.
    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.bit_pos / 8)?;
        let v = (byte >> (7 - (self.bit_pos % 8))) & 1;
        self.bit_pos += 1;
        Some(u32::from(v))
    }

    /// One bit as a flag.
    pub fn flag(&mut self) -> Option<bool> {
        self.bit().map(|b| b == 1)
    }

    /// `n` bits (0..=32), MSB first.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        u32::try_from(v).ok()
    }

    /// Skips `n` bits, failing if fewer remain.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.bit_pos.checked_add(n)?;
        if end > self.data.len().checked_mul(8)? {
            return None;
        }
        self.bit_pos = end;
        Some(())
    }

    /// `ue(v)` (ITU-T H.265 §9.2); codes with more than 31 leading zeros are rejected.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + rest).ok()
    }

    /// `se(v)` (ITU-T H.264 §9.1.1): the signed mapping 1, −1, 2, −2, … of `ue(v)`.
    pub fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).ok()
    }

    /// AV1 `uvlc()` (AV1 spec §4.10.3): 32 or more leading zeros decode to 2^32 − 1.
    pub fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros >= 32 {
                return Some(u32::MAX);
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + rest).ok()
    }
}

/// AV1 `leb128()` (AV1 spec §4.10.5) at the start of `data`: `(value, bytes used)`. At most 8
/// bytes are read and the value must fit in 32 bits, as the specification requires.
pub fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return (value <= u64::from(u32::MAX)).then_some((value, i + 1));
        }
    }
    None
}

/// The RBSP of a NAL unit (header included) with emulation prevention bytes removed
/// (`00 00 03` → `00 00`), keeping at most `cap_bytes` bytes: header fields sit near the start,
/// so a hostile multi-megabyte NAL costs at most `cap_bytes`.
pub fn rbsp(nal: &[u8], cap_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len().min(cap_bytes));
    let mut zeros = 0u32;
    for &b in nal {
        if out.len() >= cap_bytes {
            break;
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 0001000 → bit 1, ue 1, ue 2, ue 3, ue 7.
        let data = [0b1010_0110, 0b0100_0001, 0b0000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.bit(), Some(1));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.ue(), Some(3));
        assert_eq!(r.ue(), Some(7));
        assert_eq!(r.position_bits(), 19);
        assert_eq!(r.bits(33), None);
        assert_eq!(r.skip(6), None, "only 5 bits left");
        assert_eq!(r.skip(5), Some(()));
        assert_eq!(r.bit(), None);
    }

    #[test]
    fn signed_exp_golomb() {
        // 010 | 011 | 00100 → se 1, −1, 2.
        let data = [0b0100_1100, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!([r.se(), r.se(), r.se()], [Some(1), Some(-1), Some(2)]);
    }

    #[test]
    fn ue_rejects_long_prefix_and_uvlc_saturates() {
        let zeros = [0u8; 8];
        assert_eq!(BitReader::new(&zeros).ue(), None);
        assert_eq!(BitReader::new(&zeros).uvlc(), Some(u32::MAX));
    }

    #[test]
    fn leb128_bounds() {
        assert_eq!(leb128(&[0x05]), Some((5, 1)));
        assert_eq!(leb128(&[0x80, 0x01]), Some((128, 2)));
        // Padded encodings are legal (AV1 spec §4.10.5): 0x85 0x80 0x00 = 5.
        assert_eq!(leb128(&[0x85, 0x80, 0x00]), Some((5, 3)));
        assert_eq!(leb128(&[0x80]), None, "truncated");
        assert_eq!(leb128(&[0xFF; 9]), None, "longer than 8 bytes");
        assert_eq!(
            leb128(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            None,
            "above 2^32 - 1"
        );
        assert_eq!(
            leb128(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            Some((u64::from(u32::MAX), 5))
        );
    }

    #[test]
    fn rbsp_removes_emulation_prevention_and_caps() {
        assert_eq!(rbsp(&[1, 0, 0, 3, 1, 0, 0, 3], 64), vec![1, 0, 0, 1, 0, 0]);
        assert_eq!(rbsp(&[0, 0, 3, 0, 0, 3, 0], 64), vec![0, 0, 0, 0, 0]);
        assert_eq!(rbsp(&[9; 100], 10).len(), 10);
    }
}
