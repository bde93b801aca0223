//! The preview page as an operator console, in headless Chromium (`tests/browser/console.mjs`):
//! two live ffmpeg publishes, one with a GOP longer than the segment target; the graphs fill
//! from the server's history and event feed (checked in the DOM), the long-GOP stream carries a
//! visible warning, nothing is loaded from outside the server (hls.js is the built-in copy), and
//! a screenshot is kept under `target/artifacts/` for a person to look at.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

const GRAPHS: [&str; 8] = [
    "bitrate_bps",
    "frame_rate",
    "gop_ms",
    "av_skew_ms",
    "segment_duration_ms",
    "playlist_requests_per_s",
    "players_estimate",
    "bytes_held",
];

fn artifacts_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn console_graphs_fill_and_a_long_gop_is_flagged() {
    if !require("ffmpeg") || !require("chromium") {
        return;
    }
    let Some(nm) = node_modules() else {
        return;
    };
    let s = Sluice::start(&["--set", "hls.target_duration_ms=2000"]);
    // 30 fps: -g 60 is a 2 s GOP (on target), -g 150 a 5 s GOP (the last -g wins).
    let _good = ffmpeg_publish(&s.rtmp("live/good"), 90, &[]);
    let _long = ffmpeg_publish(&s.rtmp("live/longgop"), 90, &["-g", "150"]);
    s.wait_for_segments("/live/good/index.m3u8", 1, Duration::from_secs(30));
    s.wait_for_segments("/live/longgop/index.m3u8", 1, Duration::from_secs(30));

    let shot = artifacts_dir().join("console.png");
    let out = Command::new("node")
        .arg(nm.parent().unwrap().join("console.mjs"))
        .arg(s.http("/"))
        .arg("45")
        .arg(&shot)
        .arg("live/longgop=gop_exceeds_target")
        .output()
        .expect("run node console.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "console.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"));
    println!("console screenshot: {}", shot.display());
    assert!(shot.metadata().is_ok_and(|m| m.len() > 10_000), "{v}");

    let r = &v["report"];
    assert_eq!(
        r["hlsLoaded"], true,
        "hls.js did not load from the server: {v}"
    );
    assert_eq!(
        v["foreign"],
        serde_json::json!([]),
        "page loaded from elsewhere: {v}"
    );
    let streams = r["streams"].as_array().unwrap();
    let card = |id: &str| {
        streams
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no card for {id}: {v}"))
    };
    for id in ["live/good", "live/longgop"] {
        let c = card(id);
        for g in GRAPHS {
            let graph = c["graphs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["metric"] == g)
                .unwrap_or_else(|| panic!("{id}: no {g} graph: {v}"));
            assert!(
                graph["points"].as_u64().unwrap() >= 3 && graph["polyline"].as_u64().unwrap() >= 3,
                "{id}: graph {g} has no data: {graph}"
            );
        }
    }
    let long = card("live/longgop");
    assert!(
        long["classes"].as_str().unwrap().contains("warning"),
        "{long}"
    );
    assert_eq!(long["health"], "warning", "{long}");
    let gop_warning = long["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["active"] == true && w["kind"] == "gop_exceeds_target")
        .unwrap_or_else(|| panic!("no active GOP warning: {long}"));
    assert!(
        gop_warning["text"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{gop_warning}"
    );
    let gop_graph = long["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == "gop_ms")
        .unwrap();
    assert_eq!(gop_graph["alert"], true, "{gop_graph}");
    let good = card("live/good");
    assert!(
        !good["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["active"] == true && w["kind"] == "gop_exceeds_target"),
        "{good}"
    );
    assert!(
        r["fleet"].as_str().unwrap().contains("live/longgop"),
        "fleet line does not name the unhealthy stream: {}",
        r["fleet"]
    );
    assert!(
        streams
            .iter()
            .any(|x| x["currentTime"].as_f64().unwrap_or(0.0) > 1.0),
        "no video played: {v}"
    );

    // The API tells the same story: the page's players were counted as viewers.
    let h: serde_json::Value =
        serde_json::from_slice(&s.get("/api/streams/live/good/history").body).unwrap();
    let max_req = h["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["playlist_requests_per_s"].as_f64())
        .fold(0.0, f64::max);
    assert!(max_req > 0.0, "no playlist requests counted: {h}");
    let h: serde_json::Value =
        serde_json::from_slice(&s.get("/api/streams/live/longgop/history").body).unwrap();
    assert_eq!(h["health"], "warning", "{h}");
    assert_eq!(s.get("/api/streams/live/nope/history").status, 404);
}

/// The built-in hls.js: served at its versioned path, gzip when asked, cacheable for a year,
/// revalidated by ETag; the page points at it by default and at `http.hlsjs_url` when set.
#[test]
fn vendored_hlsjs_is_served_and_overridable() {
    let s = Sluice::start(&[]);
    let page = s.get("/").text();
    assert!(page.contains("src=\"/assets/hls-1.7.4.min.js\""), "{page}");
    assert!(!page.contains("cdn.jsdelivr"), "{page}");
    let plain = s.get("/assets/hls-1.7.4.min.js");
    assert_eq!(plain.status, 200);
    assert!(plain.body.len() > 300_000);
    assert!(plain.header("content-type").unwrap().contains("javascript"));
    assert!(plain
        .header("cache-control")
        .unwrap()
        .contains("max-age=31536000"));
    assert!(plain.header("content-encoding").is_none());
    let base = s.http("");
    let gz = http_request(
        &base,
        "GET",
        "/assets/hls-1.7.4.min.js",
        &[("Accept-Encoding", "gzip")],
    )
    .unwrap();
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz.body.len() < plain.body.len() / 2);
    let etag = gz.header("etag").unwrap().to_string();
    let again = http_request(
        &base,
        "GET",
        "/assets/hls-1.7.4.min.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    )
    .unwrap();
    assert_eq!(again.status, 304);
    drop(s);

    let s = Sluice::start(&["--set", "http.hlsjs_url=https://example.test/hls.js"]);
    let page = s.get("/").text();
    assert!(
        page.contains("src=\"https://example.test/hls.js\""),
        "{page}"
    );
}
