//! The whole pipeline in memory on a simulated clock (the quinn-proto harness pattern): RTMP
//! bytes from a test publisher (RTMP §5.2–§7.2, written with `test_support::rtmp`) into the
//! sans-IO `rtmp_ingest::session::Session`, its events into [`crate::pipeline::App`] (publish
//! decision, registry, `PublishSink`), the remuxer, the `hls_edge::Store` and
//! `hls_edge::Edge::respond`, with no socket and no sleep: tokio's clock is paused and advanced
//! as media time goes by, so reconnect, grace period and takeover are tested across the crates
//! deterministically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtmp_ingest::session::{Session, SessionEvent};
use rtmp_ingest::{CloseReason, IngestHandler, MediaSink, PublishRequest};
use test_support::rtmp;
use tokio_util::sync::CancellationToken;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::pipeline::{edge_config, ingest_config, App, PublishSink};

/// The simulated now (tokio's paused clock, which the store reads too).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Advances the simulated clock and lets the store's janitor logic run at the new time.
async fn advance(app: &App, by: Duration) {
    tokio::time::advance(by).await;
    app.store.tick();
}

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

/// FLV video tag body: AVC sequence header (AVCDecoderConfigurationRecord, ISO/IEC 14496-15
/// §5.3.3.1) for a 640x360 High profile stream.
fn avc_sequence_header() -> Vec<u8> {
    let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1e, 0xFF, 0xE1];
    v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    v.extend_from_slice(SPS);
    v.extend_from_slice(&[1, 0, PPS.len() as u8]);
    v.extend_from_slice(PPS);
    v
}

/// FLV video tag body: one AVCC NAL unit (IDR or non-IDR slice) of `size` bytes.
fn avc_frame(key: bool, size: usize) -> Vec<u8> {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend_from_slice(&(size as u32).to_be_bytes());
    v.push(if key { 0x65 } else { 0x41 });
    v.extend((1..size).map(|i| (i as u8) | 1));
    v
}

/// A publisher: a session fed with the bytes a real encoder sends, and the sink the binary's
/// handler gave it.
struct Publisher {
    session: Session,
    sink: Option<PublishSink>,
    kick: CancellationToken,
    status: Option<String>,
    /// Reads the server's replies; the first [`rtmp::S0_S1_S2_BYTES`] bytes are the handshake.
    replies: rtmp::Reader,
    handshake_left: usize,
    /// Media time of the next video frame (30 fps, keyframe every 2 s).
    next_frame: u32,
    /// Where this publisher's timestamps start (an encoder restarts at 0 on reconnect).
    base_ms: u32,
}

impl Publisher {
    /// Handshake, connect, createStream, publish; the publish is decided by `app` exactly as
    /// the driver does it.
    async fn publish(app: &App, connection_id: u64, name: &str) -> Publisher {
        Self::publish_in(app, connection_id, "live", name).await
    }

    async fn publish_in(app: &App, connection_id: u64, app_name: &str, name: &str) -> Publisher {
        let cfg = Arc::new(ingest_config(&app.cfg));
        let mut p = Publisher {
            session: Session::new(connection_id, cfg, now()),
            sink: None,
            kick: CancellationToken::new(),
            status: None,
            replies: rtmp::Reader::new(),
            handshake_left: rtmp::S0_S1_S2_BYTES,
            next_frame: 0,
            base_ms: 0,
        };
        p.input(app, &rtmp::c0c1()).await;
        p.input(app, &rtmp::c2()).await;
        p.input(app, &rtmp::connect(app_name)).await;
        p.input(app, &rtmp::create_stream()).await;
        p.input(app, &rtmp::publish(name)).await;
        p
    }

    /// A connection that will be fed a recorded encoder's bytes (`rtmp-ingest/testdata`).
    fn recorded(app: &App, connection_id: u64) -> Publisher {
        Publisher {
            session: Session::new(connection_id, Arc::new(ingest_config(&app.cfg)), now()),
            sink: None,
            kick: CancellationToken::new(),
            status: None,
            replies: rtmp::Reader::new(),
            handshake_left: rtmp::S0_S1_S2_BYTES,
            next_frame: 0,
            base_ms: 0,
        }
    }

    /// Feeds bytes, then handles every event the way `rtmp_ingest::server` does.
    async fn input(&mut self, app: &App, bytes: &[u8]) {
        self.session
            .handle_input(now(), bytes)
            .expect("a well-formed publisher");
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::PublishRequested(info) => {
                    let req = PublishRequest {
                        connection_id: self.session.connection_id(),
                        peer: "127.0.0.1:50000".parse().unwrap(),
                        app: info.app,
                        stream: info.stream,
                        params: info.params,
                        tc_url: info.tc_url,
                        kick: self.kick.clone(),
                    };
                    match app.authorize(req).await {
                        Ok(sink) => {
                            self.session.accept_publish(now()).unwrap();
                            self.sink = Some(sink);
                        }
                        Err(refusal) => self.session.reject_publish(refusal).unwrap(),
                    }
                }
                SessionEvent::Tag(tag) => {
                    if let Some(s) = self.sink.as_mut() {
                        s.on_tag(tag);
                    }
                }
                // A publisher neither plays nor needs the driver to act on the rest.
                _ => {}
            }
        }
        while let Some(out) = self.session.poll_transmit() {
            let skip = self.handshake_left.min(out.len());
            self.handshake_left -= skip;
            for m in self.replies.push(&out[skip..]) {
                if let Some(code) = rtmp::status_code(&m) {
                    self.status = Some(code);
                }
            }
        }
    }

    fn accepted(&self) -> bool {
        self.status.as_deref() == Some("NetStream.Publish.Start") && self.sink.is_some()
    }

    /// `seconds` of 30 fps H.264 (keyframe every 2 s), advancing the clock with media time.
    async fn media(&mut self, app: &App, seconds: u32) {
        if self.next_frame == 0 {
            let header = rtmp::encode_message(6, 9, 1, self.base_ms, &avc_sequence_header(), 128);
            self.input(app, &header).await;
        }
        for _ in 0..seconds * 30 {
            let n = self.next_frame;
            self.next_frame += 1;
            let ts_ms = self.base_ms + n * 1000 / 30;
            let body = avc_frame(n.is_multiple_of(60), 1500);
            let msg = rtmp::encode_message(6, 9, 1, ts_ms, &body, 128);
            self.input(app, &msg).await;
            advance(app, Duration::from_millis(33)).await;
        }
    }

    /// The connection ends (the driver's `on_close`).
    fn close(mut self, reason: CloseReason) {
        if let Some(sink) = self.sink.take() {
            sink.on_close(self.session.publish_summary(now(), reason));
        }
    }
}

/// GET through the edge, as the HTTP workers call it.
async fn get(edge: &hls_edge::Edge, path: &str) -> (u16, String) {
    let req = axum::http::Request::get(path).body(()).unwrap();
    let resp = edge.respond(req).await;
    let status = resp.status().as_u16();
    let body: Bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn setup() -> (App, hls_edge::Edge) {
    let cfg = Arc::new(Config::default());
    let store = hls_edge::Store::new(
        edge_config(&cfg),
        Arc::new(hls_edge::TokioClock::new(std::time::SystemTime::UNIX_EPOCH)),
    );
    let app = App::new(
        cfg.clone(),
        store.clone(),
        Authorizer::new(&cfg.auth).unwrap(),
    );
    (app, hls_edge::Edge::new(store))
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no media sequence in:\n{playlist}"))
}

fn segments(playlist: &str) -> usize {
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count()
}

const PLAYLIST: &str = "/live/sim/index.m3u8";

/// An encoder that drops and reconnects within the grace period continues the same playlist:
/// no ENDLIST in between, a discontinuity at the seam, media sequence numbers only grow, and
/// every listed segment is served.
#[tokio::test(start_paused = true)]
async fn reconnect_within_grace_continues_the_playlist() {
    let (app, edge) = setup();
    let mut a = Publisher::publish(&app, 1, "sim").await;
    assert!(a.accepted(), "status {:?}", a.status);
    a.media(&app, 7).await;
    let (status, before) = get(&edge, PLAYLIST).await;
    assert_eq!(status, 200, "{before}");
    assert!(segments(&before) >= 3, "{before}");
    a.close(CloseReason::Disconnected);

    advance(&app, Duration::from_secs(5)).await;
    let (_, in_grace) = get(&edge, PLAYLIST).await;
    assert!(!in_grace.contains("#EXT-X-ENDLIST"), "{in_grace}");

    let mut b = Publisher::publish(&app, 2, "sim").await;
    assert!(b.accepted(), "the name was released: {:?}", b.status);
    b.media(&app, 7).await;
    let (_, after) = get(&edge, PLAYLIST).await;
    assert!(after.contains("#EXT-X-DISCONTINUITY"), "{after}");
    assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
    assert!(media_sequence(&after) >= media_sequence(&before));
    for uri in after
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (status, _) = get(&edge, &format!("/live/sim/{uri}")).await;
        assert_eq!(status, 200, "{uri} listed but not served");
    }
    b.close(CloseReason::Unpublished);
}

/// After the grace period the playlist ends (`#EXT-X-ENDLIST`) and the name is free.
#[tokio::test(start_paused = true)]
async fn grace_expiry_ends_the_playlist() {
    let (app, edge) = setup();
    let mut a = Publisher::publish(&app, 1, "sim").await;
    a.media(&app, 5).await;
    a.close(CloseReason::Disconnected);
    let (_, live) = get(&edge, PLAYLIST).await;
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");
    advance(
        &app,
        edge_config(&app.cfg).grace_period + Duration::from_secs(1),
    )
    .await;
    let (status, ended) = get(&edge, PLAYLIST).await;
    assert_eq!(status, 200);
    assert!(ended.contains("#EXT-X-ENDLIST"), "{ended}");
    assert!(!app.kick("live", "sim"));
}

/// The HTTP port routes `/api/...` and `/recordings/...` to the operator API and the recordings,
/// so a stream under an app of those names could never be played: its publish is refused.
#[tokio::test(start_paused = true)]
async fn apps_named_like_http_routes_are_refused() {
    let (app, _edge) = setup();
    for reserved in ["api", "recordings"] {
        let p = Publisher::publish_in(&app, 1, reserved, "sim").await;
        assert_eq!(
            p.status.as_deref(),
            Some("NetStream.Publish.BadName"),
            "{reserved}"
        );
        assert!(p.sink.is_none());
        p.close(CloseReason::Disconnected);
    }
    let ok = Publisher::publish_in(&app, 2, "apis", "sim").await;
    assert!(ok.accepted(), "{:?}", ok.status);
    ok.close(CloseReason::Disconnected);
}

/// A second publisher of a live name is refused and changes nothing; once the first is kicked
/// (API), a new publisher takes the name over and the playlist goes on with a discontinuity.
#[tokio::test(start_paused = true)]
async fn takeover_after_a_kick() {
    let (app, edge) = setup();
    let mut a = Publisher::publish(&app, 1, "sim").await;
    a.media(&app, 5).await;

    let intruder = Publisher::publish(&app, 2, "sim").await;
    assert_eq!(
        intruder.status.as_deref(),
        Some("NetStream.Publish.BadName")
    );
    assert!(intruder.sink.is_none());
    intruder.close(CloseReason::Disconnected);

    assert!(app.kick("live", "sim"));
    assert!(a.kick.is_cancelled(), "the kick reaches the connection");
    a.close(CloseReason::Kicked);

    let mut b = Publisher::publish(&app, 3, "sim").await;
    assert!(b.accepted(), "{:?}", b.status);
    b.media(&app, 5).await;
    let (_, pl) = get(&edge, PLAYLIST).await;
    assert!(pl.contains("#EXT-X-DISCONTINUITY"), "{pl}");
    assert!(app.kick("live", "sim"), "the new publisher is registered");
    b.close(CloseReason::Kicked);
}

/// What real encoders sent (`crates/rtmp-ingest/testdata`, see its README) through the whole
/// pipeline: byte by byte until `NetStream.Publish.Start` (a recording has no read boundaries,
/// and an encoder waits for it), then in 4 KiB reads with the clock advancing. FFmpeg 5.1's
/// H.264/AAC is written as MPEG-TS, FFmpeg 9's HEVC/Opus as CMAF; both play out their two seconds.
#[tokio::test(start_paused = true)]
async fn recorded_encoders_play_through_the_pipeline() {
    for (file, name, ts) in [
        ("ffmpeg-5.1-h264-aac.rtmp", "ffmpeg", true),
        ("ffmpeg-9-hevc-opus-enhanced.rtmp", "ffmpeg9", false),
    ] {
        let path = format!(
            "{}/../rtmp-ingest/testdata/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (app, edge) = setup();
        let mut p = Publisher::recorded(&app, 1);
        let mut at = 0;
        while !p.accepted() && at < bytes.len() {
            p.input(&app, &bytes[at..at + 1]).await;
            at += 1;
        }
        assert!(p.accepted(), "{file}: status {:?}", p.status);
        for piece in bytes[at..].chunks(4096) {
            p.input(&app, piece).await;
            advance(&app, Duration::from_millis(100)).await;
        }
        p.close(CloseReason::Unpublished);
        let (status, playlist) = get(&edge, &format!("/live/{name}/index.m3u8")).await;
        assert_eq!(status, 200, "{file}: {playlist}");
        assert_eq!(playlist.contains("#EXT-X-MAP"), !ts, "{file}: {playlist}");
        let seconds: f64 = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|v| v.split(',').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!(
            (1.9..=2.1).contains(&seconds),
            "{file}: {seconds} s in\n{playlist}"
        );
        for uri in playlist
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (status, _) = get(&edge, &format!("/live/{name}/{uri}")).await;
            assert_eq!(status, 200, "{file}: {uri} listed but not served");
        }
        if !ts {
            let (status, _) = get(&edge, &format!("/live/{name}/init-0.mp4")).await;
            assert_eq!(status, 200, "{file}: init segment");
        }
    }
}
