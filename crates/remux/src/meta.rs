//! `onMetaData` hints (AMF0 §2; field names per FLV E.5 and Enhanced RTMP v2 "Enhancing
//! onMetaData"): only `videocodecid` / `audiocodecid` are read, to know early which tracks to
//! expect. Advisory only — sequence headers decide.

/// Which tracks the metadata announces (`None` = not stated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackHints {
    pub video_codec_id: Option<u32>,
    pub audio_codec_id: Option<u32>,
    /// The script tag was an `onMetaData` we could read.
    pub seen: bool,
}

const MAX_DEPTH: usize = 4;
const MAX_PROPS: usize = 256;

struct R<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.d.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
    }
    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .and_then(|s| usize::try_from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])).ok())
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Value: Some(number) for numbers, Some(None) for other values, None on error.
fn value(r: &mut R<'_>, depth: usize, hints: &mut TrackHints, top: bool) -> Option<Option<f64>> {
    if depth > MAX_DEPTH {
        return None;
    }
    match r.u8()? {
        0 => {
            let b = r.take(8)?;
            Some(Some(f64::from_be_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ])))
        }
        1 => r.take(1).map(|_| None),
        2 => r.string().map(|_| None),
        3 => props(r, depth + 1, hints, top).map(|_| None),
        5 | 6 => Some(None),
        8 => {
            r.u32()?;
            props(r, depth + 1, hints, top).map(|_| None)
        }
        10 => {
            let n = r.u32()?;
            if n > MAX_PROPS {
                return None;
            }
            for _ in 0..n {
                value(r, depth + 1, hints, false)?;
            }
            Some(None)
        }
        11 => r.take(10).map(|_| None),
        12 => {
            let n = r.u32()?;
            r.take(n).map(|_| None)
        }
        _ => None,
    }
}

fn props(r: &mut R<'_>, depth: usize, hints: &mut TrackHints, top: bool) -> Option<()> {
    for _ in 0..MAX_PROPS {
        let key = r.string()?;
        if key.is_empty() && r.d.get(r.pos) == Some(&9) {
            r.pos += 1;
            return Some(());
        }
        let v = value(r, depth, hints, false)?;
        if top {
            let id = v
                .filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
                .map(|n| n as u32);
            match key {
                b"videocodecid" => hints.video_codec_id = id.or(Some(0)),
                b"audiocodecid" => hints.audio_codec_id = id.or(Some(0)),
                _ => {}
            }
        }
    }
    Some(())
}

/// Parses a script tag body; returns hints if it is `onMetaData` (optionally after `@setDataFrame`).
pub fn parse_script(d: &[u8]) -> Option<TrackHints> {
    let mut r = R { d, pos: 0 };
    let mut hints = TrackHints::default();
    for _ in 0..2 {
        if r.u8()? != 2 {
            return None;
        }
        let name = r.string()?;
        if name == b"onMetaData" {
            hints.seen = true;
            // Properties arrive as an ECMA array or object; a truncated tail still yields what was read.
            let _ = value(&mut r, 0, &mut hints, true);
            return Some(hints);
        }
        if name != b"@setDataFrame" {
            return None;
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn metadata(video: Option<f64>, audio: Option<f64>) -> Vec<u8> {
        let mut v = vec![2, 0, 13];
        v.extend_from_slice(b"@setDataFrame");
        v.extend_from_slice(&[2, 0, 10]);
        v.extend_from_slice(b"onMetaData");
        v.extend_from_slice(&[8, 0, 0, 0, 3]);
        let mut num = |k: &str, n: f64| {
            v.extend_from_slice(&(k.len() as u16).to_be_bytes());
            v.extend_from_slice(k.as_bytes());
            v.push(0);
            v.extend_from_slice(&n.to_be_bytes());
        };
        num("width", 640.0);
        if let Some(x) = video {
            num("videocodecid", x);
        }
        if let Some(x) = audio {
            num("audiocodecid", x);
        }
        v.extend_from_slice(&[0, 0, 9]);
        v
    }

    #[test]
    fn reads_codec_ids() {
        let h = parse_script(&metadata(Some(7.0), None)).unwrap();
        assert_eq!(
            (h.video_codec_id, h.audio_codec_id, h.seen),
            (Some(7), None, true)
        );
        let h = parse_script(&metadata(None, Some(10.0))).unwrap();
        assert_eq!((h.video_codec_id, h.audio_codec_id), (None, Some(10)));
        assert!(parse_script(&[2, 0, 3, b'f', b'o', b'o']).is_none());
        let m = metadata(Some(7.0), Some(10.0));
        for n in 0..m.len() {
            let _ = parse_script(&m[..n]);
        }
    }
}
