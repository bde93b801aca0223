//! What the edge serves, made once when it is stored: immutable segment and init bodies (their
//! parts as `Bytes`, RFC 8216bis §4.4.4.9 partial segments) and rendered playlists with their gzip
//! copy (RFC 8216bis §6.2.1), each with its response header values (RFC 9110 §8.8 validators)
//! formatted once rather than per request.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;

/// Duration and independence of one part of a stored segment (LL-HLS `EXT-X-PART`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartMeta {
    pub duration_90k: u64,
    pub independent: bool,
}

/// An immutable media or init segment body, shared with requests by `Arc` clone.
#[derive(Debug)]
pub(crate) struct StoredBody {
    /// One chunk per part, in order; the body is their concatenation.
    pub chunks: Vec<Bytes>,
    /// A segment whose parts were pushed one by one (LL-HLS): each part as its own body
    /// (`part-N.P.m4s`), sharing the same `Bytes` as `chunks`. Empty otherwise.
    pub part_bodies: Vec<Arc<StoredBody>>,
    pub len_bytes: u64,
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: HeaderValue,
    /// `etag` and `last_modified` as header values.
    pub etag_value: HeaderValue,
    pub last_modified_value: HeaderValue,
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl StoredBody {
    pub fn new(
        chunks: Vec<Bytes>,
        part_bodies: Vec<Arc<StoredBody>>,
        etag: String,
        last_modified: SystemTime,
        content_type: &'static str,
    ) -> Self {
        let len_bytes = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            part_bodies,
            len_bytes,
            etag_value: header_value(&etag),
            last_modified_value: header_value(&httpdate::fmt_http_date(last_modified)),
            etag,
            last_modified,
            content_type: HeaderValue::from_static(content_type),
        }
    }
}

/// A rendered playlist, shared with requests by `Arc` clone.
#[derive(Debug)]
pub(crate) struct RenderedPlaylist {
    pub body: Bytes,
    pub gzip: Bytes,
    /// Strong ETag (quoted) of the identity body; the gzip body's ETag is `etag_gzip`.
    pub etag: String,
    pub etag_gzip: String,
    pub last_modified: SystemTime,
    /// Response header values, formatted once per change rather than once per request.
    pub headers: PlaylistHeaders,
}

/// Header values of a rendered playlist.
#[derive(Debug)]
pub(crate) struct PlaylistHeaders {
    pub etag: HeaderValue,
    pub etag_gzip: HeaderValue,
    pub last_modified: HeaderValue,
    pub cache_control: HeaderValue,
    pub content_length: HeaderValue,
    pub content_length_gzip: HeaderValue,
}

impl RenderedPlaylist {
    /// `tag` makes the ETags (unique per playlist life, container and version).
    pub fn new(body: Bytes, tag: &str, wall: SystemTime, max_age_s: u64) -> Self {
        let gzip = crate::playlist::gzip(&body);
        let etag = format!("\"p{tag}\"");
        let etag_gzip = format!("\"p{tag}-gz\"");
        let headers = PlaylistHeaders {
            etag: header_value(&etag),
            etag_gzip: header_value(&etag_gzip),
            last_modified: header_value(&httpdate::fmt_http_date(wall)),
            cache_control: header_value(&format!("public, max-age={max_age_s}")),
            content_length: HeaderValue::from(body.len()),
            content_length_gzip: HeaderValue::from(gzip.len()),
        };
        Self {
            gzip,
            body,
            etag,
            etag_gzip,
            last_modified: wall,
            headers,
        }
    }
}
