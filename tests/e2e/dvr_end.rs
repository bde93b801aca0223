//! DVR after a stream ends and the progressive MP4 download (issue 17), with a per-app DVR
//! window (`hls.dvr_window_s_by_app`, the global window off). FFmpeg 9 publishes 10 s as fast as
//! it can, stops, and publishes 10 s more within the grace period: `dvr.m3u8` ends with
//! `#EXT-X-ENDLIST` between and after the publishes, the reconnect continues it with a
//! discontinuity, and the ended window is released after `hls.dvr_keep_after_end_s`. The
//! recording (both publishes) downloads as one MP4 with `moov` before `mdat` that ffprobe
//! counts 600 frames and 20 s in, that ffmpeg decodes without error, and whose byte ranges are
//! the same bytes as the whole file.

use std::process::Command;
use std::time::Duration;

use super::dvr::{ffprobe_duration, publish, recordings, recordings_dir, wait_until};
use super::support::*;

const DVR: &str = "/live/end/dvr.m3u8";

/// Top-level boxes of an MP4 file: (type, offset).
fn top_level_boxes(b: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let size = match size {
            1 => u64::from_be_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => b.len() - at,
            n => n,
        };
        out.push((String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned(), at));
        assert!(size >= 8, "bad box size at {at}");
        at += size;
    }
    assert_eq!(at, b.len(), "boxes cover the file exactly");
    out
}

fn video_frames(path: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe {path}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn dvr_outlives_the_publish_and_the_recording_downloads_as_progressive_mp4() {
    if !require("ffprobe") || !require("ffmpeg") {
        return;
    }
    let Some(ffmpeg) = test_support::ffmpeg9() else {
        return;
    };
    let dir = recordings_dir("end");
    let dvr_dir = format!("{}-dvr", dir.display());
    let s = Sluice::start(&[
        "--set",
        "hls.dvr_window_s_by_app={live = 3600}",
        "--set",
        "recording.enabled=true",
        "--set",
        &format!("recording.dir={}", dir.display()),
        "--set",
        &format!("hls.dvr_dir={dvr_dir}"),
        "--set",
        "hls.grace_period_ms=8000",
        "--set",
        "hls.dvr_keep_after_end_s=12",
    ]);
    let _guards = (
        TempDirGuard(dir.clone()),
        TempDirGuard(dvr_dir.clone().into()),
    );

    let mut p = publish(&ffmpeg, &s.rtmp("live/end"), 10, 10);
    assert!(p.0.wait().unwrap().success(), "first publisher failed");
    let ended = wait_until("ENDLIST after the publish", Duration::from_secs(30), || {
        let r = s.get(DVR);
        (r.status == 200 && r.text().ends_with("#EXT-X-ENDLIST\n")).then_some(r)
    });
    let max_age: u64 = (ended.header("cache-control").unwrap())
        .trim_start_matches("public, max-age=")
        .parse()
        .unwrap();
    assert!(max_age > 1, "an ended playlist is cached longer: {max_age}");
    assert!(ended.text().contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    // Bytes on disk and in memory, per stream.
    let list: Vec<serde_json::Value> = serde_json::from_slice(&s.get("/api/dvr").body).unwrap();
    let w = list
        .iter()
        .find(|w| w["stream"] == "end")
        .expect("listed in /api/dvr");
    assert_eq!(w["ended"], true, "{w}");
    assert!(w["bytes_on_disk"].as_u64().unwrap() > 100_000, "{w}");
    assert!(w["index_bytes_in_memory"].as_u64().unwrap() > 0, "{w}");

    // A reconnect within the grace period continues the window with a discontinuity.
    let mut p = publish(&ffmpeg, &s.rtmp("live/end"), 10, 10);
    wait_until("the window to continue", Duration::from_secs(30), || {
        let t = s.get(DVR).text();
        (!t.contains("#EXT-X-ENDLIST") && t.contains("#EXT-X-DISCONTINUITY\n")).then_some(())
    });
    assert!(p.0.wait().unwrap().success(), "second publisher failed");
    let pl = wait_until(
        "ENDLIST after the second publish",
        Duration::from_secs(30),
        || {
            let t = s.get(DVR).text();
            t.ends_with("#EXT-X-ENDLIST\n").then_some(t)
        },
    );
    assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{pl}");
    // The whole show, scrubbable after the end.
    let seg = segment_uris(&pl)[0].clone();
    assert_eq!(s.get(&format!("/live/end/{seg}")).status, 200);
    // Another app has no DVR (hls.dvr_window_s is 0; only `live` has a window).
    assert_eq!(s.get("/other/end/dvr.m3u8").status, 404);

    // The recording: both publishes, one MP4.
    let rec = wait_until("the recording to close", Duration::from_secs(40), || {
        recordings(&s)
            .into_iter()
            .find(|r| r["stream"] == "end" && r["recording"] == false)
    });
    let url = rec["download"].as_str().unwrap().to_string();
    let full = s.get(&url);
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("content-length").unwrap(),
        full.body.len().to_string()
    );
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let boxes = top_level_boxes(&full.body);
    let names: Vec<&str> = boxes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["ftyp", "moov", "mdat"],
        "fast start: moov before mdat"
    );
    let mp4 = dir.join("download.mp4");
    std::fs::write(&mp4, &full.body).unwrap();
    let path = mp4.to_str().unwrap();
    let d = ffprobe_duration(path);
    assert!(
        (d - 20.0).abs() <= 0.5,
        "MP4 download lasts {d} s, published 20 s"
    );
    assert_eq!(
        video_frames(path),
        600,
        "every published frame (2 x 10 s at 30 fps)"
    );
    let errors = ffmpeg_decode_errors(path, &[]);
    assert!(
        errors.is_empty(),
        "ffmpeg decode errors in the MP4:\n{errors}"
    );
    // Ranges: inside the moov, across moov and mdat, and the tail.
    let mdat_at = boxes[2].1;
    let n = full.body.len();
    for (first, last) in [
        (100, 1099),
        (mdat_at - 50, mdat_at + 5000),
        (n - 777, n - 1),
    ] {
        let r = http_request(
            &s.http(""),
            "GET",
            &url,
            &[("Range", &format!("bytes={first}-{last}"))],
        )
        .unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes {first}-{last}/{n}")
        );
        assert!(r.body == full.body[first..=last], "range {first}-{last}");
    }

    // After hls.dvr_keep_after_end_s the ended window is released: playlist and files gone.
    wait_until(
        "the ended window's release",
        Duration::from_secs(40),
        || (s.get(DVR).status == 404).then_some(()),
    );
    let left: Vec<_> = std::fs::read_dir(&dvr_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(left.is_empty(), "DVR files left after release: {left:?}");
    let m = s.get("/metrics").text();
    assert!(metric(&m, "sluice_dvr_evicted_bytes_total", &["reason=\"ended\""]) > 0.0);
}

/// A full disk stops the recording with a clear error and a metric, never the live stream. The
/// kernel's own ENOSPC: the recording's next segment files are symlinks to `/dev/full`.
#[test]
fn a_full_disk_stops_the_recording_not_the_live_stream() {
    if !require("ffprobe") || !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let Some(ffmpeg) = test_support::ffmpeg9() else {
        return;
    };
    let dir = recordings_dir("full");
    let s = Sluice::start(&[
        "--set",
        "recording.enabled=true",
        "--set",
        &format!("recording.dir={}", dir.display()),
    ]);
    let _guard = TempDirGuard(dir.clone());
    let _p = publish(&ffmpeg, &s.rtmp("live/full"), 120, 2);
    // The recording's directory, once its second segment is written.
    let rec_dir = wait_until("two recorded segments", Duration::from_secs(60), || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("seg-1.ts").exists() || p.join("seg-1.m4s").exists())
    });
    for n in 3..200 {
        for ext in ["ts", "m4s"] {
            let _ = std::os::unix::fs::symlink("/dev/full", rec_dir.join(format!("seg-{n}.{ext}")));
        }
    }
    wait_until("the disk_full error", Duration::from_secs(60), || {
        let m = s.get("/metrics").text();
        (metric(
            &m,
            "sluice_recording_errors_total",
            &["reason=\"disk_full\""],
        ) >= 1.0)
            .then_some(())
    });
    assert!(
        s.log_text()
            .contains("recording stopped: disk error; the live stream continues"),
        "a clear error in the log"
    );
    let rec = wait_until(
        "the recording closed early",
        Duration::from_secs(10),
        || {
            recordings(&s)
                .into_iter()
                .find(|r| r["stream"] == "full" && r["recording"] == false)
        },
    );
    let kept = rec["segments"].as_u64().unwrap();
    assert!(
        kept >= 2,
        "the segments before the full disk are kept: {rec}"
    );
    // The live stream goes on: three more segments after the failure.
    let media_seq = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            + segment_uris(t).len() as u64
    };
    let now = media_seq(&s.get("/live/full/index.m3u8").text());
    wait_until("the live stream to go on", Duration::from_secs(60), || {
        (media_seq(&s.get("/live/full/index.m3u8").text()) >= now + 3).then_some(())
    });
    // What was recorded plays.
    let playlist = rec["playlist"].as_str().unwrap();
    let errors = ffmpeg_decode_errors(s.http(playlist), &[]);
    assert!(
        errors.is_empty(),
        "the recording up to the full disk decodes:\n{errors}"
    );
}
