//! Store behaviour on a controlled clock: exact playlist text through reconnects, window slides
//! and the end of life; segment availability; memory budgets.

mod common;

use std::time::Instant;

use common::*;
use hls_edge::Clock as _;
use hls_edge::{router, EdgeConfig, EdgeError, StreamInfo, StreamState};
use http::StatusCode;

fn cfg() -> EdgeConfig {
    EdgeConfig {
        window_segments: 3,
        ..EdgeConfig::default()
    }
}

const S2: u64 = 180_000; // 2.000 s

/// Golden playlist texts: a publish, a reconnect within grace (DISCONTINUITY, numbering goes
/// on), a producer-flagged discontinuity, the window sliding past both (MEDIA-SEQUENCE and
/// DISCONTINUITY-SEQUENCE grow), grace expiry (ENDLIST), removal (404), and a later publish of
/// the same URL (numbers keep growing). Reason: players depend on every one of these lines.
#[tokio::test]
async fn exact_playlist_text_through_a_whole_life() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());
    let url = "/live/cam/index.m3u8";

    assert_eq!(get(&app, url).await.status, StatusCode::NOT_FOUND);
    let h1 = store.publish("live", "cam", 2);
    assert_eq!(
        get(&app, url).await.status,
        StatusCode::NOT_FOUND,
        "no playlist before the first segment"
    );

    h1.push_at(segment(1, 1000, S2, T0_UNIX_MS), t0 + secs(2.0));
    assert_eq!(
        get(&app, url).await.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:00.000Z\n#EXTINF:2.000,\nseg-0.ts\n"
    );
    // Arrival times after the first only matter after a discontinuity: PDT follows durations.
    h1.push_at(segment(2, 1000, S2, T0_UNIX_MS + 2_040), t0 + secs(4.0));
    h1.push_at(
        segment(3, 1000, 180_180, T0_UNIX_MS + 4_010),
        t0 + secs(6.0),
    );
    h1.end_at(t0 + secs(6.5));

    // Reconnect within the grace period: same playlist, pinned target duration, DISCONTINUITY.
    store.tick_at(t0 + secs(20.0));
    assert_eq!(
        store.stream("live", "cam").unwrap().state,
        StreamState::Grace
    );
    // A different declaration is ignored: the target duration is pinned for the playlist's life.
    let h2 = store.publish("live", "cam", 4);
    assert_eq!(
        store.stream("live", "cam").unwrap().target_duration_s,
        Some(2)
    );
    let s3 = segment(4, 1000, S2, T0_UNIX_MS + 10_000);
    h2.push_at(s3, t0 + secs(22.0));
    assert_eq!(
        get(&app, url).await.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:02.000Z\n#EXTINF:2.000,\nseg-1.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:04.000Z\n#EXTINF:2.002,\nseg-2.ts\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:10.000Z\n#EXTINF:2.000,\nseg-3.ts\n"
    );

    // seg-4 not independent; seg-5 flagged discontinuity by the producer (PDT re-anchored).
    let mut s4 = segment(5, 1000, S2, T0_UNIX_MS + 12_000);
    s4.independent = false;
    h2.push_at(s4, t0 + secs(24.0));
    let mut s5 = segment(6, 1000, 180_090, T0_UNIX_MS + 20_000);
    s5.discontinuity = true;
    h2.push_at(s5, t0 + secs(26.0));
    assert_eq!(
        get(&app, url).await.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:10.000Z\n#EXTINF:2.000,\nseg-3.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:12.000Z\n#EXTINF:2.000,\nseg-4.ts\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:20.000Z\n#EXTINF:2.001,\nseg-5.ts\n"
    );
    // seg-3 (with its DISCONTINUITY) slides out: DISCONTINUITY-SEQUENCE 1.
    h2.push_at(segment(7, 1000, S2, T0_UNIX_MS + 22_500), t0 + secs(28.0));
    // seg-4 slides out (no tag), then seg-5 (tag): 2. PDTs follow the durations from 20.000.
    h2.push_at(segment(8, 1000, S2, T0_UNIX_MS + 24_500), t0 + secs(30.0));
    h2.push_at(segment(9, 1000, S2, T0_UNIX_MS + 26_500), t0 + secs(32.0));
    let live = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:6\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:22.001Z\n#EXTINF:2.000,\nseg-6.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:24.001Z\n#EXTINF:2.000,\nseg-7.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:26.001Z\n#EXTINF:2.000,\nseg-8.ts\n";
    assert_eq!(get(&app, url).await.text(), live);
    let sum = store.stream("live", "cam").unwrap();
    assert_eq!(
        (sum.media_sequence, sum.discontinuity_sequence, sum.segments),
        (6, 2, 3)
    );

    // Publisher leaves (handle dropped): unchanged for the grace period, then ENDLIST.
    let end = t0 + secs(33.0);
    h2.end_at(end);
    store.tick_at(end + secs(19.9));
    assert_eq!(get(&app, url).await.text(), live);
    store.tick_at(end + secs(20.0));
    let ended = format!("{live}#EXT-X-ENDLIST\n");
    assert_eq!(get(&app, url).await.text(), ended);
    assert_eq!(
        store.stream("live", "cam").unwrap().state,
        StreamState::Ended
    );

    // Removed after the ended retention; its segments stay for their availability duration.
    store.tick_at(end + secs(79.9));
    assert_eq!(get(&app, url).await.text(), ended);
    store.tick_at(end + secs(80.0));
    assert_eq!(get(&app, url).await.status, StatusCode::NOT_FOUND);
    assert!(store.stream("live", "cam").is_none());
    assert_eq!(get(&app, "/live/cam/seg-8.ts").await.status, StatusCode::OK);
    // seg-6: 2 s + longest playlist containing it (6.001 s) after removal.
    store.tick_at(end + secs(87.9));
    assert_eq!(get(&app, "/live/cam/seg-6.ts").await.status, StatusCode::OK);
    store.tick_at(end + secs(88.1));
    assert_eq!(
        get(&app, "/live/cam/seg-6.ts").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(store.bytes_held(), 0);

    // A new publish of the same URL: a new life, but the numbers only grow.
    // A new life takes the new declaration.
    let h3 = store.publish("live", "cam", 4);
    let s = segment(10, 1000, 360_000, T0_UNIX_MS + 200_000);
    h3.push_at(s, end + secs(200.0));
    assert_eq!(
        get(&app, url).await.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:9\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:03:20.000Z\n#EXTINF:4.000,\nseg-9.ts\n"
    );
}

/// A publish after ENDLIST but before removal continues the playlist: ENDLIST goes, the next
/// segment carries DISCONTINUITY, numbering and target duration go on.
#[tokio::test]
async fn republish_after_endlist_continues_the_playlist() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());
    let h = store.publish("live", "x", 2);
    h.push_at(segment(1, 100, S2, T0_UNIX_MS), t0 + secs(2.0));
    h.end_at(t0 + secs(2.0));
    store.tick_at(t0 + secs(30.0));
    assert!(get(&app, "/live/x/index.m3u8")
        .await
        .text()
        .ends_with("#EXT-X-ENDLIST\n"));
    let h = store.publish("live", "x", 2);
    assert!(!get(&app, "/live/x/index.m3u8")
        .await
        .text()
        .contains("ENDLIST"));
    h.push_at(segment(2, 100, S2, T0_UNIX_MS + 40_000), t0 + secs(42.0));
    assert_eq!(
        get(&app, "/live/x/index.m3u8").await.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:00.000Z\n#EXTINF:2.000,\nseg-0.ts\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:40.000Z\n#EXTINF:2.000,\nseg-1.ts\n"
    );
    // Shutdown: ENDLIST right away, later pushes of the detached publisher are ignored.
    store.end_all_at(t0 + secs(43.0));
    assert_eq!(
        h.try_push_at(segment(3, 100, S2, T0_UNIX_MS + 42_000), t0 + secs(44.0)),
        Err(EdgeError::NotPublishing)
    );
    let text = get(&app, "/live/x/index.m3u8").await;
    assert!(
        text.text().ends_with("seg-1.ts\n#EXT-X-ENDLIST\n"),
        "{}",
        text.text()
    );
}

/// The window keeps at least 3 target durations even with short segments.
#[tokio::test]
async fn window_never_below_three_target_durations() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let h = store.publish("live", "short", 2);
    for i in 0..20u64 {
        let s = segment(1, 100, 90_000, T0_UNIX_MS + i * 1000); // 1 s segments, TD 2
        h.push_at(s, t0 + secs(i as f64 + 1.0));
    }
    let sum = store.stream("live", "short").unwrap();
    assert_eq!(sum.segments, 6, "3 x 2 s of 1 s segments");
    assert_eq!(sum.playlist_duration_ms, 6000);
    assert_eq!(sum.media_sequence, 14);
}

/// HLS §6.2.2: a segment that left the playlist stays downloadable for its duration plus the
/// longest playlist that contained it, then it is gone.
#[tokio::test]
async fn slid_out_segment_stays_available_then_404() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());
    let h = store.publish("live", "a", 2);
    for i in 0..4u64 {
        h.push_at(
            segment(i as u8, 500, S2, T0_UNIX_MS + i * 2000),
            t0 + secs(2.0 * (i + 1) as f64),
        );
    }
    // seg-0 left the playlist at t0+8 s; the longest playlist containing it lasted 6 s.
    assert!(!get(&app, "/live/a/index.m3u8")
        .await
        .text()
        .contains("seg-0.ts"));
    store.tick_at(t0 + secs(15.9));
    let r = get(&app, "/live/a/seg-0.ts").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 500);
    assert_eq!(store.stream("live", "a").unwrap().segments_held, 4);
    store.tick_at(t0 + secs(16.0));
    assert_eq!(
        get(&app, "/live/a/seg-0.ts").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, "/live/a/seg-1.ts").await.status, StatusCode::OK);
    assert_eq!(store.bytes_held(), 1500);
    assert_eq!(store.stream("live", "a").unwrap().bytes_held, 1500);
}

#[tokio::test]
async fn per_stream_budget_drops_retired_first_then_oldest_listed() {
    let t0 = Instant::now();
    let store = store_at(
        EdgeConfig {
            window_segments: 3,
            max_bytes_per_stream: 10_000,
            ..EdgeConfig::default()
        },
        t0,
    );
    let app = router(store.store.clone());
    let h = store.publish("live", "big", 2);
    for i in 0..4u64 {
        h.push_at(
            segment(1, 3000, S2, T0_UNIX_MS),
            t0 + secs(2.0 * (i + 1) as f64),
        );
    }
    // seg-0 left the window and would be kept for availability, but the budget wins.
    assert_eq!(store.bytes_held(), 9000);
    assert_eq!(store.stream("live", "big").unwrap().bytes_held, 9000);
    assert_eq!(
        get(&app, "/live/big/seg-0.ts").await.status,
        StatusCode::NOT_FOUND
    );

    // Listed segments go when nothing else is left (a window wider than the budget).
    let store = store_at(
        EdgeConfig {
            window_segments: 10,
            max_bytes_per_stream: 10_000,
            ..EdgeConfig::default()
        },
        t0,
    );
    let h = store.publish("live", "big", 2);
    for i in 0..5u64 {
        h.push_at(
            segment(1, 3000, S2, T0_UNIX_MS),
            t0 + secs(2.0 * (i + 1) as f64),
        );
        assert!(store.bytes_held() <= 10_000);
    }
    let sum = store.stream("live", "big").unwrap();
    assert_eq!(
        (sum.segments, sum.media_sequence, sum.bytes_held),
        (3, 2, 9000)
    );
}

#[tokio::test]
async fn total_budget_across_streams_and_accurate_accounting() {
    let t0 = Instant::now();
    let cfg = EdgeConfig {
        window_segments: 10,
        max_bytes_total: 20_000,
        ..EdgeConfig::default()
    };
    let store = store_at(cfg, t0);
    let app = router(store.store.clone());
    let a = store.publish("live", "a", 2);
    let b = store.publish("live", "b", 2);
    for i in 0..12u64 {
        let at = t0 + secs(2.0 * (i + 1) as f64);
        a.push_at(segment(1, 3000, S2, T0_UNIX_MS + i * 2000), at);
        b.push_at(segment(2, 2000, S2, T0_UNIX_MS + i * 2000 + 1), at);
        let held = store.bytes_held();
        assert!(held <= 20_000, "{held}");
        let sum: u64 = store.streams().iter().map(|s| s.bytes_held).sum();
        assert_eq!(sum, held);
    }
    // Both streams keep their newest segments; the oldest went first, across streams.
    let text_a = get(&app, "/live/a/index.m3u8").await;
    let text_b = get(&app, "/live/b/index.m3u8").await;
    assert!(text_a.text().contains("seg-11.ts") && text_b.text().contains("seg-11.ts"));
    let (sa, sb) = (
        store.stream("live", "a").unwrap(),
        store.stream("live", "b").unwrap(),
    );
    assert_eq!(sa.bytes_held, 3000 * sa.segments_held as u64);
    assert_eq!(sb.bytes_held, 2000 * sb.segments_held as u64);
    assert!(
        sa.media_sequence.abs_diff(sb.media_sequence) <= 1,
        "{} {}",
        sa.media_sequence,
        sb.media_sequence
    );
    // Every listed segment is still downloadable: the cache never evicted on its own.
    for (name, text) in [("a", &text_a), ("b", &text_b)] {
        for line in text.text().lines().filter(|l| l.starts_with("seg-")) {
            let uri = format!("/live/{name}/{line}");
            assert_eq!(get(&app, &uri).await.status, StatusCode::OK, "{uri}");
        }
    }
    let dropped = format!("/live/a/seg-{}.ts", sa.media_sequence - 1);
    assert_eq!(get(&app, &dropped).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stream_limit_and_names() {
    let store = store_at(
        EdgeConfig {
            max_streams: 2,
            ..EdgeConfig::default()
        },
        Instant::now(),
    );
    let _a = store.publish("live", "a", 2);
    let _b = store.publish("live", "b", 2);
    assert!(matches!(
        store.begin_publish("live", "c", params(2)),
        Err(EdgeError::TooManyStreams { max_streams: 2 })
    ));
    // The same name again is a reconnect, not a new stream.
    let a = store.begin_publish("live", "a", params(2)).unwrap();
    // A stream that ended and was removed frees its place; one that is only ended does not.
    let t0 = store.clock.now().instant;
    drop(a);
    drop(_a);
    store.tick_at(t0 + secs(21.0));
    assert_eq!(store.stream("live", "a").unwrap().state, StreamState::Ended);
    assert!(store.begin_publish("live", "c", params(2)).is_err());
    store.tick_at(t0 + secs(82.0));
    assert!(store.stream("live", "a").is_none());
    let _c = store.begin_publish("live", "c", params(2)).unwrap();
    assert!(store.begin_publish("live", "d", params(2)).is_err());
    for (app, stream) in [
        ("live", ".."),
        ("live", "a/b"),
        ("", "x"),
        ("live", "k?key=1"),
    ] {
        assert_eq!(
            store.begin_publish(app, stream, params(2)).unwrap_err(),
            EdgeError::InvalidStreamName
        );
    }
}

/// Only the newest publisher of a name may push; a detached handle's drop does not end it.
#[tokio::test]
async fn takeover_detaches_the_old_handle() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let old = store.publish("live", "t", 2);
    let new = store.publish("live", "t", 2);
    assert_eq!(
        old.try_push_at(segment(1, 10, S2, T0_UNIX_MS), t0),
        Err(EdgeError::NotPublishing)
    );
    assert!(store.stream("live", "t").unwrap().segments == 0);
    drop(old);
    assert_eq!(store.stream("live", "t").unwrap().state, StreamState::Live);
    new.push_at(segment(1, 10, S2, T0_UNIX_MS), t0);
    let info = StreamInfo {
        codecs: Some("avc1.64001f,mp4a.40.2".into()),
        ..StreamInfo::default()
    };
    new.set_media(Some(info), None);
    let s = store.stream("live", "t").unwrap();
    assert_eq!(
        (s.segments, s.info.codecs.as_deref()),
        (1, Some("avc1.64001f,mp4a.40.2"))
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["state"], "live");
}

/// The janitor drives grace, ENDLIST and removal on tokio's (paused) clock.
#[tokio::test(start_paused = true)]
async fn janitor_on_paused_clock() {
    let clock = std::sync::Arc::new(hls_edge::TokioClock::new(std::time::SystemTime::now()));
    let store = hls_edge::Store::new(EdgeConfig::default(), clock);
    let janitor = store.spawn_janitor();
    let app = router(store.clone());
    let h = store.begin_publish("live", "j", params(2)).unwrap();
    h.push_segment(segment(1, 10, S2, T0_UNIX_MS)).unwrap();
    drop(h); // publisher gone without end(): same as end()
    tokio::time::sleep(secs(19.0)).await;
    assert!(!get(&app, "/live/j/index.m3u8")
        .await
        .text()
        .contains("ENDLIST"));
    tokio::time::sleep(secs(2.0)).await;
    assert!(get(&app, "/live/j/index.m3u8")
        .await
        .text()
        .contains("#EXT-X-ENDLIST"));
    tokio::time::sleep(secs(61.0)).await;
    assert_eq!(
        get(&app, "/live/j/index.m3u8").await.status,
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(secs(10.0)).await;
    assert_eq!(store.bytes_held(), 0);
    assert!(store.streams().is_empty());
    janitor.abort();
}
