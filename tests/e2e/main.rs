//! End-to-end tests of the `sluice` binary with real peers: ffmpeg publishes, ffmpeg/ffprobe and
//! hls.js in headless Chromium play, Varnish shields. Run by `cargo xtask test`.

mod abr;
mod abr_media;
mod codecs;
mod console;
mod dvr;
mod dvr_end;
mod fleet;
mod hostile;
mod ll_smoke;
mod llhls;
mod monitoring;
mod play;
mod rawrtmp;
mod rtmps;
mod rtmpt;
mod support;
mod variants;

use std::time::{Duration, Instant};

use support::*;

const PLAYLIST: &str = "/live/e2e/index.m3u8";

fn tag_value<'a>(playlist: &'a str, tag: &str) -> Option<&'a str> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(':')))
}

/// Log lines written to a file (or a pipe) carry no ANSI colour codes: colour only on a terminal.
#[test]
fn log_lines_to_a_file_carry_no_colour_codes() {
    let s = Sluice::start(&[]);
    let log = s.log_text();
    assert!(log.contains("sluice listening"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file: {log:?}");
}

/// ffmpeg publishes; the playlist is well formed; ffmpeg reads it over HTTP and decodes with zero
/// errors; ffprobe sees exactly H.264 + AAC; the HTTP headers are right for CDNs.
#[test]
fn ffmpeg_publish_then_ffmpeg_and_ffprobe_play() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp("live/e2e"), 30, &[]);
    let pl = s.wait_for_segments(PLAYLIST, 4, Duration::from_secs(25));

    assert!(pl.starts_with("#EXTM3U\n"), "{pl}");
    let target: u32 = tag_value(&pl, "#EXT-X-TARGETDURATION")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2..=3).contains(&target),
        "target duration {target} for a 2 s GOP:\n{pl}"
    );
    for l in pl.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
        let d: f64 = l.trim_end_matches(',').parse().unwrap();
        assert!(
            d.round() as u32 <= target && d > 0.5,
            "EXTINF {d} vs target {target}\n{pl}"
        );
    }
    assert!(pl.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{pl}");
    assert!(tag_value(&pl, "#EXT-X-MEDIA-SEQUENCE").is_some());

    let r = s.get(PLAYLIST);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(r.header("cache-control").unwrap().contains("max-age="));
    let seg = segment_uris(&pl)[0].clone();
    let r = s.get(&format!("/live/e2e/{seg}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(r.body[0], 0x47);
    assert_eq!(s.get("/live/nope/index.m3u8").status, 404);

    // ffprobe: exactly one H.264 and one AAC stream.
    assert_eq!(probe_codecs(s.http(PLAYLIST)), vec!["aac", "h264"]);

    // ffmpeg decodes 6 s of the live playlist over HTTP with zero errors.
    let errors = ffmpeg_decode_errors(s.http(PLAYLIST), &["-t", "6"]);
    assert!(errors.is_empty(), "ffmpeg decode errors:\n{errors}");
}

/// hls.js in headless Chromium plays for 40 s without a fatal error or a stall, while the
/// publisher disconnects and reconnects; the playlist continues with a discontinuity.
#[test]
fn hlsjs_plays_through_a_publisher_reconnect() {
    if !require("ffmpeg") || !require("chromium") || node_modules().is_none() {
        return;
    }
    let s = Sluice::start(&[]);
    let mut first = ffmpeg_publish(&s.rtmp("live/e2e"), 18, &[]);
    s.wait_for_segments(PLAYLIST, 2, Duration::from_secs(20));
    let url = s.http(PLAYLIST);
    let player = std::thread::spawn(move || play_in_browser(&url, 40, None));
    // Let the first publisher run out (it stops after 18 s of media), then reconnect quickly.
    let _ = first.0.wait();
    std::thread::sleep(Duration::from_millis(1500));
    let _second = ffmpeg_publish(&s.rtmp("live/e2e"), 40, &[]);
    let report = player.join().unwrap();
    let r = &report["report"];
    assert!(
        r["mse"].as_bool().unwrap(),
        "Chromium lacks H.264 MSE: {report}"
    );
    assert_eq!(
        r["fatal"].as_array().unwrap().len(),
        0,
        "fatal hls.js errors: {report}"
    );
    let samples = r["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    let played = last["currentTime"].as_f64().unwrap();
    assert!(played >= 25.0, "played only {played} s of 40: {report}");
    // No long stall: currentTime advanced in every 4 s window after playback began.
    let start = samples
        .iter()
        .position(|x| x["currentTime"].as_f64().unwrap() > 0.0)
        .expect("playback started");
    for w in samples[start..].windows(9) {
        let a = w[0]["currentTime"].as_f64().unwrap();
        let b = w[8]["currentTime"].as_f64().unwrap();
        assert!(b > a, "playback stalled between {a} and {b}: {report}");
    }
    let pl = s.get(PLAYLIST).text();
    assert!(
        pl.contains("#EXT-X-DISCONTINUITY"),
        "reconnect must add a discontinuity:\n{pl}"
    );
    assert_eq!(r["levelDetails"]["live"], true);
}

/// Stream keys: without a key the publish is refused before it starts; with a key it works, and
/// the key appears nowhere in the API, metrics, playlists or logs.
#[test]
fn publish_keys_lock_ingest_down() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&["--publish-key", "s3cret-key"]);
    let mut bad = ffmpeg_publish(&s.rtmp("live/locked"), 5, &[]);
    let status = bad.0.wait().unwrap();
    assert!(!status.success(), "publishing without a key must fail");
    assert_eq!(s.get("/live/locked/index.m3u8").status, 404);

    let _good = ffmpeg_publish(&s.rtmp("live/open?key=s3cret-key"), 20, &[]);
    let pl = s.wait_for_segments("/live/open/index.m3u8", 1, Duration::from_secs(20));
    let api = s.get("/api/streams").text();
    let metrics = s.get("/metrics").text();
    assert!(api.contains("\"open\""), "{api}");
    for (what, text) in [
        ("playlist", pl.as_str()),
        ("api", &api),
        ("metrics", &metrics),
        ("log", &s.log_text()),
    ] {
        assert!(
            !text.contains("s3cret-key"),
            "stream key leaked into the {what}"
        );
    }
    assert!(
        metric(&metrics, "sluice_publish_refused_total", &["missing_key"]) >= 1.0,
        "{metrics}"
    );
}

/// The operator surface: metrics per stream, the JSON API, the preview page in Chromium, kick.
#[test]
fn metrics_api_preview_page_and_kick() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp("live/e2e"), 40, &[]);
    s.wait_for_segments(PLAYLIST, 2, Duration::from_secs(20));

    let m = s.get("/metrics").text();
    for name in [
        "sluice_stream_segments_total",
        "sluice_stream_bytes_received_total",
        "sluice_stream_keyframes_total",
        "sluice_http_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics:\n{m}");
    }
    assert!(metric(&m, "sluice_stream_segments_total", &["stream=\"e2e\""]) >= 2.0);

    let api: serde_json::Value =
        serde_json::from_slice(&s.get("/api/streams/live/e2e").body).unwrap();
    assert_eq!(api["publishing"], true, "{api}");
    assert_eq!(api["playlist_url"], "/live/e2e/index.m3u8");
    let codec = &api["publisher"]["codec"];
    assert_eq!(codec["video"]["width"], 640, "{api}");
    assert_eq!(codec["video"]["height"], 360, "{api}");
    assert_eq!(codec["audio"]["sample_rate_hz"], 48000, "{api}");
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);

    if require("chromium") && node_modules().is_some() {
        let report = play_in_browser("-", 12, Some(&s.http("/")));
        let streams = report["report"]["preview"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{report}");
        assert_eq!(streams[0]["id"], "live/e2e");
        assert!(
            streams[0]["currentTime"].as_f64().unwrap() > 2.0,
            "preview did not play: {report}"
        );
        assert_eq!(streams[0]["width"], 640);
    }

    let r = http_request(&s.http(""), "DELETE", "/api/streams/live/e2e", &[]).unwrap();
    assert_eq!(r.status, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let api: serde_json::Value =
            serde_json::from_slice(&s.get("/api/streams/live/e2e").body).unwrap();
        if api["publishing"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kick did not end the publish: {api}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM: the process exits 0 within a few seconds while a publisher is live.
#[test]
fn sigterm_shuts_down_cleanly() {
    if !require("ffmpeg") {
        return;
    }
    let mut s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp("live/e2e"), 30, &[]);
    s.wait_for_segments(PLAYLIST, 1, Duration::from_secs(20));
    // The 10 s bound is a liveness guard, not a timing assertion.
    let status = s
        .terminate(Duration::from_secs(10))
        .expect("sluice did not exit within 10 s");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        s.log_text()
    );
    assert!(s.log_text().contains("publish ended"), "{}", s.log_text());
}

/// Varnish with the shipped VCL in front of sluice: hls.js plays through it, and many concurrent
/// requests for a new segment cause exactly one origin fetch.
#[test]
fn varnish_shield_coalesces_and_plays() {
    if !require("ffmpeg") || !require("varnishd") {
        return;
    }
    let s = Sluice::start(&[]);
    let varnish = support_varnish::Varnish::start(s.http_port);
    let _pub = ffmpeg_publish(&s.rtmp("live/e2e"), 60, &[]);
    s.wait_for_segments(PLAYLIST, 2, Duration::from_secs(20));

    // Wait for a segment nobody has fetched yet, then hit Varnish with 50 concurrent requests.
    let before = s.get(PLAYLIST).text();
    let known = segment_uris(&before);
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let pl = s.get(PLAYLIST).text();
        if let Some(u) = segment_uris(&pl).into_iter().find(|u| !known.contains(u)) {
            break u;
        }
        assert!(Instant::now() < deadline, "no new segment");
        std::thread::sleep(Duration::from_millis(100));
    };
    let seg_metric = |s: &Sluice| {
        metric(
            &s.get("/metrics").text(),
            "sluice_http_requests_total",
            &["route=\"segment\""],
        )
    };
    let origin_before = seg_metric(&s);
    let path = format!("/live/e2e/{fresh}");
    let base = format!("http://127.0.0.1:{}", varnish.port);
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (b, p) = (base.clone(), path.clone());
            std::thread::spawn(move || http_get(&b, &p).map(|r| (r.status, r.body.len())))
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert!(
        results.iter().all(|(st, len)| *st == 200 && *len > 0),
        "{results:?}"
    );
    assert!(results.windows(2).all(|w| w[0].1 == w[1].1));
    let origin_after = seg_metric(&s);
    assert_eq!(
        origin_after - origin_before,
        1.0,
        "50 concurrent viewers must cause one origin fetch"
    );

    // A cached segment is served by Varnish with its immutable caching intact.
    let r = http_get(&base, &path).unwrap();
    assert!(r
        .header("cache-control")
        .unwrap_or("")
        .contains("immutable"));

    if require("chromium") && node_modules().is_some() {
        let report = play_in_browser(&format!("{base}{PLAYLIST}"), 20, None);
        let r = &report["report"];
        assert_eq!(r["fatal"].as_array().unwrap().len(), 0, "{report}");
        let played = r["samples"].as_array().unwrap().last().unwrap()["currentTime"]
            .as_f64()
            .unwrap();
        assert!(played > 8.0, "played {played} s through Varnish: {report}");
    }
}

mod support_varnish {
    use super::support::*;
    use std::process::Command;

    /// varnishd in the foreground with docker/varnish/default.vcl, its backend pointed at the
    /// test's sluice instead of the compose service name.
    pub struct Varnish {
        pub port: u16,
        _proc: Proc,
        _dir: TempDirGuard,
    }

    impl Varnish {
        pub fn start(origin_port: u16) -> Varnish {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!("sluice-varnish-{port}"));
            std::fs::create_dir_all(&dir).unwrap();
            let vcl =
                std::fs::read_to_string(repo_root().join("docker/varnish/default.vcl")).unwrap();
            let vcl = vcl
                .replace(".host = \"sluice\";", ".host = \"127.0.0.1\";")
                .replace(".port = \"8080\";", &format!(".port = \"{origin_port}\";"));
            assert!(
                vcl.contains("127.0.0.1"),
                "VCL backend not found to rewrite"
            );
            let vcl_path = dir.join("test.vcl");
            std::fs::write(&vcl_path, vcl).unwrap();
            let child = Command::new("varnishd")
                .args(["-F", "-n"])
                .arg(&dir)
                .args(["-a", &format!("127.0.0.1:{port}")])
                .arg("-f")
                .arg(&vcl_path)
                .args(["-s", "malloc,64m", "-p", "default_ttl=2"])
                .spawn()
                .expect("start varnishd");
            let v = Varnish {
                port,
                _proc: Proc(child),
                _dir: TempDirGuard(dir),
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if http_get(&format!("http://127.0.0.1:{port}"), "/healthz").is_ok() {
                    return v;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            panic!("varnishd did not start");
        }
    }
}

/// A minimal webhook receiver: records each JSON body; answers 200 for stream "allowed", 403 otherwise.
fn webhook_server() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            let body = loop {
                let Ok(n) = c.read(&mut tmp) else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&tmp[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(buf[end + 4..end + 4 + len].to_vec());
                }
            };
            let Some(body) = body else { continue };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let ok = v["stream"] == "allowed";
            seen2.lock().unwrap().push(v);
            let status = if ok { "200 OK" } else { "403 Forbidden" };
            let _ = c.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
                    .as_bytes(),
            );
        }
    });
    (port, seen)
}

/// on_publish admits or refuses (fail closed) with app, stream, params and client address in the
/// JSON; on_unpublish is notified when the stream ends.
#[test]
fn publish_webhooks_decide_and_notify() {
    if !require("ffmpeg") {
        return;
    }
    let (port, seen) = webhook_server();
    let s = Sluice::start(&[
        "--set",
        &format!("auth.on_publish_url=http://127.0.0.1:{port}/on_publish"),
        "--set",
        &format!("auth.on_unpublish_url=http://127.0.0.1:{port}/on_unpublish"),
    ]);
    let mut denied = ffmpeg_publish(&s.rtmp("live/denied"), 5, &[]);
    assert!(
        !denied.0.wait().unwrap().success(),
        "the webhook refused this publish"
    );
    assert_eq!(s.get("/live/denied/index.m3u8").status, 404);

    let mut ok = ffmpeg_publish(&s.rtmp("live/allowed?token=abc"), 6, &[]);
    s.wait_for_segments("/live/allowed/index.m3u8", 1, Duration::from_secs(20));
    assert!(ok.0.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|v| v["action"] == "unpublish")
    {
        assert!(
            Instant::now() < deadline,
            "no on_unpublish call: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls = seen.lock().unwrap().clone();
    let publish = calls
        .iter()
        .find(|v| v["action"] == "publish" && v["stream"] == "allowed")
        .expect("on_publish for the allowed stream");
    assert_eq!(publish["app"], "live");
    assert_eq!(publish["params"]["token"], "abc");
    assert!(publish["client_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(calls
        .iter()
        .any(|v| v["action"] == "publish" && v["stream"] == "denied"));
    let m = s.get("/metrics").text();
    assert!(
        metric(&m, "sluice_publish_refused_total", &["webhook_denied"]) >= 1.0,
        "{m}"
    );
}
