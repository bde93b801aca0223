//! Box serialisation helpers (ISO/IEC 14496-12 §4.2: `size` + `type`, FullBox `version` +
//! `flags`): open a box, write its body, close it to back-patch the 32-bit size.

use bytes::{BufMut, BytesMut};

/// Where an open box starts in the buffer; pass it to [`close`].
#[must_use]
pub(crate) struct Open(usize);

/// Starts a box: a size placeholder and the four-character type.
pub(crate) fn open(buf: &mut BytesMut, fourcc: &[u8; 4]) -> Open {
    let at = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    Open(at)
}

/// Starts a FullBox: box header, then the 8-bit version and 24-bit flags.
pub(crate) fn open_full(buf: &mut BytesMut, fourcc: &[u8; 4], version: u8, flags: u32) -> Open {
    let b = open(buf, fourcc);
    buf.put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
    b
}

/// Ends a box: writes its size. Boxes built here hold configuration records and sample
/// tables, far below 4 GiB; a larger one saturates (and would be a caller bug).
pub(crate) fn close(buf: &mut BytesMut, open: Open) {
    let size = u32::try_from(buf.len() - open.0).unwrap_or(u32::MAX);
    buf[open.0..open.0 + 4].copy_from_slice(&size.to_be_bytes());
}

/// A whole box whose body is `body`.
pub(crate) fn leaf(buf: &mut BytesMut, fourcc: &[u8; 4], body: &[u8]) {
    let b = open(buf, fourcc);
    buf.put_slice(body);
    close(buf, b);
}

/// The unity transformation matrix of `mvhd`/`tkhd` (ISO/IEC 14496-12 §8.2.2.3).
pub(crate) fn put_unity_matrix(buf: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        buf.put_u32(v);
    }
}
