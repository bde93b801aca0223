//! TS packet header and adaptation field (ISO/IEC 13818-1 §2.4.3.2, §2.4.3.4), continuity counters.
//!
//! ```text
//! 0x47 | TEI PUSI PRIO PID(13) | SC(2) AFC(2) CC(4) | [adaptation field] | payload
//! ```

use bytes::{BufMut, BytesMut};

pub const PACKET_LEN: usize = 188;
pub const SYNC: u8 = 0x47;

/// Continuity counter of one PID: 4 bits, incremented on every packet that carries payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContinuityCounter(u8);

impl ContinuityCounter {
    /// Returns the value for the next payload-carrying packet and advances.
    pub fn next_value(&mut self) -> u8 {
        let v = self.0;
        self.0 = (self.0 + 1) & 0x0F;
        v
    }
}

/// Writes the 4-byte header. `afc`: 1 payload only, 2 adaptation only, 3 both.
pub fn write_header(out: &mut BytesMut, pid: u16, pusi: bool, afc: u8, cc: u8) {
    out.put_u8(SYNC);
    out.put_u16((u16::from(pusi) << 14) | (pid & 0x1FFF));
    out.put_u8((afc << 4) | (cc & 0x0F));
}

/// Encodes a PCR (base 33 bits at 90 kHz, extension 0) in its 6-byte form.
pub fn pcr_bytes(base_90k: u64) -> [u8; 6] {
    let b = base_90k & ((1 << 33) - 1);
    [
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        (((b & 1) as u8) << 7) | 0x7E,
        0,
    ]
}

/// Writes an adaptation field of exactly `total` bytes (including its length byte) with the given
/// flags/PCR, filling the rest with 0xFF stuffing. `total` must be ≥ the size the flags need.
pub fn write_adaptation(out: &mut BytesMut, total: usize, rai: bool, pcr_90k: Option<u64>) {
    debug_assert!(total >= 1);
    out.put_u8((total - 1) as u8);
    if total == 1 {
        return;
    }
    let mut flags = 0u8;
    if rai {
        flags |= 0x40;
    }
    if pcr_90k.is_some() {
        flags |= 0x10;
    }
    out.put_u8(flags);
    let mut used = 2;
    if let Some(p) = pcr_90k {
        out.put_slice(&pcr_bytes(p));
        used += 6;
    }
    out.put_bytes(0xFF, total - used);
}

/// Minimum adaptation field size for the flags (0 = none needed).
pub fn adaptation_min(rai: bool, pcr: bool) -> usize {
    match (rai, pcr) {
        (_, true) => 8,
        (true, false) => 2,
        (false, false) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_layout() {
        assert_eq!(pcr_bytes(0), [0, 0, 0, 0, 0x7E, 0]);
        assert_eq!(pcr_bytes(1), [0, 0, 0, 0, 0xFE, 0]);
        assert_eq!(pcr_bytes((1 << 33) - 1), [0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0]);
        assert_eq!(pcr_bytes(1 << 33), pcr_bytes(0));
    }

    #[test]
    fn cc_wraps() {
        let mut c = ContinuityCounter::default();
        let v: Vec<u8> = (0..18).map(|_| c.next_value()).collect();
        assert_eq!(&v[14..], &[14, 15, 0, 1]);
    }
}
