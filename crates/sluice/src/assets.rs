//! Static files built into the binary: the vendored hls.js release (Apache-2.0; version, source
//! and licence in `crates/sluice/assets/README.md`) at a versioned path, cacheable for a year
//! (RFC 9111 §5.2.2.1 `max-age`, RFC 8246 `immutable`), gzip-encoded when the client accepts it
//! (RFC 9110 §12.5.3 Accept-Encoding), with a strong ETag for revalidation (RFC 9110 §8.8.3).

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The vendored hls.js release.
pub const HLSJS_VERSION: &str = "1.7.4";
/// Where the binary serves it; the version in the path makes a year of caching safe.
pub const HLSJS_PATH: &str = "/assets/hls-1.7.4.min.js";
const HLSJS_ETAG: &str = "\"hls-1.7.4\"";
const HLSJS_ETAG_GZIP: &str = "\"hls-1.7.4-gzip\"";

static HLSJS: &[u8] = include_bytes!("../assets/hls.min.js");

fn hlsjs_gzip() -> &'static Bytes {
    static GZ: OnceLock<Bytes> = OnceLock::new();
    GZ.get_or_init(|| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(HLSJS);
        Bytes::from(enc.finish().unwrap_or_default())
    })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut it = coding.split(';').map(str::trim);
            let name = it.next().unwrap_or("");
            let q_zero = it.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

/// `GET /assets/hls-VERSION.min.js`.
pub async fn hlsjs(headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers) && !hlsjs_gzip().is_empty();
    let etag = if gzip { HLSJS_ETAG_GZIP } else { HLSJS_ETAG };
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (h, hlsjs_gzip().clone()).into_response()
    } else {
        (h, Bytes::from_static(HLSJS)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_is_the_version_the_path_names() {
        assert_eq!(HLSJS_PATH, format!("/assets/hls-{HLSJS_VERSION}.min.js"));
        let text = std::str::from_utf8(HLSJS).expect("hls.min.js is text");
        assert!(
            text.contains(&format!("\"{HLSJS_VERSION}\"")),
            "assets/hls.min.js does not carry version {HLSJS_VERSION}"
        );
        assert!(HLSJS_ETAG.contains(HLSJS_VERSION) && HLSJS_ETAG_GZIP.contains(HLSJS_VERSION));
    }

    #[test]
    fn gzip_round_trips_and_is_smaller() {
        use std::io::Read;
        let gz = hlsjs_gzip();
        assert!(
            gz.len() < HLSJS.len() / 2,
            "gzip {} of {}",
            gz.len(),
            HLSJS.len()
        );
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, HLSJS);
    }

    #[test]
    fn accept_encoding_is_parsed() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip, deflate, br"));
        assert!(h("br;q=1.0, GZIP;q=0.5"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
