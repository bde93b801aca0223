//! The index journal: fixed-size, append-only binary records, each protected by its own CRC and
//! carrying the CRC of the data file it describes. Written after the data (and after the data is
//! on disk: `sync_data`), so a record never describes bytes that are not there.
//!
//! ```text
//!  0      4  5    6          7      8          16         24            32            40         48        52     56          60      64
//!  | magic | v | kind | container | flags | seq u64 | len u64 | duration_90k | wall_unix_ms | init u64 | data crc | 0 | record crc | 0 |
//! ```
//! All integers little endian. `kind`: 1 init segment, 2 media segment, 3 end (the log is
//! closed). `flags`: bit 0 discontinuity, bit 1 independent. `init` is the number of the init
//! segment a CMAF segment needs (`u64::MAX`: none). CRCs are CRC-32/ISCSI (Castagnoli).

use crate::Container;

/// Bytes of one journal record.
pub const RECORD_BYTES: usize = 64;
const MAGIC: &[u8; 4] = b"SLRJ";
const VERSION: u8 = 1;
const NO_INIT: u64 = u64::MAX;

pub(crate) const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Init,
    Segment,
    End,
}

/// One journal record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub container: Container,
    pub discontinuity: bool,
    pub independent: bool,
    /// Segment number (per container) or init number.
    pub seq: u64,
    /// Bytes of the data file.
    pub len: u64,
    pub duration_90k: u64,
    pub wall_unix_ms: u64,
    pub init: Option<u64>,
    /// CRC-32C of the data file's bytes.
    pub data_crc: u32,
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = match self.kind {
            Kind::Init => 1,
            Kind::Segment => 2,
            Kind::End => 3,
        };
        b[6] = match self.container {
            Container::Ts => 0,
            Container::Cmaf => 1,
        };
        b[7] = u8::from(self.discontinuity) | (u8::from(self.independent) << 1);
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..32].copy_from_slice(&self.duration_90k.to_le_bytes());
        b[32..40].copy_from_slice(&self.wall_unix_ms.to_le_bytes());
        b[40..48].copy_from_slice(&self.init.unwrap_or(NO_INIT).to_le_bytes());
        b[48..52].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = CRC.checksum(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for anything that is not a whole, intact record of this version.
    pub fn decode(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_BYTES] = b.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        if &b[0..4] != MAGIC || b[4] != VERSION || CRC.checksum(&b[..56]) != u32_at(56) {
            return None;
        }
        let kind = match b[5] {
            1 => Kind::Init,
            2 => Kind::Segment,
            3 => Kind::End,
            _ => return None,
        };
        let container = match b[6] {
            0 => Container::Ts,
            1 => Container::Cmaf,
            _ => return None,
        };
        let init = u64_at(40);
        Some(Record {
            kind,
            container,
            discontinuity: b[7] & 1 != 0,
            independent: b[7] & 2 != 0,
            seq: u64_at(8),
            len: u64_at(16),
            duration_90k: u64_at(24),
            wall_unix_ms: u64_at(32),
            init: (init != NO_INIT).then_some(init),
            data_crc: u32_at(48),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_flipped_bit_is_rejected() {
        let r = Record {
            kind: Kind::Segment,
            container: Container::Cmaf,
            discontinuity: true,
            independent: true,
            seq: 7,
            len: 123_456,
            duration_90k: 180_000,
            wall_unix_ms: 1_790_000_000_000,
            init: Some(2),
            data_crc: 0xDEAD_BEEF,
        };
        let b = r.encode();
        assert_eq!(Record::decode(&b), Some(r));
        for i in 0..60 {
            let mut c = b;
            c[i] ^= 0x10;
            assert_eq!(Record::decode(&c), None, "flip in byte {i} not caught");
        }
        assert_eq!(Record::decode(&b[..63]), None);
    }
}
