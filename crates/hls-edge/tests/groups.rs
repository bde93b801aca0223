//! Groups of renditions: golden multivariant playlists (RFC 8216bis §4.4.6.2) for scripted
//! groups on a simulated clock: join, leave, reconnect within the grace period, a codec mix,
//! a multitrack group, alignment reports and the LL-HLS sibling list.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hls_edge::{
    AudioCodec, AudioInfo, Container, EdgeConfig, GroupKind, RenditionReport, StreamInfo,
    VideoCodec, VideoInfo,
};

const INIT: &[u8] = b"ftyp-moov";

fn cfg() -> EdgeConfig {
    EdgeConfig {
        variant_suffixes: vec!["_hi".into(), "_mid".into(), "_lo".into()],
        grace_period: Duration::from_secs(10),
        ended_retention: Duration::from_secs(30),
        ..EdgeConfig::default()
    }
}

fn h264(width: u32, height: u32, codecs: &str) -> StreamInfo {
    StreamInfo {
        codecs: Some(codecs.into()),
        video: Some(VideoInfo {
            codec: VideoCodec::H264,
            width,
            height,
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

/// Publishes `stream` with TS and CMAF and pushes `n` 2 s segments of `bytes` each (bitrate =
/// bytes x 4 bit/s).
fn publish(
    s: &TestStore,
    stream: &str,
    info: StreamInfo,
    bytes: usize,
    n: u64,
    t0: Instant,
) -> TestHandle {
    let h = s.publish("live", stream, 2);
    h.set_media(Some(info.clone()), Some(info));
    for i in 0..n {
        let at = t0 + Duration::from_secs(2 * i);
        let arrival = T0_UNIX_MS + 2000 * i;
        h.push_at(segment(1, bytes, 180_000, arrival), at);
        h.push_at(cmaf_segment(1, bytes, 180_000, arrival, INIT), at);
    }
    h
}

async fn text(s: &TestStore, uri: &str) -> (u16, String) {
    let r = get(&hls_edge::router(s.store.clone()), uri).await;
    (r.status.as_u16(), r.text().to_string())
}

const LADDER: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000
../cam_mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=6000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000
../cam_hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
../cam_lo/index.m3u8
";

#[tokio::test]
async fn join_leave_and_reconnect() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    assert_eq!(text(&s, "/live/cam/index.m3u8").await.0, 404);
    let hi = publish(
        &s,
        "cam_hi",
        h264(1920, 1080, "avc1.640028,mp4a.40.2"),
        1_500_000,
        3,
        t0,
    );
    // One member: a multivariant playlist of one.
    let (status, one) = text(&s, "/live/cam/index.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(
        one.lines()
            .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
            .count(),
        1
    );
    let mid = publish(
        &s,
        "cam_mid",
        h264(1280, 720, "avc1.64001f,mp4a.40.2"),
        750_000,
        3,
        t0,
    );
    let lo = publish(
        &s,
        "cam_lo",
        h264(640, 360, "avc1.64001e,mp4a.40.2"),
        200_000,
        3,
        t0,
    );
    assert_eq!(text(&s, "/live/cam/index.m3u8").await, (200, LADDER.into()));
    // The renditions keep their own media playlists.
    let (status, media) = text(&s, "/live/cam_lo/index.m3u8").await;
    assert_eq!(status, 200);
    assert!(media.contains("#EXTINF:2.000,\nseg-0.ts\n"), "{media}");
    // CMAF: the members' cmaf.m3u8.
    let (status, cmaf) = text(&s, "/live/cam/cmaf.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(
        cmaf,
        LADDER
            .replace("VERSION:3", "VERSION:6")
            .replace("index.m3u8", "cmaf.m3u8")
    );

    // Leave: the lowest rendition's publisher goes; within the grace period it stays listed...
    let t1 = t0 + Duration::from_secs(6);
    lo.end_at(t1);
    s.tick_at(t1 + Duration::from_secs(5));
    assert_eq!(text(&s, "/live/cam/index.m3u8").await.1, LADDER);
    // ...and a reconnect within it keeps it there, same playlist.
    let lo2 = s.publish("live", "cam_lo", 2);
    s.tick_at(t1 + Duration::from_secs(6));
    assert_eq!(text(&s, "/live/cam/index.m3u8").await.1, LADDER);
    lo2.end_at(t1 + Duration::from_secs(7));
    // After the grace period it leaves (the others are live).
    s.tick_at(t1 + Duration::from_secs(18));
    let after = text(&s, "/live/cam/index.m3u8").await.1;
    assert_eq!(
        after,
        "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000
../cam_mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=6000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000
../cam_hi/index.m3u8
"
    );
    let g = s.group("live", "cam").unwrap();
    assert_eq!(g.kind, GroupKind::Suffix);
    let listed: Vec<_> = g
        .renditions
        .iter()
        .filter(|r| r.listed)
        .map(|r| r.stream.as_str())
        .collect();
    assert_eq!(listed, ["cam_hi", "cam_mid"]);
    // Everyone gone: the ended members stay listed (players see ENDLIST) until removal.
    let t2 = t1 + Duration::from_secs(20);
    hi.end_at(t2);
    mid.end_at(t2);
    s.tick_at(t2 + Duration::from_secs(11));
    let (status, ended) = text(&s, "/live/cam/index.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(ended.matches("#EXT-X-STREAM-INF").count(), 3, "{ended}");
    s.tick_at(t2 + Duration::from_secs(45));
    assert_eq!(text(&s, "/live/cam/index.m3u8").await.0, 404);
    assert!(s.groups().is_empty());
}

#[tokio::test]
async fn the_multivariant_playlist_is_cacheable_like_a_media_playlist() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    let _hi = publish(
        &s,
        "cam_hi",
        h264(1920, 1080, "avc1.640028"),
        1_500_000,
        2,
        t0,
    );
    let router = hls_edge::router(s.store.clone());
    let r = get(&router, "/live/cam/index.m3u8").await;
    assert_eq!(r.header("content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(r.header("cache-control"), "public, max-age=1");
    let etag = r.header("etag").to_string();
    assert!(etag.starts_with("\"p"), "{etag}");
    let again = request(
        &router,
        "GET",
        "/live/cam/index.m3u8",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status.as_u16(), 304);
    let gz = request(
        &router,
        "GET",
        "/live/cam/index.m3u8",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    // An unchanged bandwidth (same rounded value) does not re-render.
    let h = s.publish("live", "cam_hi", 2);
    h.push_at(
        segment(1, 1_500_000, 180_000, T0_UNIX_MS + 9000),
        t0 + Duration::from_secs(9),
    );
    let r2 = get(&router, "/live/cam/index.m3u8").await;
    assert_eq!(r2.header("etag"), etag);
}

#[tokio::test]
async fn codec_mix_lists_each_members_primary_container() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    let _hi = {
        // HEVC: CMAF only.
        let h = s.publish("live", "cam_hi", 2);
        let info = StreamInfo {
            codecs: Some("hvc1.1.6.L120.B0,mp4a.40.2".into()),
            video: Some(VideoInfo {
                codec: VideoCodec::Hevc,
                width: 1920,
                height: 1080,
                frame_rate: Some(59.94),
            }),
            audio: None,
        };
        h.set_media(None, Some(info));
        h.push_at(cmaf_segment(1, 2_000_000, 180_000, T0_UNIX_MS, INIT), t0);
        h
    };
    let _lo = publish(
        &s,
        "cam_lo",
        h264(640, 360, "avc1.64001e,mp4a.40.2"),
        200_000,
        1,
        t0,
    );
    let want = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
../cam_lo/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=8000000,AVERAGE-BANDWIDTH=8000000,CODECS=\"hvc1.1.6.L120.B0,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=59.940
../cam_hi/index.m3u8
";
    assert_eq!(text(&s, "/live/cam/index.m3u8").await.1, want);
    let cmaf = text(&s, "/live/cam/cmaf.m3u8").await.1;
    assert_eq!(
        cmaf,
        want.replace("VERSION:3", "VERSION:6")
            .replace("index.m3u8", "cmaf.m3u8")
    );
}

#[tokio::test]
async fn multitrack_renditions_shadow_the_publish_name() {
    let t0 = Instant::now();
    let s = store_at(EdgeConfig::default(), t0);
    // The publish itself (its default track's playlist before the tracks were known).
    let _main = publish(&s, "cam", h264(1280, 720, "avc1.64001f"), 100, 1, t0);
    assert!(text(&s, "/live/cam/index.m3u8")
        .await
        .1
        .contains("seg-0.ts"));
    let _v0 = publish(
        &s,
        "cam~v0",
        h264(1280, 720, "avc1.64001f,mp4a.40.2"),
        750_000,
        2,
        t0,
    );
    let _v1 = publish(
        &s,
        "cam~v1",
        h264(640, 360, "avc1.64001e,mp4a.40.2"),
        200_000,
        2,
        t0,
    );
    let (status, mv) = text(&s, "/live/cam/index.m3u8").await;
    assert_eq!(status, 200);
    assert_eq!(
        mv,
        "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
../cam~v1/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000
../cam~v0/index.m3u8
"
    );
    assert_eq!(text(&s, "/live/cam~v1/index.m3u8").await.0, 200);
    assert_eq!(text(&s, "/live/cam~v1/seg-0.ts").await.0, 200);
    assert_eq!(s.group("live", "cam").unwrap().kind, GroupKind::Multitrack);
}

#[tokio::test]
async fn misaligned_renditions_are_counted_and_siblings_reported() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    let hi = publish(
        &s,
        "cam_hi",
        h264(1920, 1080, "avc1.640028"),
        1_500_000,
        3,
        t0,
    );
    let lo = publish(&s, "cam_lo", h264(640, 360, "avc1.64001e"), 200_000, 3, t0);
    for n in 0..3u64 {
        hi.h.report_segment_start(Container::Ts, n, 63_000 + n * 180_000);
        // Within one frame (3000 at 30 fps): aligned; segment 2 starts 100 ms late.
        let late = if n == 2 { 9_000 } else { 2_970 };
        lo.h.report_segment_start(Container::Ts, n, 63_000 + n * 180_000 + late);
    }
    let g = s.group("live", "cam").unwrap();
    let lo_sum = g.renditions.iter().find(|r| r.stream == "cam_lo").unwrap();
    assert_eq!(
        (lo_sum.segments_compared, lo_sum.segments_misaligned),
        (3, 1)
    );
    let hi_sum = g.renditions.iter().find(|r| r.stream == "cam_hi").unwrap();
    assert_eq!(
        (hi_sum.segments_compared, hi_sum.segments_misaligned),
        (0, 0)
    );
    assert_eq!(hi_sum.position, Some(1));
    assert_eq!(
        s.rendition_reports("live", "cam_hi", Container::Cmaf),
        [RenditionReport {
            uri: "../cam_lo/cmaf.m3u8".into(),
            last_msn: 2
        }]
    );
    assert!(s
        .rendition_reports("live", "other", Container::Ts)
        .is_empty());
}

/// Golden multivariant playlist with I-frame streams (RFC 8216bis §4.4.6.3) and the I-frame
/// playlist it names. Why it is right: each member's `EXT-X-I-FRAME-STREAM-INF` comes after the
/// `EXT-X-STREAM-INF` lines in the same order; BANDWIDTH is the peak of keyframe bytes x 8 over
/// the entry's duration (45_000 B over 2 s = 180_000 bit/s, rounded up to two digits as the
/// variant bandwidths are), CODECS names the video codec only (an I-frame stream has no
/// audio), RESOLUTION the member's; the URI is the member's `iframes.m3u8` (`cmaf-iframes.m3u8`
/// in `cmaf.m3u8`). A member without keyframe ranges (audio-only, say) has no such line.
#[tokio::test]
async fn iframe_streams_are_listed_and_served() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    let mut handles = Vec::new();
    for (stream, w, h, codecs, bytes, key) in [
        (
            "cam_hi",
            1920,
            1080,
            "avc1.640028,mp4a.40.2",
            1_500_000,
            90_000,
        ),
        ("cam_lo", 640, 360, "avc1.64001e,mp4a.40.2", 200_000, 22_500),
    ] {
        let info = h264(w, h, codecs);
        let hd = s.publish("live", stream, 2);
        hd.set_media(Some(info.clone()), Some(info));
        for i in 0..2u64 {
            let arrival = T0_UNIX_MS + 2000 * i;
            let at = t0 + Duration::from_secs(2 * i);
            let range = hls_edge::ByteRange {
                offset: 0,
                len: key,
            };
            let ts = hls_edge::NewSegment {
                keyframe: Some(range),
                ..segment(1, bytes, 180_000, arrival)
            };
            hd.push_at(ts, at);
            let cm = hls_edge::NewSegment {
                keyframe: Some(hls_edge::ByteRange {
                    offset: 20,
                    ..range
                }),
                ..cmaf_segment(1, bytes, 180_000, arrival, INIT)
            };
            hd.push_at(cm, at);
        }
        handles.push(hd);
    }
    assert_eq!(
        text(&s, "/live/cam/index.m3u8").await,
        (
            200,
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
../cam_lo/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=6000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30.000
../cam_hi/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,AVERAGE-BANDWIDTH=90000,CODECS=\"avc1.64001e\",RESOLUTION=640x360,URI=\"../cam_lo/iframes.m3u8\"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=360000,AVERAGE-BANDWIDTH=360000,CODECS=\"avc1.640028\",RESOLUTION=1920x1080,URI=\"../cam_hi/iframes.m3u8\"
"
            .into()
        )
    );
    let (status, cmaf) = text(&s, "/live/cam/cmaf.m3u8").await;
    assert_eq!(status, 200);
    assert!(
        cmaf.contains(",URI=\"../cam_hi/cmaf-iframes.m3u8\"\n"),
        "{cmaf}"
    );
    assert_eq!(
        text(&s, "/live/cam_hi/iframes.m3u8").await,
        (
            200,
            "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-I-FRAMES-ONLY
#EXTINF:2.000,
#EXT-X-BYTERANGE:90000@0
seg-0.ts
#EXTINF:2.000,
#EXT-X-BYTERANGE:90000@0
seg-1.ts
"
            .into()
        )
    );
    let (status, cm) = text(&s, "/live/cam_lo/cmaf-iframes.m3u8").await;
    assert_eq!(status, 200);
    assert!(cm.contains("#EXT-X-MAP:URI=\"init-"), "{cm}");
    assert!(
        cm.contains("#EXT-X-BYTERANGE:22500@20\nseg-1.m4s\n"),
        "{cm}"
    );
    // A stream whose producer reports no keyframe ranges has no I-frame playlist.
    let plain = s.publish("live", "plain", 2);
    plain.push_at(segment(1, 1000, 180_000, T0_UNIX_MS), t0);
    assert_eq!(text(&s, "/live/plain/index.m3u8").await.0, 200);
    assert_eq!(text(&s, "/live/plain/iframes.m3u8").await.0, 404);
}

fn video_only(width: u32, height: u32, codecs: &str) -> StreamInfo {
    StreamInfo {
        audio: None,
        ..h264(width, height, codecs)
    }
}

fn audio_only(codec: AudioCodec, codecs: &str, channels: u8, lang: Option<&str>) -> StreamInfo {
    StreamInfo {
        codecs: Some(codecs.into()),
        video: None,
        audio: Some(AudioInfo {
            codec,
            sample_rate_hz: 48_000,
            channels,
            language: lang.map(str::to_string),
            name: lang.map(|l| format!("Commentary ({l})")),
        }),
    }
}

/// Golden multivariant playlists of a multitrack publish with audio tracks (RFC 8216bis
/// §4.4.6.1-2). Why they are right: the audio renditions `NAME~aK` are `EXT-X-MEDIA:TYPE=AUDIO`
/// entries of one group, lowest track first and `DEFAULT=YES` (with `AUTOSELECT=YES`, which
/// DEFAULT=YES requires), NAME and LANGUAGE from the track metadata when present (else "Audio
/// K"), CHANNELS the channel count; the video renditions are the variants, each with
/// `AUDIO="audio"`, CODECS listing its video codec plus every codec of the audio group (§4.4.6.2:
/// every codec a variant needs, including its renditions'), BANDWIDTH its own peak plus the
/// largest audio rendition's (48_000 B per 2 s = 192 kbit/s, shown rounded up to two digits as
/// every group bandwidth is: 200 kbit/s).
#[tokio::test]
async fn multitrack_audio_group_golden() {
    let t0 = Instant::now();
    let s = store_at(cfg(), t0);
    let _v0 = publish(
        &s,
        "mt~v0",
        video_only(1280, 720, "avc1.64001f"),
        750_000,
        3,
        t0,
    );
    let _v1 = publish(
        &s,
        "mt~v1",
        video_only(640, 360, "avc1.64001e"),
        200_000,
        3,
        t0,
    );
    let _a0 = publish(
        &s,
        "mt~a0",
        audio_only(AudioCodec::Aac, "mp4a.40.2", 2, Some("en")),
        48_000,
        3,
        t0,
    );
    assert_eq!(
        text(&s, "/live/mt/index.m3u8").await,
        (
            200,
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Commentary (en)\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"../mt~a0/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=1000000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"audio\"
../mt~v1/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=3200000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"
../mt~v0/index.m3u8
"
            .into()
        )
    );
    // A second audio track, without metadata: "Audio 1", not default; a codec mix (Opus) adds
    // its codec to every variant's CODECS.
    let _a1 = publish(
        &s,
        "mt~a1",
        audio_only(AudioCodec::Opus, "opus", 1, None),
        24_000,
        3,
        t0,
    );
    assert_eq!(
        text(&s, "/live/mt/cmaf.m3u8").await,
        (
            200,
            "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Commentary (en)\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"../mt~a0/cmaf.m3u8\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio 1\",DEFAULT=NO,AUTOSELECT=YES,CHANNELS=\"1\",URI=\"../mt~a1/cmaf.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=1000000,CODECS=\"avc1.64001e,mp4a.40.2,opus\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"audio\"
../mt~v1/cmaf.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=3200000,CODECS=\"avc1.64001f,mp4a.40.2,opus\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"
../mt~v0/cmaf.m3u8
"
            .into()
        )
    );
    // The audio renditions keep their own media playlists; the API lists them as members.
    assert_eq!(text(&s, "/live/mt~a1/index.m3u8").await.0, 200);
    let g = s.store.group("live", "mt").unwrap();
    assert_eq!(g.kind, GroupKind::Multitrack);
    assert_eq!(g.renditions.len(), 4);
}
