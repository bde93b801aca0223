//! Tests of `renditions`: an Enhanced RTMP v2 multitrack publish ("Multitrack", OneTrack
//! packets) as renditions `NAME~vK`, with LL-HLS parts (RFC 8216bis §4.4.4.9, §4.4.5.3,
//! §4.4.5.4, §6.2.5.2) and the `hls.max_renditions_per_group` cap, on a simulated clock.

use std::sync::Arc;

use bytes::Bytes;
use remux::{FlvTag, TagKind};

use super::Multitrack;
use crate::config::Config;
use crate::pipeline::{edge_config, remux_config};

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

/// E-RTMP v2 video tag, multitrack OneTrack avc1 for `track`: `0x80 | frame type << 4 | 6`
/// (ExVideoHeader, packet type Multitrack), then the track's packet type, FourCC, track id.
fn tag(track: u8, key: bool, packet_type: u8, body: &[u8], timestamp_ms: u32) -> FlvTag {
    let frame_type = if key { 1 } else { 2 };
    let mut v = vec![0x80 | (frame_type << 4) | 6, packet_type];
    v.extend_from_slice(b"avc1");
    v.push(track);
    v.extend_from_slice(body);
    FlvTag {
        kind: TagKind::Video,
        timestamp_ms,
        payload: Bytes::from(v),
    }
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), 640x360 High profile.
fn sequence_start(track: u8) -> FlvTag {
    let mut v = vec![1, 0x64, 0x00, 0x1e, 0xFF, 0xE1];
    v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    v.extend_from_slice(SPS);
    v.extend_from_slice(&[1, 0, PPS.len() as u8]);
    v.extend_from_slice(PPS);
    tag(track, true, 0, &v, 0)
}

/// CodedFrames: SI24 composition time 0, one length-prefixed IDR or non-IDR slice.
fn frame(track: u8, key: bool, timestamp_ms: u32) -> FlvTag {
    let size = if key { 3000 } else { 600 };
    let mut v = vec![0, 0, 0];
    v.extend_from_slice(&(size as u32).to_be_bytes());
    v.push(if key { 0x65 } else { 0x41 });
    v.extend((1..size).map(|i| (i as u8) | 1));
    tag(track, key, 1, &v, timestamp_ms)
}

struct Run {
    mt: Multitrack,
    edge: hls_edge::Edge,
    tracks: u8,
    next_frame: u32,
}

impl Run {
    fn new(tracks: u8, max_renditions: usize) -> Run {
        let cfg = Config::default();
        let store = hls_edge::Store::new(
            edge_config(&cfg),
            Arc::new(hls_edge::TokioClock::new(std::time::SystemTime::UNIX_EPOCH)),
        );
        let params = hls_edge::PublishParams {
            target_duration_s: 2,
            part_target_ms: cfg.hls.part_target_ms,
        };
        let mut mt = Multitrack::new(
            &store,
            "live",
            "mt",
            params,
            remux_config(&cfg, Some(2)),
            max_renditions,
        );
        for t in 0..tracks {
            mt.push(&sequence_start(t), 0);
        }
        Run {
            mt,
            edge: hls_edge::Edge::new(store),
            tracks,
            next_frame: 0,
        }
    }

    /// `n` frames at 30 fps on every track, a keyframe every 2 s (the encoder aligned them).
    async fn frames(&mut self, n: u32) {
        for _ in 0..n {
            let i = self.next_frame;
            let ts = i * 1000 / 30;
            for t in 0..self.tracks {
                self.mt
                    .push(&frame(t, i.is_multiple_of(60), ts), 1_000 + u64::from(ts));
            }
            self.next_frame += 1;
            tokio::time::advance(std::time::Duration::from_millis(33)).await;
        }
    }
}

async fn get(edge: &hls_edge::Edge, path: &str) -> (u16, String) {
    let req = axum::http::Request::get(path).body(()).unwrap();
    let resp = edge.respond(req).await;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(start_paused = true)]
async fn multitrack_renditions_are_low_latency_with_aligned_parts() {
    let mut run = Run::new(2, 8);
    run.frames(200).await;
    let (status, v0) = get(&run.edge, "/live/mt~v0/cmaf.m3u8").await;
    assert_eq!(status, 200, "{v0}");
    let (_, v1) = get(&run.edge, "/live/mt~v1/cmaf.m3u8").await;
    for (pl, sibling) in [(&v0, "mt~v1"), (&v1, "mt~v0")] {
        assert!(pl.contains("#EXT-X-PART-INF:PART-TARGET="), "{pl}");
        assert!(pl.contains("#EXT-X-PART:DURATION="), "{pl}");
        assert!(pl.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{pl}");
        let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{sibling}/cmaf.m3u8\"");
        assert!(pl.contains(&report), "{pl}");
    }
    // Same media, same cut: the two renditions list the same parts.
    let parts = |pl: &str| -> Vec<String> {
        pl.lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(parts(&v0), parts(&v1));

    // A blocking reload for the hinted part is held until the part exists, then answered.
    let hint = v0
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-"))
        .unwrap()
        .trim_end_matches(".m4s\"")
        .to_string();
    let (msn, part) = hint.split_once('.').unwrap();
    let path = format!("/live/mt~v0/cmaf.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let edge = run.edge.clone();
    let waiting = tokio::spawn(async move { get(&edge, &path).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "answered before the part existed");
    run.frames(15).await;
    let (status, pl) = waiting.await.unwrap();
    assert_eq!(status, 200, "{pl}");
    assert!(
        pl.contains(&format!("URI=\"part-{msn}.{part}.m4s\"")),
        "{pl}"
    );
}

#[tokio::test(start_paused = true)]
async fn video_tracks_beyond_max_renditions_per_group_are_ignored() {
    let mut run = Run::new(3, 2);
    run.frames(150).await;
    for (n, listed) in [("mt~v0", true), ("mt~v1", true), ("mt~v2", false)] {
        let (status, pl) = get(&run.edge, &format!("/live/{n}/index.m3u8")).await;
        assert_eq!(status == 200, listed, "{n}: {status} {pl}");
    }
    run.mt.finish();
}
