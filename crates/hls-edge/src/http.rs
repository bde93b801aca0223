//! HTTP helpers for the edge: name validation, conditional requests (RFC 9110 §13), byte ranges
//! (RFC 9110 §14), `Accept-Encoding` and a zero-copy multi-chunk body. Serving rules follow
//! RFC 8216bis §6.2.1 (gzip, atomic updates) and Appendix B.1 (cache lifetimes).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Longest path segment accepted (app, stream or file name).
pub const MAX_NAME_LEN: usize = 128;

/// A name usable as one URL path segment: `[A-Za-z0-9._~-]{1,128}`, not `.` or `..`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// Percent-decodes one raw path segment and validates it. Anything that decodes to a separator,
/// a dot segment, `%` (double encoding) or non-ASCII is refused.
pub fn decode_name(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    // Borrowed (no allocation) unless the segment actually has percent escapes.
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    is_valid_name(&decoded).then_some(decoded)
}

/// Outcome of a `Range` header against a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Absent, malformed, non-bytes unit or several ranges: serve the whole body (200).
    Full,
    /// One satisfiable range, inclusive bounds (206).
    Partial { first: u64, last: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`. Multiple ranges are answered with the full body
/// (RFC 9110 §14.2 lets a server ignore Range).
pub fn parse_range(header: &str, len: u64) -> RangeOutcome {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if a.is_empty() {
        // Suffix range: the last n bytes.
        let Some(n) = num(b) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            first: len.saturating_sub(n),
            last: len - 1,
        };
    }
    let Some(first) = num(a) else {
        return RangeOutcome::Full;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match num(b) {
            Some(l) if l >= first => l,
            _ => return RangeOutcome::Full,
        }
    };
    if first >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        first,
        last: last.min(len - 1),
    }
}

/// `If-None-Match` (weak comparison, RFC 9110 §13.1.2): true if any listed tag matches.
pub fn none_match_hits(header: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let mine = opaque(etag);
    header.split(',').any(|t| {
        let t = t.trim();
        t == "*" || opaque(t) == mine
    })
}

/// `If-Modified-Since`: true if the resource has not changed since that date. Compared with the
/// exact modification time, so a change within the same second as the date is not missed.
pub fn not_modified_since(header: &str, last_modified: SystemTime) -> bool {
    match httpdate::parse_http_date(header.trim()) {
        Ok(since) => last_modified <= since,
        Err(_) => false,
    }
}

/// `If-Range` (RFC 9110 §13.1.5): an exact strong ETag, or an HTTP date equal to Last-Modified.
pub fn if_range_holds(header: &str, etag: &str, last_modified: SystemTime) -> bool {
    let h = header.trim();
    if h.starts_with('"') {
        return h == etag;
    }
    if h.starts_with("W/") {
        return false;
    }
    httpdate::parse_http_date(h)
        .is_ok_and(|d| httpdate::fmt_http_date(d) == httpdate::fmt_http_date(last_modified))
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero q).
pub fn accepts_gzip(header: &str) -> bool {
    let mut gzip = None;
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .is_some_and(|q| q.trim().parse::<f32>().map(|q| q <= 0.0).unwrap_or(false))
        });
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(!q_zero),
            "*" => star = Some(!q_zero),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// The bytes `first..=last` of a body made of chunks, as slices of the same buffers.
pub fn slice_chunks(chunks: &[Bytes], first: u64, last: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for c in chunks {
        let (start, end) = (offset, offset + c.len() as u64); // [start, end)
        offset = end;
        if end <= first || c.is_empty() {
            continue;
        }
        if start > last {
            break;
        }
        let from = first.saturating_sub(start) as usize;
        let to = ((last + 1).min(end) - start) as usize;
        out.push(c.slice(from..to));
    }
    out
}

/// A response body that yields its chunks as frames: no copy, exact length.
#[derive(Debug, Default)]
pub struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining_bytes: u64,
}

impl ChunksBody {
    pub fn new(chunks: Vec<Bytes>) -> Self {
        let remaining_bytes = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            remaining_bytes,
        }
    }
}

impl http_body::Body for ChunksBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.remaining_bytes -= c.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names() {
        for ok in ["live", "a", "cam-1_hd.v2~x", &"x".repeat(128), "..."] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a%2e",
            &"x".repeat(129),
            "a\0",
            "a?b",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn decoding_refuses_traversal_in_any_encoding() {
        assert_eq!(decode_name("live").as_deref(), Some("live"));
        assert_eq!(decode_name("l%69ve").as_deref(), Some("live"));
        for bad in [
            "%2e%2e",
            "%2E%2E",
            "..%2f",
            "..%2F..",
            "%2e.",
            "%252e%252e",
            "a%00",
            "%c0%ae%c0%ae",
            "%ff",
            "%",
        ] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        let t = [
            ("bytes=0-9", 100, Partial { first: 0, last: 9 }),
            (
                "bytes=90-",
                100,
                Partial {
                    first: 90,
                    last: 99,
                },
            ),
            (
                "bytes=90-1000",
                100,
                Partial {
                    first: 90,
                    last: 99,
                },
            ),
            (
                "bytes=-10",
                100,
                Partial {
                    first: 90,
                    last: 99,
                },
            ),
            ("bytes=-1000", 100, Partial { first: 0, last: 99 }),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=5-1", 100, Full),
            ("bytes=0-1,5-6", 100, Full),
            ("items=0-1", 100, Full),
            ("bytes=abc", 100, Full),
            ("bytes=99999999999999999999999-", 100, Full),
            ("bytes=-", 100, Full),
        ];
        for (h, len, want) in t {
            assert_eq!(parse_range(h, len), want, "{h} of {len}");
        }
    }

    #[test]
    fn slicing_spans_chunks_without_copy() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ];
        let cat = |v: Vec<Bytes>| {
            v.iter()
                .flat_map(|b| b.iter().copied())
                .collect::<Vec<u8>>()
        };
        assert_eq!(cat(slice_chunks(&chunks, 0, 8)), b"abcdefghi");
        assert_eq!(cat(slice_chunks(&chunks, 2, 3)), b"cd");
        assert_eq!(cat(slice_chunks(&chunks, 3, 6)), b"defg");
        assert_eq!(cat(slice_chunks(&chunks, 8, 8)), b"i");
        let s = slice_chunks(&chunks, 4, 5);
        assert_eq!(s[0].as_ptr(), chunks[2][1..].as_ptr());
    }

    #[test]
    fn conditionals() {
        assert!(none_match_hits("\"a\"", "\"a\""));
        assert!(none_match_hits("\"x\", W/\"a\"", "\"a\""));
        assert!(none_match_hits("*", "\"a\""));
        assert!(!none_match_hits("\"b\"", "\"a\""));
        let lm = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let same_second = httpdate::fmt_http_date(lm);
        assert!(
            !not_modified_since(&same_second, lm),
            "sub-second change after the date"
        );
        assert!(not_modified_since(
            &httpdate::fmt_http_date(lm + Duration::from_secs(1)),
            lm
        ));
        assert!(!not_modified_since("garbage", lm));
        assert!(if_range_holds("\"a\"", "\"a\"", lm));
        assert!(!if_range_holds("W/\"a\"", "\"a\"", lm));
        assert!(if_range_holds(&same_second, "\"a\"", lm));
    }

    #[test]
    fn accept_encoding() {
        for (h, want) in [
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("gzip;q=0", false),
            ("*", true),
            ("*;q=0", false),
            ("identity", false),
            ("", false),
            ("GZIP", true),
        ] {
            assert_eq!(accepts_gzip(h), want, "{h}");
        }
    }
}
