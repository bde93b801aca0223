//! Media segments: `styp` (ISO/IEC 14496-12 §8.16.2) and one `moof` + `mdat` pair per call
//! (§8.8.4 `moof`, §8.8.5 `mfhd`, §8.8.6 `traf`, §8.8.7 `tfhd`, §8.8.8 `trun`, §8.8.12 `tfdt`,
//! §8.1.1 `mdat`), the CMAF chunk of ISO/IEC 23000-19 §7.3.2.3.
//!
//! ```text
//! moof
//! ├─ mfhd  sequence_number
//! └─ traf  (one per Fragment, in the given order)
//!    ├─ tfhd  flags 0x020000 default-base-is-moof [+ 0x08 duration, 0x10 size, 0x20 flags]
//!    ├─ tfdt  version 1: 64-bit baseMediaDecodeTime
//!    └─ trun  version 1 (signed composition offsets), data_offset, per-sample fields
//! mdat     the samples of traf 1, then traf 2, ... (their Bytes pieces, not copied)
//! ```
//! A per-sample field that is the same for every sample of a run moves to `tfhd` as a default
//! (ISO/IEC 14496-12 §8.8.7.1), and flags that differ only for the first sample use trun's
//! `first_sample_flags`: the same meaning in fewer bytes (4 instead of 16 per AAC or Opus frame).
//! All-zero composition offsets are left out. `data_offset` counts from the first byte of the
//! `moof` (default-base-is-moof), so every chunk is addressable on its own.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{close, open, open_full};
use super::{Fragment, Sample};

/// `tfhd` flags (ISO/IEC 14496-12 §8.8.7.1).
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags (§8.8.8.1).
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_COMPOSITION_OFFSET: u32 = 0x00_0800;

/// Sample flags (§8.8.3.1) of a sync sample: sample_depends_on = 2 (depends on no other).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// `styp` for the first chunk of a media segment: major brand `msdh`, compatible `msdh`
/// (ISO/IEC 23009-1 §6.3.4.2, a media segment of `moof`+`mdat` pairs). Not `msix` (that needs a
/// `sidx`) and not `cmfs` (a CMAF segment holds one track; Sluice's chunks may hold two).
pub fn write_styp() -> Bytes {
    let mut buf = BytesMut::with_capacity(20);
    let b = open(&mut buf, b"styp");
    buf.put_slice(b"msdh");
    buf.put_u32(0);
    buf.put_slice(b"msdh");
    close(&mut buf, b);
    buf.freeze()
}

/// The flags a sample carries in `trun`/`tfhd`.
pub fn sample_flags(sample: &Sample) -> u32 {
    if sample.is_sync {
        SYNC_SAMPLE_FLAGS
    } else {
        NON_SYNC_SAMPLE_FLAGS
    }
}

/// Bytes of one sample's data (saturating: a sample is far below 4 GiB).
fn sample_size(sample: &Sample) -> u32 {
    let n: usize = sample.data.iter().map(Bytes::len).sum();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How one track run is encoded: which fields are per sample and which are defaults.
struct RunLayout {
    tfhd_flags: u32,
    trun_flags: u32,
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
    first_flags: u32,
}

fn layout(samples: &[Sample]) -> RunLayout {
    let mut l = RunLayout {
        tfhd_flags: TFHD_DEFAULT_BASE_IS_MOOF,
        trun_flags: TRUN_DATA_OFFSET,
        default_duration: 0,
        default_size: 0,
        default_flags: 0,
        first_flags: 0,
    };
    let Some(first) = samples.first() else {
        return l;
    };
    if samples.iter().all(|s| s.duration == first.duration) {
        l.tfhd_flags |= TFHD_DEFAULT_DURATION;
        l.default_duration = first.duration;
    } else {
        l.trun_flags |= TRUN_DURATION;
    }
    let size0 = sample_size(first);
    if samples.iter().all(|s| sample_size(s) == size0) {
        l.tfhd_flags |= TFHD_DEFAULT_SIZE;
        l.default_size = size0;
    } else {
        l.trun_flags |= TRUN_SIZE;
    }
    let flags0 = sample_flags(first);
    let rest = &samples[1..];
    if rest.iter().all(|s| sample_flags(s) == flags0) {
        l.tfhd_flags |= TFHD_DEFAULT_FLAGS;
        l.default_flags = flags0;
    } else if rest
        .iter()
        .all(|s| sample_flags(s) == sample_flags(&rest[0]))
    {
        l.tfhd_flags |= TFHD_DEFAULT_FLAGS;
        l.default_flags = sample_flags(&rest[0]);
        l.trun_flags |= TRUN_FIRST_SAMPLE_FLAGS;
        l.first_flags = flags0;
    } else {
        l.trun_flags |= TRUN_FLAGS;
    }
    if samples.iter().any(|s| s.composition_offset != 0) {
        l.trun_flags |= TRUN_COMPOSITION_OFFSET;
    }
    l
}

/// One `moof` + `mdat`: see the module doc. Returns the box headers as the first `Bytes` (the
/// whole `moof` and the `mdat` header), then every sample's pieces in order, unchanged. The
/// sum of the lengths is the chunk size. Fragments with no samples still get a `traf` (with a
/// zero-sample `trun`). Limits: a chunk must stay below 2 GiB (trun `data_offset` is a signed
/// 32-bit field); an `mdat` over 4 GiB uses the 64-bit `largesize` form.
pub fn write_fragment(sequence_number: u32, fragments: &[Fragment<'_>]) -> Vec<Bytes> {
    let mut buf = BytesMut::with_capacity(
        64 + fragments
            .iter()
            .map(|f| 64 + 16 * f.samples.len())
            .sum::<usize>(),
    );
    let moof = open(&mut buf, b"moof");
    let mfhd = open_full(&mut buf, b"mfhd", 0, 0);
    buf.put_u32(sequence_number);
    close(&mut buf, mfhd);
    // (position of the data_offset field, bytes of media before this run in mdat)
    let mut patches: Vec<(usize, u64)> = Vec::with_capacity(fragments.len());
    let mut data_bytes: u64 = 0;
    for f in fragments {
        let l = layout(f.samples);
        let traf = open(&mut buf, b"traf");
        let tfhd = open_full(&mut buf, b"tfhd", 0, l.tfhd_flags);
        buf.put_u32(f.track_id);
        if l.tfhd_flags & TFHD_DEFAULT_DURATION != 0 {
            buf.put_u32(l.default_duration);
        }
        if l.tfhd_flags & TFHD_DEFAULT_SIZE != 0 {
            buf.put_u32(l.default_size);
        }
        if l.tfhd_flags & TFHD_DEFAULT_FLAGS != 0 {
            buf.put_u32(l.default_flags);
        }
        close(&mut buf, tfhd);
        let tfdt = open_full(&mut buf, b"tfdt", 1, 0);
        buf.put_u64(f.base_media_decode_time);
        close(&mut buf, tfdt);
        let trun = open_full(&mut buf, b"trun", 1, l.trun_flags);
        buf.put_u32(u32::try_from(f.samples.len()).unwrap_or(u32::MAX));
        patches.push((buf.len(), data_bytes));
        buf.put_i32(0); // data_offset, patched below
        if l.trun_flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
            buf.put_u32(l.first_flags);
        }
        for s in f.samples {
            if l.trun_flags & TRUN_DURATION != 0 {
                buf.put_u32(s.duration);
            }
            let size = sample_size(s);
            if l.trun_flags & TRUN_SIZE != 0 {
                buf.put_u32(size);
            }
            if l.trun_flags & TRUN_FLAGS != 0 {
                buf.put_u32(sample_flags(s));
            }
            if l.trun_flags & TRUN_COMPOSITION_OFFSET != 0 {
                buf.put_i32(s.composition_offset);
            }
            data_bytes += u64::from(size);
        }
        close(&mut buf, trun);
        close(&mut buf, traf);
    }
    close(&mut buf, moof);
    let moof_bytes = buf.len() as u64;
    // mdat header: 8 bytes, or 16 with largesize when the box would not fit 32 bits.
    let large = data_bytes + 8 > u64::from(u32::MAX);
    let mdat_header_bytes: u64 = if large { 16 } else { 8 };
    for (at, before) in patches {
        let offset = moof_bytes + mdat_header_bytes + before;
        let offset = i32::try_from(offset).unwrap_or(i32::MAX);
        buf[at..at + 4].copy_from_slice(&offset.to_be_bytes());
    }
    if large {
        buf.put_u32(1);
        buf.put_slice(b"mdat");
        buf.put_u64(data_bytes + 16);
    } else {
        buf.put_u32((data_bytes + 8) as u32);
        buf.put_slice(b"mdat");
    }
    let mut out = Vec::with_capacity(
        1 + fragments
            .iter()
            .flat_map(|f| f.samples.iter())
            .map(|s| s.data.len())
            .sum::<usize>(),
    );
    out.push(buf.freeze());
    for f in fragments {
        for s in f.samples {
            out.extend(s.data.iter().cloned());
        }
    }
    out
}
