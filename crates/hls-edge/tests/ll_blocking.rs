//! Blocking playlist reload and preload-hint requests (RFC 8216bis §6.2.5.2, §6.2.6) on a paused
//! tokio clock: a request waits until what it asked for is pushed and not before, one push wakes
//! a thousand waiters, a waiter on one runtime is woken by a push from another, too far ahead is
//! 400, three target durations is 503, shutdown answers with the final playlist.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hls_edge::{router, EdgeConfig};
use http::StatusCode;

/// One segment (4 parts) complete, segment 1 open with one part; next part is 1.1.
fn setup(cfg: EdgeConfig) -> (TestStore, TestHandle, axum::Router, Instant) {
    let t0 = Instant::now();
    let s = store_at(cfg, t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "b");
    h.ll_segment(t0, 0, 4, 0x10);
    let start = cmaf_start(false, T0_UNIX_MS + 2000);
    h.part_at(&start, ll_part(0x20, 40, 45_000, true), t0 + secs(2.0));
    (s, h, app, t0)
}

fn start1() -> hls_edge::SegmentStart {
    cmaf_start(false, T0_UNIX_MS + 2000)
}

async fn wait_for_waiters(s: &TestStore, n: usize) {
    while s.waiting_requests("live", "b") < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn wakes_when_the_part_is_pushed_and_not_before() {
    let (s, h, app, t0) = setup(EdgeConfig::default());
    let a = app.clone();
    let req =
        tokio::spawn(async move { get(&a, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=2").await });
    wait_for_waiters(&s, 1).await;
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    // Part 1.1 does not satisfy a request for 1.2.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!req.is_finished(), "answered before part 1.2 existed");
    h.part_at(&start1(), ll_part(0x22, 40, 45_000, false), t0 + secs(3.0));
    let r = req.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("part-1.2.m4s\"\n#EXT-X-PRELOAD-HINT"),
        "{}",
        r.text()
    );
    // Blocking answers are cacheable for 6 target durations (Appendix B.1).
    assert_eq!(r.header("cache-control"), "public, max-age=12");
    assert_eq!(s.waiting_requests("live", "b"), 0);
    // Already there: answered at once, non-blocking max-age for a plain request.
    let r = get(&app, "/live/b/cmaf.m3u8?_HLS_msn=0").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&app, "/live/b/cmaf.m3u8").await;
    assert_eq!(r.header("cache-control"), "public, max-age=1");
}

#[tokio::test(start_paused = true)]
async fn msn_waits_for_the_whole_segment_and_past_last_part_means_next_segment() {
    let (s, h, app, t0) = setup(EdgeConfig::default());
    let a = app.clone();
    let seg = tokio::spawn(async move { get(&a, "/live/b/cmaf.m3u8?_HLS_msn=1").await });
    let a = app.clone();
    // Segment 0 has 4 parts: part 9 of it means part 0 of segment 1, which exists.
    let r = get(&a, "/live/b/cmaf.m3u8?_HLS_msn=0&_HLS_part=9").await;
    assert_eq!(r.status, StatusCode::OK);
    wait_for_waiters(&s, 1).await;
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!seg.is_finished(), "a part is not the segment");
    h.clock.set(t0 + secs(3.0));
    h.h.push_segment(ll_finish(90_000, T0_UNIX_MS + 2000))
        .unwrap();
    let r = seg.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("seg-1.m4s\n"));
}

#[tokio::test(start_paused = true)]
async fn a_thousand_waiters_are_answered_by_one_push() {
    let (s, h, app, t0) = setup(EdgeConfig::default());
    let mut reqs = Vec::new();
    for _ in 0..1000 {
        let a = app.clone();
        reqs.push(tokio::spawn(async move {
            get(&a, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=1").await
        }));
    }
    wait_for_waiters(&s, 1000).await;
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    let mut bodies = std::collections::HashSet::new();
    for r in reqs {
        let r = r.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        bodies.insert(r.body);
    }
    // All answered with the same rendered playlist, which lists the new part.
    assert_eq!(bodies.len(), 1);
    assert!(std::str::from_utf8(bodies.iter().next().unwrap())
        .unwrap()
        .contains("part-1.1.m4s"));
    assert_eq!(s.waiting_requests("live", "b"), 0);
}

#[test]
fn a_waiter_on_one_runtime_is_woken_by_a_push_from_another_thread() {
    let (s, h, app, t0) = setup(EdgeConfig::default());
    let waiter = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move { get(&app, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=1").await })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        while s.waiting_requests("live", "b") < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    let r = waiter.join().unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("part-1.1.m4s"));
}

#[tokio::test(start_paused = true)]
async fn bad_and_too_far_ahead_requests_are_400() {
    let (_s, _h, app, _t0) = setup(EdgeConfig::default());
    for uri in [
        // Last segment is 0: more than two ahead.
        "/live/b/cmaf.m3u8?_HLS_msn=3",
        // Open segment 1 has one part: 3 s of 0.5 s parts (6) past part 0 is the limit.
        "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=7",
        "/live/b/cmaf.m3u8?_HLS_part=1",
        "/live/b/cmaf.m3u8?_HLS_msn=x",
        "/live/b/cmaf.m3u8?_HLS_skip=no",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.header("cache-control"), "no-store", "{uri}");
    }
    // Within the limits: held, then 503 after 3 target durations (spec §6.2.5.2).
    let a = app.clone();
    let held =
        tokio::spawn(async move { get(&a, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=6").await });
    tokio::time::sleep(Duration::from_millis(5_900)).await;
    assert!(!held.is_finished());
    let r = held.await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("cache-control"), "no-store");
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_waiters_with_the_final_playlist() {
    let (s, _h, app, t0) = setup(EdgeConfig::default());
    let a = app.clone();
    let req = tokio::spawn(async move { get(&a, "/live/b/cmaf.m3u8?_HLS_msn=2").await });
    let a = app.clone();
    let hint = tokio::spawn(async move { get(&a, "/live/b/part-1.1.m4s").await });
    wait_for_waiters(&s, 2).await;
    s.end_all_at(t0 + secs(2.2));
    let r = req.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().ends_with("#EXT-X-ENDLIST\n"), "{}", r.text());
    assert!(!r.text().contains("PRELOAD-HINT"));
    // The hinted part will never exist.
    assert_eq!(hint.await.unwrap().status, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn the_hinted_part_is_answered_when_pushed() {
    let (s, h, app, t0) = setup(EdgeConfig::default());
    // Not hinted (two ahead) and not there: 404 at once.
    assert_eq!(
        get(&app, "/live/b/part-1.2.m4s").await.status,
        StatusCode::NOT_FOUND
    );
    let a = app.clone();
    let req = tokio::spawn(async move { get(&a, "/live/b/part-1.1.m4s").await });
    wait_for_waiters(&s, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!req.is_finished());
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    let r = req.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), &[0x21; 40][..]);
    assert!(r.header("cache-control").contains("immutable"));
    // The hint now names 1.2; the segment completes without it: the waiter gets 404.
    let a = app.clone();
    let req = tokio::spawn(async move { get(&a, "/live/b/part-1.2.m4s").await });
    wait_for_waiters(&s, 1).await;
    h.clock.set(t0 + secs(3.0));
    h.h.push_segment(ll_finish(90_000, T0_UNIX_MS + 2000))
        .unwrap();
    assert_eq!(req.await.unwrap().status, StatusCode::NOT_FOUND);
    // Complete segments' parts stay downloadable and equal their byte range of the segment.
    let seg = get(&app, "/live/b/seg-1.m4s").await.body;
    let p1 = get(&app, "/live/b/part-1.1.m4s").await.body;
    assert_eq!(&seg[40..80], p1.as_ref());
}

#[tokio::test(start_paused = true)]
async fn waiters_per_stream_are_bounded() {
    let cfg = EdgeConfig {
        max_waiting_requests_per_stream: 2,
        ..EdgeConfig::default()
    };
    let (s, h, app, t0) = setup(cfg);
    let mut held = Vec::new();
    for _ in 0..2 {
        let a = app.clone();
        held.push(tokio::spawn(async move {
            get(&a, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=1").await
        }));
    }
    wait_for_waiters(&s, 2).await;
    let r = get(&app, "/live/b/cmaf.m3u8?_HLS_msn=1&_HLS_part=1").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    h.part_at(&start1(), ll_part(0x21, 40, 45_000, false), t0 + secs(2.5));
    for r in held {
        assert_eq!(r.await.unwrap().status, StatusCode::OK);
    }
}
