//! Where a segment's first keyframe is, as a byte range of the segment, for I-frame playlists
//! (RFC 8216bis §4.4.3.6 `EXT-X-I-FRAMES-ONLY`, §4.4.4.2 `EXT-X-BYTERANGE`).
//!
//! * MPEG-TS (ISO/IEC 13818-1): from the segment start (PAT, PMT) through the last TS packet
//!   of the keyframe's PES; the TS writer records that end as it writes the keyframe.
//! * CMAF (ISO/IEC 14496-12 §8.8.4 `moof`, §8.1.1 `mdat`): the first `moof` and the `mdat` that
//!   follows it, found here by walking the top-level box headers of the segment (after `styp`);
//!   with one fragment per video frame that range is the keyframe alone. The init segment is
//!   named by `EXT-X-MAP` in the I-frame playlist.

use bytes::Bytes;

/// A byte range of a segment: `len` bytes from `offset` (`EXT-X-BYTERANGE:<len>@<offset>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

/// Reads `N` bytes at `pos` of the concatenation of `chunks`, if that many are there.
fn read_at<const N: usize>(chunks: &[Bytes], mut pos: u64) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut filled = 0;
    for c in chunks {
        let len = c.len() as u64;
        if pos >= len {
            pos -= len;
            continue;
        }
        let start = pos as usize;
        let take = (c.len() - start).min(N - filled);
        out[filled..filled + take].copy_from_slice(&c[start..start + take]);
        filled += take;
        pos = 0;
        if filled == N {
            return Some(out);
        }
    }
    None
}

/// The range of the first `moof` + `mdat` pair of a CMAF segment given as its chunks; `None`
/// when the boxes are not where a segment of this writer has them.
pub fn first_fragment(chunks: &[Bytes]) -> Option<ByteRange> {
    let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let mut pos = 0u64;
    let mut moof_at = None;
    // A segment of this writer is `styp`, then `moof`+`mdat` pairs: a handful of headers.
    for _ in 0..8 {
        let h: [u8; 8] = read_at(chunks, pos)?;
        let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let size = if size == 1 {
            u64::from_be_bytes(read_at(chunks, pos + 8)?)
        } else {
            size
        };
        if size < 8 || pos + size > total {
            return None;
        }
        match (&h[4..8], moof_at) {
            (b"moof", None) => moof_at = Some(pos),
            (b"mdat", Some(at)) => {
                return Some(ByteRange {
                    offset: at,
                    len: pos + size - at,
                })
            }
            (b"moof", Some(_)) => return None,
            _ => {}
        }
        pos += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut v = ((8 + body) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.resize(8 + body, 0xAB);
        v
    }

    #[test]
    fn finds_the_first_moof_mdat_pair_across_chunks() {
        let styp = boxed(b"styp", 12);
        let moof = boxed(b"moof", 100);
        let mdat = boxed(b"mdat", 1000);
        let mut all = styp.clone();
        all.extend(&moof);
        all.extend(&mdat);
        all.extend(boxed(b"moof", 90));
        all.extend(boxed(b"mdat", 500));
        // Split at odd places, as the writer's header/payload chunks are.
        let chunks: Vec<Bytes> = [0..3, 3..25, 25..600, 600..all.len()]
            .into_iter()
            .map(|r| Bytes::copy_from_slice(&all[r]))
            .collect();
        assert_eq!(
            first_fragment(&chunks),
            Some(ByteRange {
                offset: 20,
                len: 108 + 1008
            })
        );
    }

    #[test]
    fn truncated_or_foreign_segments_have_no_range() {
        let mut v = boxed(b"styp", 12);
        v.extend(boxed(b"moof", 10));
        assert_eq!(first_fragment(&[Bytes::from(v.clone())]), None);
        let mut bad = v;
        bad.extend(&[0, 0, 0, 4]); // size below a header
        bad.extend(b"mdat");
        assert_eq!(first_fragment(&[Bytes::from(bad)]), None);
        assert_eq!(first_fragment(&[]), None);
    }

    fn segments(g: crate::tests::Gen) -> Vec<crate::Segment> {
        crate::tests::segments_of(crate::RemuxConfig::default(), g)
    }

    /// (pid, payload_unit_start, random_access) of each TS packet.
    fn packets(ts: &[u8]) -> Vec<(u16, bool, bool)> {
        ts.chunks(188)
            .map(|p| {
                assert_eq!(p[0], 0x47);
                let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
                let adaptation = (p[3] >> 4) & 2 == 2 && p[4] > 0;
                (pid, p[1] & 0x40 != 0, adaptation && p[5] & 0x40 != 0)
            })
            .collect()
    }

    #[test]
    fn ts_range_is_pat_pmt_and_exactly_the_opening_keyframe() {
        let segs = segments(crate::tests::Gen::default());
        let ts: Vec<_> = segs
            .iter()
            .filter(|s| s.container == crate::Container::Ts)
            .collect();
        assert_eq!(ts.len(), 5);
        for s in ts {
            let r = s
                .keyframe_range
                .expect("every segment opens with a keyframe");
            assert_eq!(r.offset, 0);
            assert_eq!(r.len % 188, 0, "ends on a packet boundary");
            assert!(r.len < s.len as u64);
            let bytes = s.parts.concat();
            let pk = packets(&bytes);
            let n = (r.len / 188) as usize;
            // PAT, PMT, then the keyframe PES (random access) and nothing else.
            assert_eq!((pk[0].0, pk[1].0), (0, 0x1000));
            assert_eq!(pk[2], (0x100, true, true));
            assert!(pk[3..n].iter().all(|p| p.0 == 0x100 && !p.1));
            // The next packet on the video PID starts the next PES: the keyframe is complete.
            let next_video = pk[n..].iter().find(|p| p.0 == 0x100).unwrap();
            assert!(next_video.1);
        }
    }

    #[test]
    fn cmaf_range_is_the_first_moof_mdat() {
        let segs = segments(crate::tests::Gen::default());
        for s in segs
            .iter()
            .filter(|s| s.container == crate::Container::Cmaf)
        {
            let r = s.keyframe_range.unwrap();
            let bytes = s.parts.concat();
            assert_eq!(&bytes[4..8], b"styp");
            assert_eq!(r.offset, 20, "right after styp");
            let at = r.offset as usize;
            assert_eq!(&bytes[at + 4..at + 8], b"moof");
            let moof = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(&bytes[at + moof + 4..at + moof + 8], b"mdat");
            let end = at + r.len as usize;
            assert!(end == bytes.len() || &bytes[end + 4..end + 8] == b"moof");
        }
    }

    #[test]
    fn audio_only_segments_have_no_range() {
        let segs = segments(crate::tests::Gen {
            video: false,
            ..crate::tests::Gen::default()
        });
        assert!(!segs.is_empty());
        assert!(segs.iter().all(|s| s.keyframe_range.is_none()));
    }
}
