//! Exact LL-HLS playlist text for scripted timelines on a simulated clock (RFC 8216bis §4.4.3.7,
//! §4.4.3.8, §4.4.4.9, §4.4.5.1, §4.4.5.2), compared with the golden files in `tests/golden/`
//! (`README.md` there says why each is right). `UPDATE_GOLDEN=1` rewrites them.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use hls_edge::{router, EdgeConfig};
use http::StatusCode;

fn golden(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.m3u8"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        text,
        want,
        "{name}: playlist differs from {}",
        path.display()
    );
}

async fn text(app: &axum::Router, uri: &str) -> String {
    let r = get(app, uri).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}");
    r.text().to_string()
}

/// Two complete segments, the third open with two parts: parts, hint, pinned LL attributes.
#[tokio::test]
async fn parts_and_preload_hint() {
    let t0 = Instant::now();
    let s = store_at(EdgeConfig::default(), t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "ll");
    h.ll_segment(t0, 0, 4, 0x10);
    h.ll_segment(t0, 1, 4, 0x20);
    let start = cmaf_start(false, T0_UNIX_MS + 4000);
    h.part_at(
        &start,
        ll_part(0x30, 50, 45_000, true),
        t0 + Duration::from_millis(4000),
    );
    h.part_at(
        &start,
        ll_part(0x31, 50, 44_910, false),
        t0 + Duration::from_millis(4500),
    );
    golden("parts_and_hint", &text(&app, "/live/ll/cmaf.m3u8").await);
    // The open segment's parts are served at once.
    let r = get(&app, "/live/ll/part-2.1.m4s").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), &[0x31; 50][..]);
}

/// Nine segments in a ten-segment window: `_HLS_skip=YES` and `v2` leave out the segments that
/// end 12 s (CAN-SKIP-UNTIL) or more before the end.
#[tokio::test]
async fn delta_updates() {
    let t0 = Instant::now();
    let cfg = EdgeConfig {
        window_segments: 10,
        ..EdgeConfig::default()
    };
    let s = store_at(cfg, t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "ll");
    for i in 0..9 {
        h.ll_segment(t0, i, 4, i as u8 * 16);
    }
    let start = cmaf_start(false, T0_UNIX_MS + 18_000);
    h.part_at(
        &start,
        ll_part(0xA0, 50, 45_000, true),
        t0 + Duration::from_millis(18_000),
    );
    let full = text(&app, "/live/ll/cmaf.m3u8").await;
    golden("skip_full", &full);
    let yes = text(&app, "/live/ll/cmaf.m3u8?_HLS_skip=YES").await;
    golden("skip_yes", &yes);
    // No EXT-X-DATERANGE is ever written, so v2 skips exactly the same.
    let v2 = text(&app, "/live/ll/cmaf.m3u8?_HLS_skip=v2").await;
    assert_eq!(v2, yes);
    // Blocking and skipping together.
    let both = text(
        &app,
        "/live/ll/cmaf.m3u8?_HLS_msn=9&_HLS_part=0&_HLS_skip=YES",
    )
    .await;
    assert_eq!(both, yes);
}

/// The publisher leaves mid-segment and comes back: the open segment is listed with the parts
/// it has, the next one starts with a discontinuity before its first part, numbers go on.
#[tokio::test]
async fn reconnect_with_discontinuity() {
    let t0 = Instant::now();
    let s = store_at(EdgeConfig::default(), t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "ll");
    h.ll_segment(t0, 0, 4, 0x10);
    let start = cmaf_start(false, T0_UNIX_MS + 2000);
    h.part_at(
        &start,
        ll_part(0x20, 60, 45_000, true),
        t0 + Duration::from_millis(2000),
    );
    h.part_at(
        &start,
        ll_part(0x21, 60, 45_000, false),
        t0 + Duration::from_millis(2500),
    );
    h.end_at(t0 + Duration::from_millis(2600));
    let h = s.publish_ll("live", "ll");
    let start = cmaf_start(false, T0_UNIX_MS + 5000);
    h.clock.set(t0 + Duration::from_millis(5000));
    h.part_at(
        &start,
        ll_part(0x40, 70, 45_000, true),
        t0 + Duration::from_millis(5000),
    );
    golden("reconnect", &text(&app, "/live/ll/cmaf.m3u8").await);
    // The short segment is the concatenation of the two parts it had.
    let seg = get(&app, "/live/ll/seg-1.m4s").await;
    assert_eq!(seg.body.len(), 120);
    assert_eq!(&seg.body[..60], &[0x20; 60][..]);
}

/// Shutdown: ENDLIST, no preload hint, directives ignored.
#[tokio::test]
async fn ended_stream() {
    let t0 = Instant::now();
    let s = store_at(EdgeConfig::default(), t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "ll");
    h.ll_segment(t0, 0, 4, 0x10);
    h.ll_segment(t0, 1, 3, 0x20);
    s.end_all_at(t0 + Duration::from_millis(3600));
    let ended = text(&app, "/live/ll/cmaf.m3u8").await;
    golden("ended", &ended);
    assert_eq!(
        text(&app, "/live/ll/cmaf.m3u8?_HLS_msn=7&_HLS_part=3").await,
        ended
    );
    drop(h);
}

/// `low_latency = false`: the same pushes make a standard CMAF playlist.
#[tokio::test]
async fn low_latency_off() {
    let t0 = Instant::now();
    let cfg = EdgeConfig {
        low_latency: false,
        ..EdgeConfig::default()
    };
    let s = store_at(cfg, t0);
    let app = router(s.store.clone());
    let h = s.publish_ll("live", "ll");
    h.ll_segment(t0, 0, 4, 0x10);
    h.ll_segment(t0, 1, 4, 0x20);
    let off = text(&app, "/live/ll/cmaf.m3u8").await;
    golden("ll_off", &off);
    // Directives are ignored: the same playlist at once.
    assert_eq!(text(&app, "/live/ll/cmaf.m3u8?_HLS_msn=5").await, off);
}

/// A group of two renditions (`variant_suffixes`): each CMAF playlist reports the other's last
/// part (`EXT-X-RENDITION-REPORT`, RFC 8216bis §4.4.5.4), as the sibling had it at this
/// playlist's last change.
#[tokio::test]
async fn rendition_reports_name_the_siblings_last_part() {
    let t0 = Instant::now();
    let cfg = EdgeConfig {
        variant_suffixes: vec!["_hi".into(), "_lo".into()],
        ..EdgeConfig::default()
    };
    let s = store_at(cfg, t0);
    let app = router(s.store.clone());
    let info = hls_edge::StreamInfo {
        codecs: Some("avc1.64001f".into()),
        ..Default::default()
    };
    let hi = s.publish_ll("live", "cam_hi");
    let lo = s.publish_ll("live", "cam_lo");
    hi.set_media(None, Some(info.clone()));
    lo.set_media(None, Some(info));
    lo.ll_segment(t0, 0, 4, 0x10);
    hi.ll_segment(t0, 0, 4, 0x10);
    let start = cmaf_start(false, T0_UNIX_MS + 2000);
    lo.part_at(&start, ll_part(0x20, 50, 45_000, true), t0 + secs(2.0));
    hi.part_at(&start, ll_part(0x20, 50, 45_000, true), t0 + secs(2.0));
    let hi_text = text(&app, "/live/cam_hi/cmaf.m3u8").await;
    assert!(
        hi_text.ends_with(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-1.1.m4s\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../cam_lo/cmaf.m3u8\",LAST-MSN=1,LAST-PART=0\n"
        ),
        "{hi_text}"
    );
    // lo's last change came before hi had segment 0 listed in the group: no report yet, or
    // hi's position then.
    let lo_text = text(&app, "/live/cam_lo/cmaf.m3u8").await;
    assert!(!lo_text.contains("cam_lo/cmaf.m3u8"), "{lo_text}");
}
