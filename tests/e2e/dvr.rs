//! DVR window and recordings end to end (issue 17): FFmpeg 9 publishes 3 minutes of media (the
//! first 140 s faster than real time with `-readrate_initial_burst`, to keep wall time low, then
//! real time) with a 2-minute DVR window and the default 12 s live window; hls.js in Chromium
//! seeks 90 s back in `dvr.m3u8` and plays, then returns to live; after the publish ffmpeg reads
//! the recording's VOD playlist and ffprobe the MP4 download; `kill -9` mid-recording, restart:
//! the recording plays up to its last complete segment.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

pub(super) fn recordings_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-e2e-rec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Publishes `seconds` of test media; `burst_s` of it as fast as the encoder goes, then real
/// time (`burst_s` = `seconds`: all of it as fast as possible).
pub(super) fn publish(ffmpeg: &std::path::Path, url: &str, seconds: u32, burst_s: u32) -> Proc {
    let mut c = Command::new(ffmpeg);
    c.args(["-hide_banner", "-loglevel", "error"]);
    if burst_s < seconds {
        c.args(["-re", "-readrate_initial_burst", &burst_s.to_string()]);
    }
    c.args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Proc(c.spawn().expect("start ffmpeg"))
}

pub(super) fn extinf_sum(pl: &str) -> f64 {
    pl.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|d| d.trim_end_matches(',').parse::<f64>().ok())
        .sum()
}

pub(super) fn ffprobe_duration(input: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {input}: {}", String::from_utf8_lossy(&out.stderr)))
}

pub(super) fn recordings(s: &Sluice) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&s.get("/api/recordings").body)
        .expect("/api/recordings is a JSON array")
}

pub(super) fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn dvr_seek_back_then_recording_as_vod_and_mp4() {
    if !require("ffprobe") {
        return;
    }
    let Some(ffmpeg) = test_support::ffmpeg9() else {
        return;
    };
    let browser = require("chromium") && node_modules().is_some();
    let dir = recordings_dir("vod");
    let s = Sluice::start(&[
        "--set",
        "hls.dvr_window_s=120",
        "--set",
        "recording.enabled=true",
        "--set",
        &format!("recording.dir={}", dir.display()),
        "--set",
        // The DVR spill goes next to the test's recordings, removed at the end, not into <tmp>.
        &format!("hls.dvr_dir={}-dvr", dir.display()),
        "--set",
        "hls.grace_period_ms=3000",
    ]);
    let mut p = publish(&ffmpeg, &s.rtmp("live/dvr"), 180, 140);
    // The burst fills the DVR window: EVENT while it fits, then 2 minutes sliding (no
    // PLAYLIST-TYPE).
    let mut saw_event = false;
    let pl = wait_until("a full DVR window", Duration::from_secs(120), || {
        let r = s.get("/live/dvr/dvr.m3u8");
        let t = r.text();
        saw_event |= r.status == 200 && t.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        (r.status == 200 && extinf_sum(&t) >= 118.0 && !t.contains("#EXT-X-PLAYLIST-TYPE"))
            .then_some(t)
    });
    assert!(saw_event, "an EVENT playlist while the window was filling");
    let listed = extinf_sum(&pl);
    assert!(
        (118.0..=124.0).contains(&listed),
        "DVR lists {listed} s:\n{pl}"
    );
    assert_eq!(
        pl.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        pl.matches("#EXTINF:").count(),
        "PROGRAM-DATE-TIME on every segment:\n{pl}"
    );
    let live = s.get("/live/dvr/index.m3u8").text();
    assert!(
        extinf_sum(&live) <= 16.0,
        "the live window is unchanged:\n{live}"
    );
    let r = s.get("/live/dvr/dvr.m3u8?start=beginning");
    assert!(r
        .text()
        .contains("#EXT-X-START:TIME-OFFSET=0.000,PRECISE=YES"));
    assert!(r.header("cache-control").unwrap().contains("max-age=1"));
    assert_eq!(s.get("/live/dvr/dvr.m3u8?start=yesterday").status, 400);
    // A segment a minute back (from disk; the window keeps sliding while the burst runs).
    let now = segment_uris(&s.get("/live/dvr/dvr.m3u8").text());
    let seg = now[now.len() / 2].clone();
    let r = s.get(&format!("/live/dvr/{seg}"));
    assert_eq!(r.status, 200, "DVR segment {seg}");
    assert_eq!(r.body[0], 0x47);
    assert!(r.header("cache-control").unwrap().contains("immutable"));

    if browser {
        let nm = node_modules().unwrap();
        let out = Command::new("node")
            .arg(nm.parent().unwrap().join("dvr.mjs"))
            .arg(s.http("/live/dvr/dvr.m3u8"))
            .arg("90")
            .output()
            .expect("node dvr.mjs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "dvr.mjs: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let r = &report["report"];
        assert_eq!(r["fatal"].as_array().unwrap().len(), 0, "{report}");
        let ph = &r["phases"];
        let at_live = ph["live"]["currentTime"].as_f64().unwrap();
        assert!(
            at_live > 100.0,
            "started near the live edge of a 2-minute window: {report}"
        );
        let target = ph["target"].as_f64().unwrap();
        let seeked = ph["seeked"]["currentTime"].as_f64().unwrap();
        assert!(
            seeked > target + 3.0 && seeked < target + 20.0,
            "played from 90 s back: {report}"
        );
        let live_target = ph["liveTarget"].as_f64().unwrap();
        let back = ph["backToLive"]["currentTime"].as_f64().unwrap();
        assert!(back > live_target + 1.0, "played at live again: {report}");
    }

    assert!(p.0.wait().unwrap().success(), "publisher failed");
    // The grace period passes: the recording is VOD.
    let rec = wait_until("the recording to close", Duration::from_secs(30), || {
        recordings(&s)
            .into_iter()
            .find(|r| r["stream"] == "dvr" && r["recording"] == false)
    });
    assert_eq!(rec["app"], "live");
    let duration_s = rec["duration_s"].as_f64().unwrap();
    assert!((178.0..=182.0).contains(&duration_s), "{rec}");
    let playlist = rec["playlist"].as_str().unwrap().to_string();
    let vod = s.get(&playlist).text();
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && vod.ends_with("#EXT-X-ENDLIST\n"));
    let probed = ffprobe_duration(&s.http(&playlist));
    assert!(
        (probed - 180.0).abs() <= 2.0,
        "VOD duration {probed} vs 180 s published"
    );
    let errors = ffmpeg_decode_errors(s.http(&playlist), &[]);
    assert!(
        errors.is_empty(),
        "ffmpeg decode errors in the recording:\n{errors}"
    );
    // Byte ranges on a recorded segment.
    let seg0 = segment_uris(&vod)[0].clone();
    let base = playlist.trim_end_matches("index.m3u8");
    let r = http_request(
        &s.http(""),
        "GET",
        &format!("{base}{seg0}"),
        &[("Range", "bytes=0-187")],
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 188);
    // The MP4 download: moov first, the right duration.
    let mp4 = dir.join("download.mp4");
    let r = s.get(rec["download"].as_str().unwrap());
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[4..8], b"ftyp");
    std::fs::write(&mp4, &r.body).unwrap();
    let d = ffprobe_duration(mp4.to_str().unwrap());
    assert!((d - 180.0).abs() <= 2.5, "MP4 download lasts {d} s");
    let id = rec["id"].as_str().unwrap();
    assert_eq!(
        http_request(&s.http(""), "DELETE", &format!("/api/recordings/{id}"), &[])
            .unwrap()
            .status,
        204
    );
    assert_eq!(s.get(&playlist).status, 404);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(format!("{}-dvr", dir.display()));
}

#[test]
fn recording_survives_kill_9() {
    if !require("ffprobe") {
        return;
    }
    let Some(ffmpeg) = test_support::ffmpeg9() else {
        return;
    };
    let dir = recordings_dir("kill");
    let args = [
        "--set".to_string(),
        "recording.enabled=true".to_string(),
        "--set".to_string(),
        format!("recording.dir={}", dir.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut s = Sluice::start(&args);
    let _p = publish(&ffmpeg, &s.rtmp("live/crash"), 600, 600);
    let seen = wait_until("10 recorded segments", Duration::from_secs(120), || {
        recordings(&s)
            .into_iter()
            .find(|r| r["segments"].as_u64().unwrap_or(0) >= 10)
    });
    s.child.kill().unwrap(); // SIGKILL
    let _ = s.child.wait();
    let s = Sluice::start(&args);
    let recs = recordings(&s);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    assert_eq!(rec["id"], seen["id"]);
    assert_eq!(rec["recording"], false, "closed at restart: {rec}");
    let duration_s = rec["duration_s"].as_f64().unwrap();
    assert!(
        duration_s >= seen["duration_s"].as_f64().unwrap(),
        "a segment listed before the crash was lost: {rec} vs {seen}"
    );
    assert!(s.log_text().contains("recording recovered after a crash"));
    let playlist = rec["playlist"].as_str().unwrap();
    let vod = s.get(playlist).text();
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    let probed = ffprobe_duration(&s.http(playlist));
    assert!(
        (probed - duration_s).abs() <= 0.5,
        "{probed} vs {duration_s}"
    );
    let errors = ffmpeg_decode_errors(s.http(playlist), &[]);
    assert!(
        errors.is_empty(),
        "the recovered recording decodes cleanly:\n{errors}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
