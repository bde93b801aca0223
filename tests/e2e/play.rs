//! RTMP playback from Sluice with real players: ffmpeg/ffprobe (libavformat), rtmpdump
//! (librtmp), GStreamer `rtmp2src` and `rtmpsrc`, an ffmpeg relay, a late joiner's first tags,
//! a clean end on unpublish, an unknown stream, and a reader that stops reading.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::rtmp::{self, Amf};

use crate::support::*;

/// Waits until `app/stream` is live (its HLS playlist lists a segment).
fn wait_live(s: &Sluice, app_stream: &str) {
    s.wait_for_segments(
        &format!("/{app_stream}/index.m3u8"),
        1,
        Duration::from_secs(30),
    );
}

/// Runs `cmd` with a hang guard; returns (status code, stderr).
fn run(cmd: &mut Command, guard: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + guard;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), text)
}

/// Decoded video frames in an input, by ffprobe.
fn ffprobe_frames(input: &str, extra: &[&str]) -> u64 {
    let (_, out) = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "10000000"])
            .args(extra)
            .args(["-select_streams", "v:0", "-count_frames"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(input),
        Duration::from_secs(40),
    );
    out.lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .next()
        .unwrap_or(0)
}

/// The (type, first two body bytes) of each tag of an FLV file.
fn flv_tags(path: &std::path::Path) -> Vec<(u8, u8, u8)> {
    let b = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if b.len() < 13 || &b[..3] != b"FLV" {
        return out;
    }
    let mut at = 13;
    while at + 11 <= b.len() {
        let kind = b[at];
        let size = u32::from_be_bytes([0, b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let body = at + 11;
        if body + size > b.len() {
            break;
        }
        let b0 = b.get(body).copied().unwrap_or(0);
        let b1 = b.get(body + 1).copied().unwrap_or(0);
        out.push((kind, b0, b1));
        at = body + size + 4;
    }
    out
}

/// Frames GStreamer decodes in 8 s from a source element and its location property.
fn gst_frames(element: &str, location: &str) -> usize {
    let (_, out) = run(
        Command::new("timeout")
            .args([
                "-k",
                "4",
                "-s",
                "INT",
                "8",
                "gst-launch-1.0",
                "-e",
                "-v",
                element,
            ])
            .arg(format!("location={location}"))
            .args([
                "!",
                "flvdemux",
                "name=d",
                "d.video",
                "!",
                "queue",
                "!",
                "h264parse",
                "!",
                "avdec_h264",
                "!",
                "fakesink",
                "silent=false",
            ]),
        Duration::from_secs(30),
    );
    out.matches("last-message = chain").count()
}

/// libavformat, librtmp and both GStreamer sources play a live stream; a late joiner's first
/// video tags are the AVC sequence header and a keyframe; an ffmpeg relay republishes it.
#[test]
fn rtmp_play_with_real_players_and_a_relay() {
    if !require("ffmpeg") || !require("ffprobe") || !require("rtmpdump") {
        return;
    }
    let s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp("live/p"), 180, &[]);
    wait_live(&s, "live/p");
    let url = s.rtmp("live/p");

    // ffprobe (libavformat, start = -2000): frames decoded.
    let n = ffprobe_frames(&url, &["-read_intervals", "%+4"]);
    assert!(n > 30, "ffprobe decoded {n} frames\n{}", s.log_text());

    // ffmpeg -xerror: exit 0 after 4 s of decoding, live mode (start = -1000, FCSubscribe).
    let (code, err) = run(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-v",
                "error",
                "-xerror",
                "-rw_timeout",
                "10000000",
            ])
            .args(["-rtmp_live", "live", "-i", &url])
            .args(["-t", "4", "-map", "0:v:0", "-f", "null", "-"]),
        Duration::from_secs(40),
    );
    assert_eq!(code, Some(0), "ffmpeg play failed: {err}");

    // rtmpdump -v (librtmp, live, start = -1000): a late joiner starts at a keyframe.
    let flv = std::env::temp_dir().join(format!("sluice-play-{}.flv", s.rtmp_port));
    let (code, err) = run(
        Command::new("rtmpdump")
            .args(["-r", &url, "-v", "-B", "4", "-m", "10", "-o"])
            .arg(&flv),
        Duration::from_secs(30),
    );
    assert!(matches!(code, Some(0 | 2)), "rtmpdump exit {code:?}: {err}");
    let video: Vec<(u8, u8)> = flv_tags(&flv)
        .into_iter()
        .filter(|t| t.0 == 9)
        .map(|t| (t.1, t.2))
        .take(2)
        .collect();
    assert_eq!(
        video,
        [(0x17, 0x00), (0x17, 0x01)],
        "first video tags: AVC sequence header, then a keyframe"
    );
    let n = ffprobe_frames(flv.to_str().unwrap(), &[]);
    assert!(n > 30, "rtmpdump's file has {n} frames");
    let _ = std::fs::remove_file(&flv);

    // Relay: pull with -c copy and publish the copy to another name; it becomes an HLS stream.
    let _relay = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i", &url])
            .args(["-t", "12", "-c", "copy", "-f", "flv"])
            .arg(s.rtmp("live/relay"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg relay"),
    );
    s.wait_for_segments("/live/relay/index.m3u8", 2, Duration::from_secs(30));
    assert_eq!(
        probe_codecs(s.http("/live/relay/index.m3u8")),
        vec!["aac", "h264"]
    );
    // GStreamer rtmp2src (play(name, -2), needs a non-zero stream id) and librtmp rtmpsrc.
    if require("gst-launch-1.0") {
        let n = gst_frames("rtmp2src", &url);
        assert!(n > 10, "rtmp2src decoded {n} frames");
        let n = gst_frames("rtmpsrc", &format!("{url} live=1"));
        assert!(n > 10, "rtmpsrc decoded {n} frames");
    }

    let api = s.get("/metrics").text();
    assert!(metric(&api, "sluice_plays_total", &[]) >= 5.0, "{api}");
}

/// When the publisher stops, a playing ffmpeg gets Play.UnpublishNotify and exits 0 by itself;
/// an unknown stream gets Play.StreamNotFound and the player exits with an error at once.
#[test]
fn rtmp_player_ends_on_unpublish_and_unknown_stream_is_not_found() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&["--set", "play.unpublish_grace_ms=60000"]);
    let mut publisher = ffmpeg_publish(&s.rtmp("live/short"), 8, &[]);
    wait_live(&s, "live/short");
    let mut player = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &s.rtmp("live/short")])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg player");
    // The publisher's own end is the event; the player must end by itself after it (the
    // grace period is 60 s, so only UnpublishNotify can end it). The bound only guards a hang.
    let status = publisher.0.wait().unwrap();
    assert!(status.success(), "publisher failed");
    let deadline = Instant::now() + Duration::from_secs(15);
    let player_status = loop {
        if let Some(st) = player.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = player.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = player.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = player_status.unwrap_or_else(|| panic!("player did not exit after unpublish: {err}"));
    assert!(st.success(), "player exit {st:?}: {err}");

    let (code, err) = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i", &s.rtmp("live/nobody")])
            .args(["-f", "null", "-"]),
        Duration::from_secs(20),
    );
    assert!(
        code.is_some_and(|c| c != 0),
        "playing an unknown stream must fail: {code:?} {err}"
    );
    assert!(
        s.log_text().contains("not_found"),
        "refusal logged with its reason"
    );
}

/// A raw RTMP player: handshake, connect, createStream, play; then it reads only when asked.
fn raw_player(port: u16, app: &str, name: &str) -> TcpStream {
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c0c1 = vec![3u8; 1];
    c0c1.extend_from_slice(&[0u8; 1536]);
    t.write_all(&c0c1).unwrap();
    let mut s012 = vec![0u8; 3073];
    t.read_exact(&mut s012).unwrap();
    t.write_all(&s012[1..1537]).unwrap();
    t.write_all(&rtmp::connect(app)).unwrap();
    t.write_all(&rtmp::create_stream()).unwrap();
    t.write_all(&rtmp::command(
        1,
        &[
            rtmp::str("play"),
            rtmp::num(3.0),
            Amf::Null,
            rtmp::str(name),
            rtmp::num(-1000.0),
        ],
    ))
    .unwrap();
    t
}

/// A player whose socket stops reading is dropped to keyframes and then disconnected, while a
/// fast player and the HLS output lose nothing.
#[test]
fn slow_rtmp_reader_is_dropped_without_hurting_others() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    // A small hard cap so the test does not need minutes of socket buffers to fill.
    let s = Sluice::start(&[
        "--set",
        "play.drop_video_ms=300",
        "--set",
        "play.hard_cap_ms=1500",
    ]);
    let _pub = ffmpeg_publish(
        &s.rtmp("live/busy"),
        60,
        &[
            "-b:v", "6M", "-minrate", "6M", "-maxrate", "6M", "-bufsize", "1M",
        ],
    );
    wait_live(&s, "live/busy");
    let mut slow = raw_player(s.rtmp_port, "live", "busy");
    let mut first = [0u8; 4096];
    slow.read_exact(&mut first).unwrap();
    // From here on the slow player reads nothing. Meanwhile a fast player decodes cleanly.
    let (code, err) = run(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-v",
                "error",
                "-xerror",
                "-i",
                &s.rtmp("live/busy"),
            ])
            .args(["-t", "8", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "fast player: {err}");
    // The slow one was dropped for being slow (the event is the metric, not a duration).
    let deadline = Instant::now() + Duration::from_secs(60);
    let dropped = loop {
        let m = s.get("/metrics").text();
        let n = metric(&m, "sluice_rtmp_players_dropped_total", &[]);
        if n >= 1.0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(dropped >= 1.0, "slow player not dropped\n{}", s.log_text());
    // The HLS canary kept going.
    let pl = s.wait_for_segments("/live/busy/index.m3u8", 4, Duration::from_secs(30));
    let errors = ffmpeg_decode_errors(s.http("/live/busy/index.m3u8"), &["-t", "4"]);
    assert!(errors.is_empty(), "HLS decode errors: {errors}\n{pl}");
    drop(slow);
}
