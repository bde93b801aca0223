//! Helpers shared by the integration tests: an FLV file reader ([FLV] §E.2 header, §E.3 body).

#![allow(dead_code)]

use bytes::Bytes;
use remux::{FlvTag, TagKind};

/// Minimal FLV file reader: 9-byte header, then (PreviousTagSize u32, tag) pairs.
pub fn read_flv(data: &[u8]) -> Vec<FlvTag> {
    assert_eq!(&data[..3], b"FLV");
    let mut pos = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize + 4;
    let bytes = Bytes::copy_from_slice(data);
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let kind = match h[0] & 0x1F {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        };
        let end = pos + 11 + size;
        if end > data.len() {
            break;
        }
        if let Some(kind) = kind {
            tags.push(FlvTag {
                kind,
                timestamp_ms: ts,
                payload: bytes.slice(pos + 11..end),
            });
        }
        pos = end + 4;
    }
    tags
}
