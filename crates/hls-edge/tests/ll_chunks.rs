//! Parts that stream while they grow (RFC 8216bis §6.2.6 preload hints; CMAF chunks, ISO/IEC
//! 23000-19 §7.3.2.3) on a paused tokio clock: a request for the hinted part gets its `200` and
//! first bytes after the first chunk and before the part is complete (asserted on events:
//! bytes received while the producer has not closed the part), then exactly the part's bytes;
//! a thousand such requests get identical bytes; a publisher that leaves mid-part, or stalls,
//! ends the bodies cut (an error, never a short body that looks complete); the growing part's
//! bytes count in the budget and are released when it is given up.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use common::*;
use hls_edge::{router, EdgeConfig, PartDone};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// One segment (4 parts) complete, segment 1 open with one part; the hint names part 1.1.
fn setup() -> (TestStore, TestHandle, axum::Router, Instant) {
    let t0 = Instant::now();
    let s = store_at(EdgeConfig::default(), t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "b");
    h.ll_segment(t0, 0, 4, 0x10);
    let start = cmaf_start(false, T0_UNIX_MS + 2000);
    h.part_at(&start, ll_part(0x20, 40, 45_000, true), t0 + secs(2.0));
    (s, h, app, t0)
}

fn chunk(fill: u8, len: usize) -> Vec<Bytes> {
    // Two pieces, as the remuxer hands them (box headers, then sample data).
    vec![Bytes::from(vec![fill; 4]), Bytes::from(vec![fill; len - 4])]
}

fn done() -> PartDone {
    PartDone {
        duration_90k: 27_000,
        independent: false,
        segment_target_reached: false,
    }
}

fn start1() -> hls_edge::SegmentStart {
    cmaf_start(false, T0_UNIX_MS + 2000)
}

async fn wait_for_waiters(s: &TestStore, n: usize) {
    while s.waiting_requests("live", "b") < n {
        tokio::task::yield_now().await;
    }
}

/// `uri` is listed as an `EXT-X-PART` (not only hinted).
fn listed(playlist: &str, uri: &str) -> bool {
    playlist
        .lines()
        .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&format!("URI=\"{uri}\"")))
}

/// The response head of a GET, its body left to read.
async fn open(app: &axum::Router, uri: &str) -> http::Response<Body> {
    let req = Request::get(uri).body(Body::empty()).unwrap();
    app.clone().oneshot(req).await.unwrap()
}

/// The next data frame of `body`: `Some(Ok)`, `Some(Err)` when cut, `None` at a normal end.
async fn next_data(body: &mut Body) -> Option<Result<Bytes, ()>> {
    loop {
        match body.frame().await? {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    return Some(Ok(d));
                }
            }
            Err(_) => return Some(Err(())),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn hinted_part_streams_its_chunks_before_it_is_complete() {
    let (s, h, app, _t0) = setup();
    let a = app.clone();
    let head = tokio::spawn(async move { open(&a, "/live/b/part-1.1.m4s").await });
    wait_for_waiters(&s, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!head.is_finished(), "answered before any chunk existed");
    h.h.push_chunk(hls_edge::Container::Cmaf, chunk(0x21, 20))
        .unwrap();
    let resp = head.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("content-length").is_none());
    let cc = resp.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cc.contains("immutable"), "{cc}");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend_from_slice(&next_data(&mut body).await.unwrap().unwrap());
    }
    // 20 of the part's 50 bytes arrived while the producer has not closed it; the playlist
    // does not list it yet.
    assert_eq!(got, vec![0x21; 20]);
    let pl = get(&app, "/live/b/cmaf.m3u8").await;
    assert!(!listed(pl.text(), "part-1.1.m4s"), "{}", pl.text());
    let rest = tokio::spawn(async move {
        let mut more = Vec::new();
        while let Some(d) = next_data(&mut body).await {
            more.extend_from_slice(&d.expect("not cut"));
        }
        more
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !rest.is_finished(),
        "body ended before the part was complete"
    );
    h.h.push_chunk(hls_edge::Container::Cmaf, chunk(0x22, 30))
        .unwrap();
    h.h.complete_part(&start1(), done()).unwrap();
    got.extend(rest.await.unwrap());
    let mut want = vec![0x21; 20];
    want.extend([0x22; 30]);
    assert_eq!(got, want);
    // Complete: listed, and served whole with Content-Length and ETag, the same bytes.
    let r = get(&app, "/live/b/part-1.1.m4s").await;
    assert_eq!(r.header("content-length"), "50");
    assert!(!r.header("etag").is_empty());
    assert_eq!(r.body.as_ref(), &want[..]);
    assert!(listed(
        get(&app, "/live/b/cmaf.m3u8").await.text(),
        "part-1.1.m4s"
    ));
    // The segment is its parts, grown ones included.
    h.h.push_segment(ll_finish(72_000, T0_UNIX_MS + 2000))
        .unwrap();
    let seg = get(&app, "/live/b/seg-1.m4s").await.body;
    assert_eq!(&seg[40..], &want[..]);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_hinted_requests_get_identical_bytes() {
    let (s, h, app, _t0) = setup();
    let mut reqs = Vec::new();
    for _ in 0..1000 {
        let a = app.clone();
        reqs.push(tokio::spawn(async move {
            get(&a, "/live/b/part-1.1.m4s").await
        }));
    }
    wait_for_waiters(&s, 1000).await;
    for (i, n) in [(0x31u8, 10usize), (0x32, 300), (0x33, 7)] {
        h.h.push_chunk(hls_edge::Container::Cmaf, chunk(i, n))
            .unwrap();
        tokio::task::yield_now().await;
    }
    h.h.complete_part(&start1(), done()).unwrap();
    let mut want = vec![0x31; 10];
    want.extend([0x32; 300]);
    want.extend([0x33; 7]);
    for r in reqs {
        let r = r.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.as_ref(), &want[..]);
    }
    assert_eq!(s.waiting_requests("live", "b"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_publisher_leaving_mid_part_cuts_the_bodies_and_releases_the_bytes() {
    let (s, h, app, t0) = setup();
    let held_before = s.bytes_held();
    let a = app.clone();
    let head = tokio::spawn(async move { open(&a, "/live/b/part-1.1.m4s").await });
    wait_for_waiters(&s, 1).await;
    h.h.push_chunk(hls_edge::Container::Cmaf, chunk(0x41, 64))
        .unwrap();
    assert_eq!(s.bytes_held(), held_before + 64, "a growing part counts");
    let mut body = head.await.unwrap().into_body();
    let mut got = Vec::new();
    while got.len() < 64 {
        got.extend_from_slice(&next_data(&mut body).await.unwrap().unwrap());
    }
    h.end_at(t0 + secs(2.4));
    // Cut, not ended: a cache must not keep 64 bytes as the part.
    assert_eq!(next_data(&mut body).await, Some(Err(())));
    assert_eq!(
        s.bytes_held(),
        held_before,
        "the given-up part's bytes are released"
    );
    // Never listed, never servable.
    assert_eq!(
        get(&app, "/live/b/part-1.1.m4s").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_part_cuts_the_body_after_the_limit() {
    let (s, h, app, _t0) = setup();
    let a = app.clone();
    let head = tokio::spawn(async move { open(&a, "/live/b/part-1.1.m4s").await });
    wait_for_waiters(&s, 1).await;
    h.h.push_chunk(hls_edge::Container::Cmaf, chunk(0x51, 8))
        .unwrap();
    let mut body = head.await.unwrap().into_body();
    assert_eq!(
        next_data(&mut body).await,
        Some(Ok(Bytes::from(vec![0x51; 4])))
    );
    assert_eq!(
        next_data(&mut body).await,
        Some(Ok(Bytes::from(vec![0x51; 4])))
    );
    // Three target durations (6 s) without a chunk: cut (the paused clock jumps there).
    let cut = tokio::spawn(async move { next_data(&mut body).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!cut.is_finished());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cut.await.unwrap(), Some(Err(())));
    drop(h);
}

#[tokio::test(start_paused = true)]
async fn a_part_pushed_whole_replaces_a_growing_one() {
    let (s, h, app, t0) = setup();
    let held_before = s.bytes_held();
    h.h.push_chunk(hls_edge::Container::Cmaf, chunk(0x61, 16))
        .unwrap();
    let mut body = open(&app, "/live/b/part-1.1.m4s").await.into_body();
    h.part_at(&start1(), ll_part(0x62, 40, 27_000, false), t0 + secs(2.3));
    let mut seen = Vec::new();
    let end = loop {
        match next_data(&mut body).await {
            Some(Ok(d)) => seen.extend_from_slice(&d),
            other => break other,
        }
    };
    assert_eq!(seen, vec![0x61; 16]);
    assert_eq!(end, Some(Err(())), "the grown bytes are not the part: cut");
    assert_eq!(s.bytes_held(), held_before + 40);
    assert_eq!(
        get(&app, "/live/b/part-1.1.m4s").await.body.as_ref(),
        &[0x62; 40][..]
    );
}
