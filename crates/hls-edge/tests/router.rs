//! The edge router through `oneshot`: statuses, headers, caching, conditionals, ranges, gzip,
//! CORS, hostile paths, and many concurrent clients while segments are pushed.

mod common;

use std::io::Read as _;
use std::time::Instant;

use axum::Router;
use common::*;
use hls_edge::{router, EdgeConfig};
use http::StatusCode;

const PLAYLIST: &str = "/live/cam/index.m3u8";

/// A store with one live stream of 3 segments (2 s, 1000 bytes each, bytes 0..=255 cycling for
/// seg-2 so ranges are checkable).
fn setup(cfg: EdgeConfig) -> (TestStore, Router, TestHandle) {
    let t0 = Instant::now();
    let store = store_at(cfg, t0);
    let h = store.publish("live", "cam", 2);
    h.push_at(segment(1, 1000, 180_000, T0_UNIX_MS), t0);
    h.push_at(segment(2, 1000, 180_000, T0_UNIX_MS), t0);
    let mut s = segment(0, 0, 180_000, T0_UNIX_MS);
    let chunks = (0..4)
        .map(|c| {
            (0..250u32)
                .map(|i| ((c * 250 + i) % 256) as u8)
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    s.parts = parts(chunks, 180_000);
    h.push_at(s, t0);
    (store.clone(), router(store.store.clone()), h)
}

fn seg2_bytes() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 256) as u8).collect()
}

#[tokio::test]
async fn playlist_headers() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    let r = get(&app, PLAYLIST).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(r.header("cache-control"), "public, max-age=1");
    assert_eq!(r.header("vary"), "Accept-Encoding");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert!(r
        .header("access-control-expose-headers")
        .contains("Content-Range"));
    assert!(r.header("etag").starts_with('"'));
    assert!(httpdate::parse_http_date(r.header("last-modified")).is_ok());
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    assert!(r.headers.get("set-cookie").is_none());
    assert!(r.text().starts_with("#EXTM3U\n"));

    let head = request(&app, "HEAD", PLAYLIST, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), r.body.len().to_string());
    assert_eq!(head.header("etag"), r.header("etag"));
}

#[tokio::test]
async fn ended_playlists_cache_longer() {
    let (store, app, h) = setup(EdgeConfig::default());
    drop(h);
    store.end_all();
    let r = get(&app, PLAYLIST).await;
    assert!(r.text().ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(r.header("cache-control"), "public, max-age=12");
}

#[tokio::test]
async fn playlist_gzip() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    let plain = get(&app, PLAYLIST).await;
    let gz = request(&app, "GET", PLAYLIST, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gz.header("vary"), "Accept-Encoding");
    assert_ne!(
        gz.header("etag"),
        plain.header("etag"),
        "each representation has its own strong ETag"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, plain.text());
    let no = request(&app, "GET", PLAYLIST, &[("accept-encoding", "gzip;q=0")]).await;
    assert_eq!(no.header("content-encoding"), "");
    // Conditional on the gzip ETag.
    let etag = gz.header("etag").to_string();
    let nm = request(
        &app,
        "GET",
        PLAYLIST,
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn playlist_conditionals_follow_changes() {
    let (_s, app, h) = setup(EdgeConfig::default());
    let r = get(&app, PLAYLIST).await;
    let etag = r.header("etag").to_string();
    let nm = request(&app, "GET", PLAYLIST, &[("if-none-match", &etag)]).await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), etag);
    assert_eq!(nm.header("cache-control"), "public, max-age=1");
    // A new segment changes the ETag: no more 304.
    h.h.push_segment(segment(9, 10, 180_000, T0_UNIX_MS))
        .unwrap();
    let r2 = request(&app, "GET", PLAYLIST, &[("if-none-match", &etag)]).await;
    assert_eq!(r2.status, StatusCode::OK);
    assert_ne!(r2.header("etag"), etag);
    assert!(r2.text().contains("seg-3.ts"));
    // If-Modified-Since in the future relative to the change: 304; long ago: 200.
    let later = httpdate::fmt_http_date(
        std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(T0_UNIX_MS + 3_600_000),
    );
    let ims = request(&app, "GET", PLAYLIST, &[("if-modified-since", &later)]).await;
    assert_eq!(ims.status, StatusCode::NOT_MODIFIED);
    let ims = request(
        &app,
        "GET",
        PLAYLIST,
        &[("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")],
    )
    .await;
    assert_eq!(ims.status, StatusCode::OK);
    // If-None-Match wins over If-Modified-Since.
    let both = request(
        &app,
        "GET",
        PLAYLIST,
        &[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &later),
        ],
    )
    .await;
    assert_eq!(both.status, StatusCode::OK);
}

#[tokio::test]
async fn segment_headers_and_body() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    let r = get(&app, "/live/cam/seg-2.ts").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "video/mp2t");
    assert_eq!(
        r.header("cache-control"),
        "public, max-age=86400, immutable"
    );
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert_eq!(r.header("content-length"), "1000");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.body.to_vec(), seg2_bytes());
    let etag = r.header("etag").to_string();
    assert_ne!(etag, get(&app, "/live/cam/seg-1.ts").await.header("etag"));

    let nm = request(
        &app,
        "GET",
        "/live/cam/seg-2.ts",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    let lm = r.header("last-modified").to_string();
    let ims = request(
        &app,
        "GET",
        "/live/cam/seg-2.ts",
        &[("if-modified-since", &lm)],
    )
    .await;
    assert_eq!(
        ims.status,
        StatusCode::NOT_MODIFIED,
        "anchored clock: whole-second Last-Modified"
    );

    let head = request(&app, "HEAD", "/live/cam/seg-2.ts", &[]).await;
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (StatusCode::OK, "1000", 0)
    );

    let custom = setup(EdgeConfig {
        segment_cache_max_age_s: 600,
        ..EdgeConfig::default()
    })
    .1;
    assert_eq!(
        get(&custom, "/live/cam/seg-0.ts")
            .await
            .header("cache-control"),
        "public, max-age=600, immutable"
    );
}

#[tokio::test]
async fn segment_ranges() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    let all = seg2_bytes();
    let uri = "/live/cam/seg-2.ts";
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=240-260", 240, 260),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=100-5000", 100, 999),
    ] {
        let r = request(&app, "GET", uri, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.header("content-range"),
            format!("bytes {first}-{last}/1000")
        );
        assert_eq!(r.header("content-length"), (last - first + 1).to_string());
        assert_eq!(r.body.to_vec(), all[first..=last].to_vec(), "{range}");
    }
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let r = request(&app, "GET", uri, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), "bytes */1000");
    }
    for range in ["bytes=0-1,5-9", "lines=1-2", "bytes=x-y"] {
        let r = request(&app, "GET", uri, &[("range", range)]).await;
        assert_eq!((r.status, r.body.len()), (StatusCode::OK, 1000), "{range}");
    }
    let etag = get(&app, uri).await.header("etag").to_string();
    let ok = request(
        &app,
        "GET",
        uri,
        &[("range", "bytes=0-1"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::PARTIAL_CONTENT);
    let stale = request(
        &app,
        "GET",
        uri,
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);
    let head = request(&app, "HEAD", uri, &[("range", "bytes=0-9")]).await;
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (StatusCode::PARTIAL_CONTENT, "10", 0)
    );
}

#[tokio::test]
async fn not_found_is_briefly_cacheable() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    for uri in [
        "/live/nope/index.m3u8",
        "/live/cam/seg-99.ts",
        "/live/cam/seg-01.ts",
        "/live/cam/other.txt",
        "/x",
        "/a/b/c/d",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.header("cache-control"), "public, max-age=1", "{uri}");
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        assert_eq!(r.header("access-control-allow-origin"), "*");
        assert_eq!(r.text(), "not found\n");
    }
    let head = request(&app, "HEAD", "/live/nope/index.m3u8", &[]).await;
    assert_eq!((head.status, head.body.len()), (StatusCode::NOT_FOUND, 0));
    assert_eq!(head.header("cache-control"), "public, max-age=1");
    let custom = setup(EdgeConfig {
        not_found_max_age_s: 2,
        ..EdgeConfig::default()
    })
    .1;
    assert_eq!(
        get(&custom, "/live/x/index.m3u8")
            .await
            .header("cache-control"),
        "public, max-age=2"
    );
}

#[tokio::test]
async fn cors_preflight_and_disabled_cors() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    let r = request(
        &app,
        "OPTIONS",
        PLAYLIST,
        &[
            ("origin", "https://player.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-evil, range"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert!(r.header("access-control-allow-methods").contains("GET"));
    assert!(r.header("access-control-allow-headers").contains("Range"));
    assert!(
        !r.header("access-control-allow-headers").contains("x-evil"),
        "never reflected"
    );
    assert_eq!(r.header("x-content-type-options"), "nosniff");

    let specific = setup(EdgeConfig {
        cors_allow_origin: Some("https://a.example".into()),
        ..EdgeConfig::default()
    })
    .1;
    assert_eq!(
        get(&specific, PLAYLIST)
            .await
            .header("access-control-allow-origin"),
        "https://a.example"
    );

    let off = setup(EdgeConfig {
        cors_allow_origin: None,
        ..EdgeConfig::default()
    })
    .1;
    let r = get(&off, PLAYLIST).await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    let r = request(&off, "OPTIONS", PLAYLIST, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.headers.get("access-control-allow-methods").is_none());
}

#[tokio::test]
async fn other_methods_are_405() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    for m in ["POST", "PUT", "DELETE", "PATCH", "TRACE"] {
        for uri in [PLAYLIST, "/live/cam/seg-1.ts", "/a/b/c/d"] {
            let r = request(&app, m, uri, &[]).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
            assert_eq!(r.header("allow"), "GET, HEAD, OPTIONS");
            assert_eq!(r.header("x-content-type-options"), "nosniff");
        }
    }
}

#[tokio::test]
async fn hostile_paths_never_500_and_never_reflected() {
    let (_s, app, _h) = setup(EdgeConfig::default());
    for uri in [
        "/live/%2e%2e/index.m3u8",
        "/live/%2E%2E/index.m3u8",
        "/live/..%2fcam/index.m3u8",
        "/live/..%2Fcam/seg-1.ts",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/live/../index.m3u8",
        "/live/./index.m3u8",
        "/live/%252e%252e/index.m3u8",
        "/live/cam%00/index.m3u8",
        "/live/%c0%ae%c0%ae/index.m3u8",
        "/live/ca%20m/index.m3u8",
        "/live//index.m3u8",
        "/live/cam/index.m3u8/",
        "/live/caf%C3%A9/index.m3u8",
        "/live/%3Cscript%3E/index.m3u8",
    ] {
        let r = get(&app, uri).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{uri}: {}",
            r.status
        );
        assert!(
            !r.text().contains("script")
                && !r.text().contains("passwd")
                && !r.text().contains(".."),
            "{uri}"
        );
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    }
    let long_name = format!("/live/{}/index.m3u8", "a".repeat(129));
    assert_eq!(get(&app, &long_name).await.status, StatusCode::BAD_REQUEST);
    // Percent-encoded but valid: same resource.
    assert_eq!(
        get(&app, "/l%69ve/cam/index.m3u8").await.status,
        StatusCode::OK
    );
    // Ordinary query strings (cache busters) are ignored; huge ones refused.
    assert_eq!(
        get(&app, "/live/cam/index.m3u8?t=123").await.status,
        StatusCode::OK
    );
    let huge = format!("{PLAYLIST}?{}", "x".repeat(5000));
    assert_eq!(get(&app, &huge).await.status, StatusCode::URI_TOO_LONG);
    let long_path = format!("/{}", "a/".repeat(2000));
    assert_eq!(get(&app, &long_path).await.status, StatusCode::URI_TOO_LONG);
}

/// Many clients fetch the playlist and every segment it lists while segments are pushed: all
/// answers are 200 and every listed segment is downloadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_while_pushing() {
    let store = store_at(EdgeConfig::default(), Instant::now());
    let app = router(store.store.clone());
    let h = store.publish("live", "cam", 2).h;
    h.push_segment(segment(0, 4000, 180_000, T0_UNIX_MS))
        .unwrap();
    let pusher = {
        tokio::task::spawn_blocking(move || {
            for i in 1..300u64 {
                h.push_segment(segment(i as u8, 4000, 180_000, T0_UNIX_MS + i * 2000))
                    .unwrap();
            }
            h
        })
    };
    let mut clients = Vec::new();
    for _ in 0..32 {
        let app = app.clone();
        clients.push(tokio::spawn(async move {
            let mut fetched = 0;
            for _ in 0..20 {
                let p = get(&app, PLAYLIST).await;
                assert_eq!(p.status, StatusCode::OK);
                for line in p.text().lines().filter(|l| l.starts_with("seg-")) {
                    let s = get(&app, &format!("/live/cam/{line}")).await;
                    assert_eq!(s.status, StatusCode::OK, "{line}");
                    assert_eq!(s.body.len(), 4000);
                    fetched += 1;
                }
            }
            fetched
        }));
    }
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    let h = pusher.await.unwrap();
    assert!(total > 0);
    let sum = store.stream("live", "cam").unwrap();
    assert_eq!(sum.media_sequence + sum.segments as u64, 300);
    assert_eq!(store.bytes_held(), sum.bytes_held);
    drop(h);
}

/// The binary merges its own routes (no fallback of its own) with the edge router.
#[tokio::test]
async fn merges_with_the_binary_routes() {
    let (_s, edge, _h) = setup(EdgeConfig::default());
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/api/streams/{app}/{stream}",
            axum::routing::get(|| async { "api" }),
        )
        .merge(edge);
    assert_eq!(get(&app, "/healthz").await.text(), "ok");
    assert_eq!(get(&app, "/api/streams/live/cam").await.text(), "api");
    assert_eq!(get(&app, PLAYLIST).await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/nothing/here").await.status,
        StatusCode::NOT_FOUND
    );
}
