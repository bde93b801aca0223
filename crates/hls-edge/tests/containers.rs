//! Both containers through a stream's life: exact CMAF playlist text (EXT-X-MAP, a new init
//! after a codec change), which container `index.m3u8` serves, content types and caching of
//! segments and init segments, bytes held per container.

mod common;

use std::time::Instant;

use common::*;
use hls_edge::{
    router, AudioCodec, AudioInfo, Container, EdgeConfig, EdgeError, StreamInfo, VideoCodec,
    VideoInfo,
};
use http::StatusCode;

const S2: u64 = 180_000; // 2.000 s
const INIT_AVC: &[u8] = b"ftyp-moov-avc1";
const INIT_HEVC: &[u8] = b"ftyp-moov-hvc1-longer";

fn cfg() -> EdgeConfig {
    EdgeConfig {
        window_segments: 3,
        ..EdgeConfig::default()
    }
}

fn h264_aac() -> StreamInfo {
    StreamInfo {
        codecs: Some("avc1.64001f,mp4a.40.2".into()),
        video: Some(VideoInfo {
            codec: VideoCodec::H264,
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
        }),
        audio: Some(AudioInfo {
            codec: AudioCodec::Aac,
            sample_rate_hz: 48_000,
            channels: 2,
            language: None,
            name: None,
        }),
    }
}

fn hevc_aac() -> StreamInfo {
    StreamInfo {
        codecs: Some("hvc1.1.6.L93.B0,mp4a.40.2".into()),
        video: Some(VideoInfo {
            codec: VideoCodec::Hevc,
            ..h264_aac().video.unwrap()
        }),
        ..h264_aac()
    }
}

/// Golden texts. H.264 publish making TS and CMAF: `index.m3u8` is the TS playlist (version 3),
/// `cmaf.m3u8` the CMAF one (version 6, EXT-X-MAP before the first segment). A reconnect with
/// HEVC makes only CMAF: `index.m3u8` follows to CMAF; the new init gets a new number, a
/// DISCONTINUITY and a new EXT-X-MAP; when the window slides past the old init's segments the
/// map of the first listed segment still comes first. Reason: a player needs the right init for
/// every segment it may start at (HLS §4.4.4.5), and the new map is only allowed after a
/// discontinuity.
#[tokio::test]
async fn cmaf_playlist_text_through_a_codec_change() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());

    let h = store.publish("live", "cam", 2);
    h.set_media(Some(h264_aac()), Some(h264_aac()));
    for i in 0..2u64 {
        let at = t0 + secs(2.0 * (i + 1) as f64);
        let arrival = T0_UNIX_MS + i * 2000;
        assert_eq!(h.push_at(segment(1, 100, S2, arrival), at), i);
        assert_eq!(h.push_at(cmaf_segment(2, 80, S2, arrival, INIT_AVC), at), i);
    }
    let ts = get(&app, "/live/cam/index.m3u8").await;
    assert!(
        ts.text().starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"),
        "{}",
        ts.text()
    );
    assert!(ts.text().contains("seg-1.ts\n"));
    let cmaf1 = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-0.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:00.000Z\n#EXTINF:2.000,\nseg-0.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:02.000Z\n#EXTINF:2.000,\nseg-1.m4s\n";
    assert_eq!(get(&app, "/live/cam/cmaf.m3u8").await.text(), cmaf1);
    let sum = store.stream("live", "cam").unwrap();
    assert_eq!(sum.primary_container, Some(Container::Ts));
    assert_eq!(sum.containers.ts.bytes_held, 200);
    assert_eq!(
        sum.containers.cmaf.bytes_held,
        160 + INIT_AVC.len() as u64,
        "segments and the init"
    );
    assert_eq!(
        store.bytes_held_by_container(),
        hls_edge::PerContainer {
            ts: 200,
            cmaf: 160 + INIT_AVC.len() as u64
        }
    );
    h.end_at(t0 + secs(5.0));

    // Reconnect with HEVC: CMAF only.
    let h = store.publish("live", "cam", 2);
    h.set_media(None, Some(hevc_aac()));
    let push = |i: u64| {
        let at = t0 + secs(2.0 * (i + 1) as f64);
        let arrival = T0_UNIX_MS + 10_000 + i * 2000;
        h.push_at(cmaf_segment(3, 80, S2, arrival, INIT_HEVC), at)
    };
    push(2);
    push(3);
    let cmaf2 = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-0.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:02.000Z\n#EXTINF:2.000,\nseg-1.m4s\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-MAP:URI=\"init-1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:14.000Z\n#EXTINF:2.000,\nseg-2.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:16.000Z\n#EXTINF:2.000,\nseg-3.m4s\n";
    assert_eq!(get(&app, "/live/cam/cmaf.m3u8").await.text(), cmaf2);
    assert_eq!(get(&app, "/live/cam/index.m3u8").await.text(), cmaf2);
    // The old init's last segment slides out: the DISCONTINUITY stays on the first listed
    // segment (its sequence number only grows when the tag itself leaves).
    push(4);
    let now = get(&app, "/live/cam/cmaf.m3u8").await;
    assert_eq!(get(&app, "/live/cam/index.m3u8").await.text(), now.text());
    let want = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-MAP:URI=\"init-1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:14.000Z\n#EXTINF:2.000,\nseg-2.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:16.000Z\n#EXTINF:2.000,\nseg-3.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:18.000Z\n#EXTINF:2.000,\nseg-4.m4s\n";
    assert_eq!(now.text(), want);
    let sum = store.stream("live", "cam").unwrap();
    assert_eq!(sum.primary_container, Some(Container::Cmaf));
    assert_eq!(
        sum.info.codecs.as_deref(),
        Some("hvc1.1.6.L93.B0,mp4a.40.2")
    );

    // Content types and caching.
    let init = get(&app, "/live/cam/init-1.mp4").await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(init.body.as_ref(), INIT_HEVC);
    assert_eq!(init.header("content-type"), "video/mp4");
    assert!(init.header("cache-control").contains("immutable"));
    let seg = get(&app, "/live/cam/seg-4.m4s").await;
    assert_eq!(seg.status, StatusCode::OK);
    assert_eq!(seg.header("content-type"), "video/mp4");
    assert_eq!(seg.body.len(), 80);
    let ts = get(&app, "/live/cam/seg-1.ts").await;
    assert_eq!(ts.header("content-type"), "video/mp2t");
    assert_eq!(
        get(&app, "/live/cam/seg-9.m4s").await.status,
        StatusCode::NOT_FOUND
    );
    // A CMAF segment without its init is refused.
    let mut bad = cmaf_segment(3, 80, S2, T0_UNIX_MS, INIT_HEVC);
    bad.init = None;
    assert_eq!(
        h.try_push_at(bad, t0 + secs(11.0)),
        Err(EdgeError::MissingInit)
    );
}

fn opus_only() -> StreamInfo {
    StreamInfo {
        codecs: Some("opus".into()),
        video: None,
        audio: Some(AudioInfo {
            codec: AudioCodec::Opus,
            sample_rate_hz: 48_000,
            channels: 2,
            language: None,
            name: None,
        }),
    }
}

/// An audio-only CMAF stream through grace, ENDLIST, removal and a new life: golden texts,
/// `audio/mp4`, init segments held exactly as long as a segment needs them, and names that keep
/// growing in the new life (a CDN may still hold the old `init-0.mp4` and `seg-N.m4s`).
#[tokio::test]
async fn cmaf_whole_life_grace_endlist_removal_and_new_life() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());
    let url = "/live/radio/index.m3u8";
    let h = store.publish("live", "radio", 2);
    h.set_media(None, Some(opus_only()));
    for i in 0..3u64 {
        let at = t0 + secs(2.0 * (i + 1) as f64);
        h.push_at(cmaf_segment(7, 64, S2, T0_UNIX_MS + i * 2000, INIT_AVC), at);
    }
    let live = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-0.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:00.000Z\n#EXTINF:2.000,\nseg-0.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:02.000Z\n#EXTINF:2.000,\nseg-1.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:00:04.000Z\n#EXTINF:2.000,\nseg-2.m4s\n";
    assert_eq!(get(&app, url).await.text(), live, "index.m3u8 is CMAF");
    assert_eq!(get(&app, "/live/radio/cmaf.m3u8").await.text(), live);
    assert_eq!(
        get(&app, "/live/radio/seg-0.m4s")
            .await
            .header("content-type"),
        "audio/mp4"
    );
    assert_eq!(
        get(&app, "/live/radio/init-0.mp4")
            .await
            .header("content-type"),
        "audio/mp4"
    );
    assert_eq!(
        get(&app, "/live/radio/seg-0.ts").await.status,
        StatusCode::NOT_FOUND,
        "no TS made"
    );

    let end = t0 + secs(6.5);
    h.end_at(end);
    store.tick_at(end + secs(19.9));
    assert_eq!(get(&app, url).await.text(), live, "grace looks live");
    store.tick_at(end + secs(20.0));
    let ended = format!("{live}#EXT-X-ENDLIST\n");
    assert_eq!(get(&app, url).await.text(), ended);
    assert_eq!(get(&app, "/live/radio/cmaf.m3u8").await.text(), ended);
    store.tick_at(end + secs(80.0));
    assert_eq!(get(&app, url).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/live/radio/init-0.mp4").await.status,
        StatusCode::OK,
        "the init stays while its segments are downloadable"
    );
    store.tick_at(end + secs(200.0));
    assert_eq!(
        get(&app, "/live/radio/init-0.mp4").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(store.bytes_held(), 0);
    assert!(store.stream("live", "radio").is_none());

    // A new life: numbers go on, the same init bytes get a new name in the new life.
    let h = store.publish("live", "radio", 2);
    h.set_media(None, Some(opus_only()));
    let seq = h.push_at(
        cmaf_segment(8, 64, S2, T0_UNIX_MS + 300_000, INIT_AVC),
        end + secs(300.0),
    );
    assert_eq!(seq, 3);
    assert_eq!(
        get(&app, url).await.text(),
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-05-01T12:05:00.000Z\n#EXTINF:2.000,\nseg-3.m4s\n"
    );
}

/// Init segments are immutable objects: validators, 304, ranges and HEAD work as for segments.
#[tokio::test]
async fn init_segments_are_cacheable_objects() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let app = router(store.store.clone());
    let h = store.publish("live", "cam", 2);
    h.set_media(Some(h264_aac()), Some(h264_aac()));
    h.push_at(cmaf_segment(1, 100, S2, T0_UNIX_MS, INIT_HEVC), t0);
    let r = get(&app, "/live/cam/init-0.mp4").await;
    let etag = r.header("etag").to_string();
    assert!(etag.starts_with("\"i"), "{etag}");
    assert_eq!(r.header("content-length"), INIT_HEVC.len().to_string());
    let nm = request(
        &app,
        "GET",
        "/live/cam/init-0.mp4",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    let part = request(
        &app,
        "GET",
        "/live/cam/init-0.mp4",
        &[("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body.as_ref(), &INIT_HEVC[..4]);
    let head = request(&app, "HEAD", "/live/cam/seg-0.m4s", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-type"), "video/mp4");
    assert!(head.body.is_empty());
    // cmaf.m3u8 is gzip-able like every playlist.
    let gz = request(
        &app,
        "GET",
        "/live/cam/cmaf.m3u8",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gz.header("content-type"), "application/vnd.apple.mpegurl");
    // The same init bytes again: the same name, no new map, no discontinuity.
    h.push_at(cmaf_segment(2, 100, S2, T0_UNIX_MS + 2000, INIT_HEVC), t0);
    let text = get(&app, "/live/cam/cmaf.m3u8").await;
    assert_eq!(text.text().matches("#EXT-X-MAP").count(), 1);
    assert!(!text.text().contains("DISCONTINUITY\n"));
}

/// Measured bandwidth: the peak segment bitrate of the life and the average over the window.
#[tokio::test]
async fn bandwidth_is_measured_from_stored_segments() {
    let t0 = Instant::now();
    let store = store_at(cfg(), t0);
    let h = store.publish("live", "bw", 2);
    // 2 s segments of 250 kB, 500 kB, 250 kB, 250 kB: 1, 2, 1, 1 Mbit/s.
    for (i, len) in [250_000, 500_000, 250_000, 250_000].into_iter().enumerate() {
        h.push_at(segment(1, len, S2, T0_UNIX_MS + i as u64 * 2000), t0);
    }
    let sum = store.stream("live", "bw").unwrap();
    let bw = sum.containers.ts.bandwidth;
    assert_eq!(bw.peak_bps, 2_000_000);
    // Window: the last 3 (500k + 250k + 250k over 6 s).
    assert_eq!(bw.average_bps, 1_333_333);
    let json = serde_json::to_value(&sum).unwrap();
    assert_eq!(json["containers"]["ts"]["bandwidth"]["peak_bps"], 2_000_000);
    assert_eq!(json["containers"]["cmaf"]["segments"], 0);
}
