//! Adaptive bitrate end to end (issue 16): one ffmpeg process publishes a three-step ladder as
//! three publishes (`live/cam_hi|_mid|_lo`, keyframes forced at the same times); with
//! `hls.variant_suffixes` Sluice serves `live/cam/index.m3u8` (and `cmaf.m3u8`) as their
//! multivariant playlist. Checked: the attributes players trust, the start rendition, every
//! rendition decoding cleanly, segments of the same number starting at the same media time
//! within one frame, and the group in the API.
//!
//! In headless Chromium, hls.js plays each group (the suffix group's `index.m3u8`, the multitrack
//! group's `cmaf.m3u8`), reaches the top rendition, is throttled below it through the DevTools
//! protocol and must switch down without a stall, then back up once the throttle is lifted
//! (`tests/browser/abr.mjs`, which defines the phases and what counts as a stall).
//!
//! The ladder is scaled down from 1080p/720p/360p at 6/3/0.8 Mbit/s to 640x360 1.5 Mbit/s,
//! 480x270 0.8 Mbit/s and 320x180 0.3 Mbit/s so three x264 encoders fit two loaded cores.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// (suffix, width, height, video bitrate).
pub const LADDER: [(&str, u32, u32, &str); 3] = [
    ("_hi", 640, 360, "1500k"),
    ("_mid", 480, 270, "800k"),
    ("_lo", 320, 180, "300k"),
];

/// One ffmpeg, one input, three encodes with keyframes forced every 2 s, three RTMP publishes.
fn publish_ladder(s: &Sluice, name: &str, seconds: u32) -> Proc {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-filter_complex",
            "[0:v]split=3[v0][v1][v2];[v1]scale=480:270[v1s];[v2]scale=320:180[v2s]",
        ]);
    for (i, (suffix, _, _, rate)) in LADDER.iter().enumerate() {
        let label = if i == 0 {
            "[v0]".to_string()
        } else {
            format!("[v{i}s]")
        };
        c.args(["-map", &label, "-map", "1:a"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
            .args(["-b:v", rate, "-maxrate", rate, "-bufsize", rate])
            .args([
                "-force_key_frames",
                "expr:gte(t,n_forced*2)",
                "-sc_threshold",
                "0",
            ])
            .args(["-g", "600", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-b:a", "64k"])
            .args(["-f", "flv", &s.rtmp(&format!("live/{name}{suffix}"))]);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Proc(c.spawn().expect("start ffmpeg"))
}

/// `#EXT-X-STREAM-INF` attribute lists and URIs of a multivariant playlist.
pub fn variants(multivariant: &str) -> Vec<(HashMap<String, String>, String)> {
    let lines: Vec<&str> = multivariant.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(attrs) = l.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        out.push((parse_attrs(attrs), lines[i + 1].to_string()));
    }
    out
}

fn parse_attrs(s: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let (value, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap();
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match v.split_once(',') {
                Some((a, b)) => (a, b),
                None => (v, ""),
            }
        };
        m.insert(k.to_string(), value.to_string());
        rest = tail;
    }
    m
}

/// Waits until `path` lists `n` variants.
pub fn wait_for_variants(s: &Sluice, path: &str, n: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let r = s.get(path);
        if r.status == 200 && variants(&r.text()).len() >= n {
            return r.text();
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not list {n} variants: {} {}\nlog:\n{}",
            r.status,
            r.text(),
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// First video PTS of a segment, seconds, per ffprobe (a CMAF segment is probed behind the init
/// segment its playlist maps).
fn first_video_pts(s: &Sluice, dir: &str, playlist: &str, seg: &str) -> f64 {
    let mut bytes = Vec::new();
    if let Some(init) = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .next_back()
    {
        bytes = s.get(&format!("{dir}/{}", init.trim_end_matches('"'))).body;
    }
    bytes.extend(s.get(&format!("{dir}/{seg}")).body);
    let file = std::env::temp_dir().join(format!("sluice-abr-{}-{}", s.http_port, seg));
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=start_time", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("run ffprobe");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    // TS lists the stream under its program too: the first line is enough.
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no start time for {dir}/{seg}: {text:?}"))
}

/// Segments with the same media sequence number start within one frame (1/30 s) in every
/// rendition of the group; returns how many numbers were compared.
pub fn check_alignment(s: &Sluice, dir: &str, renditions: &[String], file: &str) -> usize {
    let mut per: Vec<HashMap<String, f64>> = Vec::new();
    let mut common: Option<Vec<String>> = None;
    let mut playlists = Vec::new();
    for r in renditions {
        let pl = s.get(&format!("/{dir}/{r}/{file}")).text();
        let segs = segment_uris(&pl);
        playlists.push(pl);
        common = Some(match common {
            None => segs,
            Some(c) => c.into_iter().filter(|x| segs.contains(x)).collect(),
        });
        per.push(HashMap::new());
    }
    let common = common.unwrap_or_default();
    // The newest few: the oldest may already be leaving the window.
    let check: Vec<&String> = common.iter().rev().take(3).collect();
    for (i, r) in renditions.iter().enumerate() {
        for seg in &check {
            let t = first_video_pts(s, &format!("/{dir}/{r}"), &playlists[i], seg);
            per[i].insert(seg.to_string(), t);
        }
    }
    for seg in &check {
        let times: Vec<f64> = per.iter().map(|m| m[*seg]).collect();
        let spread = times.iter().cloned().fold(f64::MIN, f64::max)
            - times.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            spread <= 1.0 / 30.0 + 1e-3,
            "{seg} starts at {times:?} in {renditions:?}: not aligned within one frame"
        );
    }
    check.len()
}

#[test]
fn suffix_group_ladder_is_one_multivariant_playlist() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let s = Sluice::start(&["--set", "hls.variant_suffixes=_hi,_mid,_lo"]);
    // Long enough for every phase of the browser run; the publisher is killed when done.
    let _pub = publish_ladder(&s, "cam", 400);
    for (suffix, ..) in LADDER {
        s.wait_for_segments(
            &format!("/live/cam{suffix}/index.m3u8"),
            4,
            Duration::from_secs(60),
        );
    }
    let mv = wait_for_variants(&s, "/live/cam/index.m3u8", 3, Duration::from_secs(10));
    let vs = variants(&mv);
    let uris: Vec<&str> = vs.iter().map(|(_, u)| u.as_str()).collect();
    // The start rendition (listed first) is the middle one, then highest first.
    assert_eq!(
        uris,
        [
            "../cam_mid/index.m3u8",
            "../cam_hi/index.m3u8",
            "../cam_lo/index.m3u8"
        ],
        "{mv}"
    );
    let bw = |i: usize| vs[i].0["BANDWIDTH"].parse::<u64>().unwrap();
    assert!(bw(1) > bw(0) && bw(0) > bw(2), "bandwidth order: {mv}");
    for ((attrs, uri), want) in vs.iter().zip([(480, 270), (640, 360), (320, 180)]) {
        assert_eq!(
            attrs["RESOLUTION"],
            format!("{}x{}", want.0, want.1),
            "{uri}: {mv}"
        );
        assert!(attrs["CODECS"].starts_with("avc1."), "{mv}");
        assert!(attrs["CODECS"].ends_with(",mp4a.40.2"), "{mv}");
        assert!(attrs.contains_key("AVERAGE-BANDWIDTH"), "{mv}");
        let avg: u64 = attrs["AVERAGE-BANDWIDTH"].parse().unwrap();
        let peak: u64 = attrs["BANDWIDTH"].parse().unwrap();
        assert!(avg <= peak && avg > 100_000, "{uri}: {avg} vs {peak}");
    }
    // The measured peak follows the encoder's rate (1.5 Mbit/s video + audio + TS overhead).
    assert!((1_200_000..4_000_000).contains(&bw(1)), "{mv}");
    let r = s.get("/live/cam/index.m3u8");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(r.header("etag").is_some());
    // CMAF multivariant: the renditions' cmaf.m3u8.
    let cmaf = s.get("/live/cam/cmaf.m3u8").text();
    assert_eq!(
        variants(&cmaf)
            .iter()
            .map(|(_, u)| u.as_str())
            .collect::<Vec<_>>(),
        [
            "../cam_mid/cmaf.m3u8",
            "../cam_hi/cmaf.m3u8",
            "../cam_lo/cmaf.m3u8"
        ],
        "{cmaf}"
    );

    // Every rendition decodes cleanly, both containers.
    for (suffix, ..) in LADDER {
        for file in ["index.m3u8", "cmaf.m3u8"] {
            let url = s.http(&format!("/live/cam{suffix}/{file}"));
            let errors = ffmpeg_decode_errors(&url, &["-t", "3"]);
            assert!(errors.is_empty(), "{url}: {errors}");
        }
    }
    // Same number, same media time, in every rendition.
    let names: Vec<String> = LADDER.iter().map(|(x, ..)| format!("cam{x}")).collect();
    assert!(check_alignment(&s, "live", &names, "index.m3u8") >= 2);
    assert!(check_alignment(&s, "live", &names, "cmaf.m3u8") >= 2);

    // The API shows the group; the server's own alignment check agrees.
    let api: serde_json::Value = serde_json::from_slice(&s.get("/api/groups").body).unwrap();
    let g = &api["groups"][0];
    assert_eq!(g["name"], "cam", "{api}");
    assert_eq!(g["kind"], "suffix", "{api}");
    let rs = g["renditions"].as_array().unwrap();
    assert_eq!(rs.len(), 3, "{api}");
    let compared: u64 = rs
        .iter()
        .map(|r| r["segments_compared"].as_u64().unwrap())
        .sum();
    let misaligned: u64 = rs
        .iter()
        .map(|r| r["segments_misaligned"].as_u64().unwrap())
        .sum();
    assert!(compared >= 6, "{api}");
    assert_eq!(misaligned, 0, "{api}");
    assert_eq!(s.get("/api/groups/live/cam").status, 200);
    assert_eq!(s.get("/api/groups/live/nope").status, 404);

    // The preview page shows the group with a rendition picker (automatic + 3) and what plays.
    if require("chromium") && node_modules().is_some() {
        let report = play_in_browser("-", 12, Some(&s.http("/")));
        let cards = report["report"]["preview"].as_array().unwrap();
        let card = cards
            .iter()
            .find(|c| c["id"] == "live/cam")
            .unwrap_or_else(|| panic!("no group card: {report}"));
        let choices = card["renditions"].as_array().unwrap();
        assert_eq!(choices.len(), 4, "{report}");
        assert_eq!(choices[0], "automatic", "{report}");
        assert!(
            card["playing"].as_str().unwrap().contains("playing"),
            "{report}"
        );
        assert!(card["currentTime"].as_f64().unwrap() > 1.0, "{report}");
    }
    abr_in_browser(&s, "/live/cam/index.m3u8");
}

/// FFmpeg 9 publishes the same ladder as one Enhanced RTMP multitrack publish (three video
/// tracks, one audio track): `live/mt/index.m3u8` is the multivariant playlist of the renditions
/// `live/mt~v0|1|2` (video-only, with the audio track as the audio group `mt~a0`), all
/// decoding and aligned.
#[test]
fn multitrack_ladder_is_one_multivariant_playlist() {
    let Some(ff9) = test_support::ffmpeg9() else {
        return;
    };
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let s = Sluice::start(&[]);
    let mut c = Command::new(ff9);
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "400"])
        .args([
            "-filter_complex",
            "[0:v]split=3[v0][v1][v2];[v1]scale=480:270[v1s];[v2]scale=320:180[v2s]",
        ])
        .args([
            "-map", "[v0]", "-map", "[v1s]", "-map", "[v2s]", "-map", "1:a",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
        .args([
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-sc_threshold",
            "0",
        ])
        .args(["-g", "600", "-pix_fmt", "yuv420p"]);
    for (i, (.., rate)) in LADDER.iter().enumerate() {
        for opt in ["b", "maxrate", "bufsize"] {
            c.args([format!("-{opt}:v:{i}"), rate.to_string()]);
        }
    }
    c.args([
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "flv",
        &s.rtmp("live/mt"),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let _pub = Proc(c.spawn().expect("start FFmpeg 9"));
    let names: Vec<String> = (0..3).map(|k| format!("mt~v{k}")).collect();
    for n in &names {
        s.wait_for_segments(&format!("/live/{n}/index.m3u8"), 4, Duration::from_secs(60));
    }
    let mv = wait_for_variants(&s, "/live/mt/index.m3u8", 3, Duration::from_secs(10));
    let vs = variants(&mv);
    let uris: Vec<&str> = vs.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(
        uris,
        [
            "../mt~v1/index.m3u8",
            "../mt~v0/index.m3u8",
            "../mt~v2/index.m3u8"
        ],
        "{mv}"
    );
    for ((attrs, uri), want) in vs.iter().zip([(480, 270), (640, 360), (320, 180)]) {
        assert_eq!(
            attrs["RESOLUTION"],
            format!("{}x{}", want.0, want.1),
            "{uri}: {mv}"
        );
        assert!(
            attrs["CODECS"].ends_with(",mp4a.40.2"),
            "audio group codec: {mv}"
        );
    }
    let cmaf = wait_for_variants(&s, "/live/mt/cmaf.m3u8", 3, Duration::from_secs(10));
    assert!(cmaf.contains("../mt~v0/cmaf.m3u8"), "{cmaf}");
    for n in &names {
        // Video-only: the audio track is the group's audio rendition `mt~a0` (abr_media.rs).
        assert_eq!(
            probe_codecs(s.http(&format!("/live/{n}/index.m3u8"))),
            ["h264"]
        );
        for file in ["index.m3u8", "cmaf.m3u8"] {
            let url = s.http(&format!("/live/{n}/{file}"));
            let errors = ffmpeg_decode_errors(&url, &["-t", "3"]);
            assert!(errors.is_empty(), "{url}: {errors}");
        }
    }
    assert!(check_alignment(&s, "live", &names, "index.m3u8") >= 2);
    assert!(check_alignment(&s, "live", &names, "cmaf.m3u8") >= 2);
    let g: serde_json::Value = serde_json::from_slice(&s.get("/api/groups/live/mt").body).unwrap();
    assert_eq!(g["kind"], "multitrack", "{g}");
    let misaligned: u64 = g["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["segments_misaligned"].as_u64().unwrap())
        .sum();
    assert_eq!(misaligned, 0, "{g}");
    check_ll_renditions(&s, "live", &names);
    abr_in_browser(&s, "/live/mt/cmaf.m3u8");
}

/// Part durations of segment `msn` as a media playlist lists them (`EXT-X-PART` lines whose URI
/// is `part-MSN.P.m4s`).
fn part_durations(playlist: &str, msn: u64) -> Vec<f64> {
    let prefix = format!("URI=\"part-{msn}.");
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && l.contains(&prefix))
        .filter_map(|l| {
            let d = l.split("DURATION=").nth(1)?.split(',').next()?;
            d.parse().ok()
        })
        .collect()
}

/// LL-HLS on every rendition of a multitrack group, as for a single publish (RFC 8216bis
/// §4.4.4.9 `EXT-X-PART`, §4.4.5.3 `EXT-X-PRELOAD-HINT`, §4.4.5.4 `EXT-X-RENDITION-REPORT`,
/// §6.2.5.2 blocking reload): parts listed, the next part hinted, every sibling reported, a
/// blocking request for the hinted part answered with a playlist listing it, and the parts of one
/// finished segment the same in every rendition (durations within one frame).
fn check_ll_renditions(s: &Sluice, dir: &str, names: &[String]) {
    let mut per_rendition = Vec::new();
    for n in names {
        let path = format!("/{dir}/{n}/cmaf.m3u8");
        let pl = s.get(&path).text();
        assert!(pl.contains("#EXT-X-PART:"), "{path} lists no parts:\n{pl}");
        for sibling in names.iter().filter(|x| *x != n) {
            let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{sibling}/cmaf.m3u8\"");
            assert!(
                pl.contains(&report),
                "{path} does not report {sibling}:\n{pl}"
            );
        }
        let hint = pl
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-"))
            .unwrap_or_else(|| panic!("{path} has no part preload hint:\n{pl}"));
        let (msn, part) = hint.trim_end_matches(".m4s\"").split_once('.').unwrap();
        let blocking = format!("{path}?_HLS_msn={msn}&_HLS_part={part}");
        let r = s.get(&blocking);
        assert_eq!(r.status, 200, "{blocking}: {}", r.text());
        let uri = format!("URI=\"part-{msn}.{part}.m4s\"");
        assert!(
            r.text()
                .lines()
                .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&uri)),
            "{blocking} answered without the part it waited for:\n{}",
            r.text()
        );
        per_rendition.push(r.text());
    }
    // The newest segment every rendition finished and still lists with its parts.
    let finished = |pl: &String| -> Vec<u64> {
        segment_uris(pl)
            .iter()
            .filter_map(|u| u.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok())
            .filter(|m| !part_durations(pl, *m).is_empty())
            .collect()
    };
    let msn = finished(&per_rendition[0])
        .into_iter()
        .filter(|m| per_rendition.iter().all(|pl| finished(pl).contains(m)))
        .max()
        .unwrap_or_else(|| panic!("no finished segment with parts in all: {per_rendition:?}"));
    let parts: Vec<Vec<f64>> = per_rendition
        .iter()
        .map(|pl| part_durations(pl, msn))
        .collect();
    for (n, p) in names.iter().zip(&parts) {
        assert_eq!(p.len(), parts[0].len(), "seg {msn} parts in {n}: {parts:?}");
        for (a, b) in p.iter().zip(&parts[0]) {
            assert!(
                (a - b).abs() <= 1.0 / 30.0 + 1e-3,
                "seg {msn} parts: {parts:?}"
            );
        }
    }
}

/// How long each phase of `abr.mjs` may take (start, switch down, switch up); generous, since
/// every phase ends on an event and the machine may be loaded.
const ABR_PHASE_DEADLINE_S: u32 = 90;

/// hls.js in headless Chromium plays the multivariant playlist at `path`, reaches the top
/// rendition, is throttled below it and must switch down without a stall, then back up.
/// One browser ABR run at a time: two of them side by side (each with its encoder and Chromium)
/// starve a 2-core machine's CPU, and a CPU-starved player stalls whatever the network does.
static BROWSER_ABR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn abr_in_browser(s: &Sluice, path: &str) {
    if !require("chromium") {
        return;
    }
    let Some(nm) = node_modules() else {
        return;
    };
    let _one_at_a_time = BROWSER_ABR.lock().unwrap_or_else(|e| e.into_inner());
    // A stall can come from a CPU-starved machine rather than the player or the origin: one
    // more run is allowed, and only for stalls (every other check fails at once). A real
    // regression stalls both runs.
    let stalls = abr_run(s, &nm, path);
    if stalls.is_empty() {
        return;
    }
    eprintln!("abr: {path}: stalled on the first run, running once more: {stalls:?}");
    let again = abr_run(s, &nm, path);
    assert!(
        again.is_empty(),
        "stalled in both runs: {stalls:?} then {again:?}"
    );
}

/// One abr.mjs run: asserts the switches; returns the stalls seen after the top rendition played.
fn abr_run(s: &Sluice, nm: &std::path::Path, path: &str) -> Vec<serde_json::Value> {
    let out = Command::new("node")
        .arg(nm.parent().unwrap().join("abr.mjs"))
        .arg(s.http(path))
        .arg(ABR_PHASE_DEADLINE_S.to_string())
        .output()
        .expect("run node abr.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "abr.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("bad abr.mjs report ({e}): {stdout}"));
    let log = || s.log_text();
    let r = &v["report"];
    let levels = r["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 3, "{v}");
    assert!(
        r["fatal"].as_array().unwrap().is_empty(),
        "fatal hls.js error: {v}"
    );
    let reached: Vec<&str> = v["reached"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        reached.len() == 3 && reached[..2] == ["top", "down"],
        "phases reached {reached:?} (want top, down, up): {v}\nlog:\n{}",
        log()
    );
    // The throttle was below what the top rendition needs.
    let top_bps = levels[2]["bitrate"].as_f64().unwrap();
    assert!(v["throttleBps"].as_f64().unwrap() < top_bps, "{v}");
    // Switched down while throttled, then up once lifted.
    let switches = r["switches"].as_array().unwrap();
    let in_phase = |p: &'static str| switches.iter().filter(move |w| w["phase"] == p);
    assert!(
        in_phase("throttled").any(|w| w["level"].as_u64().unwrap() < 2),
        "no switch down: {v}"
    );
    assert!(in_phase("lifted").next().is_some(), "no switch up: {v}");
    // No stall from the moment the top rendition played: not while throttled, switching down,
    // or switching back up.
    r["stalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["phase"] != "start")
        .cloned()
        .collect()
}

/// A publish name of the reserved multitrack-rendition form is refused.
#[test]
fn reserved_rendition_names_cannot_be_published() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[]);
    let mut p = ffmpeg_publish(&s.rtmp("live/cam~v1"), 3, &[]);
    assert!(!p.0.wait().unwrap().success());
    assert_eq!(s.get("/live/cam~v1/index.m3u8").status, 404);
}
