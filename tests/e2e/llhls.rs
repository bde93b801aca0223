//! Low-Latency HLS end to end (RFC 8216bis §4.4.3.7–§4.4.5.3 tags, §6.2.5 delivery directives,
//! Appendix B.1 CDN rules) with real peers: FFmpeg publishes at real time; hls.js 1.x with
//! `lowLatencyMode: true` in headless Chromium plays `cmaf.m3u8` directly and through Varnish with
//! the shipped VCL; ffmpeg decodes the same playlist; a thousand viewers blocked on the next part
//! through Varnish cause one origin request.
//!
//! Wall time: the Varnish hls.js run plays 60 s (about 70 s with start-up), the direct run 25 s
//! (about 35 s, ffmpeg decoding at the same time); the two take turns (one Chromium at a time),
//! so together about 110 s; the thousand viewers about 6 s, alongside.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::support_varnish::Varnish;

const STREAM: &str = "live/ll";
const CMAF: &str = "/live/ll/cmaf.m3u8";

/// One media playlist read the way a validator reads it: every part with its media sequence
/// number (its parent's, RFC 8216bis §4.4.4.9) and index within the parent.
#[derive(Debug, Default)]
pub struct LlPlaylist {
    pub part_target_s: Option<f64>,
    pub server_control: Option<String>,
    pub preload_hint: Option<String>,
    /// (msn, index, uri) of every `#EXT-X-PART`, in order.
    pub parts: Vec<(u64, u32, String)>,
    /// Media sequence number of the segment after the last complete one (the open parent).
    pub open_msn: u64,
    pub segments: Vec<String>,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

pub fn parse_ll(text: &str) -> LlPlaylist {
    let mut p = LlPlaylist::default();
    let mut msn = 0u64;
    let mut index = 0u32;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target_s = attr(v, "PART-TARGET").and_then(|t| t.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            p.server_control = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = attr(v, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            msn += attr(v, "SKIPPED-SEGMENTS")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            p.parts
                .push((msn, index, attr(v, "URI").unwrap_or("").to_string()));
            index += 1;
        } else if !line.is_empty() && !line.starts_with('#') {
            p.segments.push(line.to_string());
            msn += 1;
            index = 0;
        }
    }
    p.open_msn = msn;
    p
}

impl LlPlaylist {
    /// The next part to appear (what `#EXT-X-PRELOAD-HINT` names): (open msn, parts it has).
    pub fn next_part(&self) -> (u64, u32) {
        let n = self.parts.iter().filter(|x| x.0 == self.open_msn).count();
        (self.open_msn, n as u32)
    }

    /// True if the playlist lists part `index` of `msn`, or anything after it.
    pub fn has_part(&self, msn: u64, index: u32) -> bool {
        self.parts
            .iter()
            .any(|&(m, i, _)| m > msn || (m == msn && i >= index))
    }
}

/// One hls.js test of this module at a time (taken before its publisher starts): two
/// low-latency players decoding at once on a loaded 2-core machine starve each other's buffers.
static BROWSER: Mutex<()> = Mutex::new(());

fn browser_turn() -> std::sync::MutexGuard<'static, ()> {
    BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs tests/browser/llhls.mjs for `seconds` with the given `(mode, url)` players.
pub fn run_llhls(seconds: u32, players: &[(&str, &str)]) -> serde_json::Value {
    let nm = node_modules().expect("node_modules");
    let script = nm.parent().unwrap().join("llhls.mjs");
    let mut c = Command::new("node");
    c.arg(&script).arg(seconds.to_string());
    for (mode, url) in players {
        c.arg(format!("{mode}:{url}"));
    }
    let out = c.output().expect("run node llhls.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "llhls.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"))
}

/// Waits until `cmaf.m3u8` is an LL-HLS playlist with `segments` complete segments and parts.
fn wait_ll(s: &Sluice, segments: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = http_get(&s.http(""), CMAF) {
            last = r.text();
            let p = parse_ll(&last);
            if r.status == 200 && p.segments.len() >= segments && !p.parts.is_empty() {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{CMAF} has no {segments} segments with parts; last:\n{last}\nlog:\n{}",
        s.log_text()
    );
}

/// Polls the origin's playlist in the background, collecting every part URI it ever lists.
struct PartCollector {
    uris: Arc<Mutex<HashSet<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PartCollector {
    fn start(s: &Sluice) -> PartCollector {
        let base = s.http("");
        let uris = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (u, st) = (uris.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) = http_get(&base, CMAF) {
                    let p = parse_ll(&r.text());
                    let mut set = u.lock().unwrap();
                    for (_, _, uri) in p.parts {
                        set.insert(file_name(&uri).to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(700));
            }
        });
        PartCollector {
            uris,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> HashSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.uris.lock().unwrap().clone()
    }
}

/// The last path component of a URI without its query.
fn file_name(uri: &str) -> &str {
    let path = uri.split('?').next().unwrap_or(uri);
    path.rsplit('/').next().unwrap_or(path)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default()
}

/// The checks every low-latency hls.js run must pass: it played without a stall or fatal error,
/// hls.js saw an LL-HLS playlist, and the page really requested parts and blocking reloads.
fn assert_low_latency_playback(
    report: &serde_json::Value,
    part_uris: &HashSet<String>,
    min_played_s: f64,
    what: &str,
) {
    let r = &report["players"][0];
    assert_eq!(r["fatal"].as_array().unwrap().len(), 0, "{what}: {report}");
    // A low-latency player keeps about PART-HOLD-BACK (1 s) of buffer: on a loaded CI machine
    // the real-time ffmpeg publisher itself can fall that far behind once, which no origin can
    // hide. One recovered stall is tolerated (and printed); more is a failure.
    let (stalls, waiting) = (
        r["stalls"].as_u64().unwrap(),
        r["waiting"].as_u64().unwrap(),
    );
    assert!(stalls <= 1, "{what}: {stalls} bufferStalledError: {report}");
    assert!(
        waiting <= 2,
        "{what}: <video> waited {waiting} times: {report}"
    );
    let ld = &r["levelDetails"];
    assert_eq!(ld["live"], true, "{what}: {ld}");
    assert_eq!(ld["canBlockReload"], true, "{what}: {ld}");
    assert!(
        ld["partTarget"].as_f64().unwrap_or(0.0) > 0.0,
        "{what}: {ld}"
    );
    let samples = r["samples"].as_array().unwrap();
    let played = samples.last().unwrap()["currentTime"].as_f64().unwrap();
    let start = samples
        .iter()
        .position(|x| x["currentTime"].as_f64().unwrap() > 0.0)
        .unwrap_or_else(|| panic!("{what}: playback never started: {report}"));
    // currentTime advanced in every 4 s window after playback began.
    for w in samples[start..].windows(9) {
        let (a, b) = (
            w[0]["currentTime"].as_f64().unwrap(),
            w[8]["currentTime"].as_f64().unwrap(),
        );
        assert!(
            b > a,
            "{what}: playback stalled between {a} and {b}: {report}"
        );
    }
    let first = samples[start]["currentTime"].as_f64().unwrap();
    assert!(
        played - first >= min_played_s,
        "{what}: played only {:.1} s: {report}",
        played - first
    );
    assert!(
        r["partsLoaded"].as_u64().unwrap_or(0) > 0,
        "{what}: hls.js loaded no part: {report}"
    );
    let requests: Vec<&str> = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    let blocking = requests
        .iter()
        .filter(|u| u.contains("cmaf.m3u8?") && u.contains("_HLS_msn="))
        .count();
    let part_requests = requests
        .iter()
        .filter(|u| part_uris.contains(file_name(u)))
        .count();
    assert!(
        blocking > 10,
        "{what}: {blocking} blocking reloads: {requests:?}"
    );
    assert!(
        part_requests > 10,
        "{what}: {part_requests} requests for listed part URIs {part_uris:?}: {requests:?}"
    );
    let latency = f64s(&r["latency"]);
    let pdt = f64s(&r["pdtDelay"]);
    let part_delay = f64s(&r["partDelay"]);
    println!(
        "{what}: hls.js {} played {:.1} s ({stalls} stalls, {waiting} waiting); hls.latency median {:.2} s over {} samples (target {}), \
         now - playingDate median {:.2} s, part available -> buffered median {:.2} s ({} parts), \
         {blocking} blocking reloads, {part_requests} part requests",
        report["hlsjs"],
        played - first,
        median(&latency),
        latency.len(),
        r["targetLatency"],
        median(&pdt),
        median(&part_delay),
        part_delay.len(),
    );
}

/// hls.js with `lowLatencyMode: true` plays `cmaf.m3u8` through Varnish with the shipped VCL for
/// 60 s: no stall, no fatal error; it loaded parts and made blocking reloads; latency printed.
#[test]
fn llhls_hlsjs_plays_through_varnish_for_60_s() {
    if !require("ffmpeg")
        || !require("varnishd")
        || !require("chromium")
        || node_modules().is_none()
    {
        return;
    }
    let _turn = browser_turn();
    let s = Sluice::start(&[]);
    let varnish = Varnish::start(s.http_port);
    let _pub = ffmpeg_publish(&s.rtmp(STREAM), 110, &[]);
    wait_ll(&s, 2);
    let parts = PartCollector::start(&s);
    let url = format!("http://127.0.0.1:{}{CMAF}", varnish.port);
    let report = run_llhls(60, &[("ll", &url)]);
    let part_uris = parts.finish();
    assert_low_latency_playback(&report, &part_uris, 45.0, "through Varnish");

    // Varnish answered the player's blocking reloads from the origin's cacheable answers: a
    // repeat of one is a hit with the same body.
    let p = parse_ll(&s.get(CMAF).text());
    let (msn, part) = p.parts.last().map(|x| (x.0, x.1)).unwrap();
    let path = format!("{CMAF}?_HLS_msn={msn}&_HLS_part={part}");
    let base = format!("http://127.0.0.1:{}", varnish.port);
    let a = http_get(&base, &path).unwrap();
    let b = http_get(&base, &path).unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(b.header("x-cache"), Some("HIT"), "{:?}", b.headers);
    assert_eq!(a.body, b.body);
}

/// hls.js in low-latency mode plays `cmaf.m3u8` straight from Sluice while ffmpeg (a player that
/// knows nothing of LL-HLS) decodes the same playlist with no error.
#[test]
fn llhls_hlsjs_direct_and_ffmpeg_decode_the_same_playlist() {
    if !require("ffmpeg") || !require("chromium") || node_modules().is_none() {
        return;
    }
    let _turn = browser_turn();
    let s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp(STREAM), 70, &[]);
    let pl = wait_ll(&s, 2);
    let p = parse_ll(&pl);
    let target = p.part_target_s.expect("PART-INF");
    assert!(
        p.server_control
            .as_deref()
            .is_some_and(|c| c.contains("CAN-BLOCK-RELOAD=YES")),
        "{pl}"
    );
    assert!(p.preload_hint.is_some(), "no preload hint:\n{pl}");
    assert!(target > 0.0 && target <= 1.0, "PART-TARGET {target}:\n{pl}");

    let url = s.http(CMAF);
    let decoder = {
        let url = url.clone();
        std::thread::spawn(move || ffmpeg_decode_errors(&url, &["-t", "12"]))
    };
    let parts = PartCollector::start(&s);
    let report = run_llhls(25, &[("ll", &url)]);
    let part_uris = parts.finish();
    assert_low_latency_playback(&report, &part_uris, 15.0, "direct");
    let errors = decoder.join().unwrap();
    assert!(
        errors.is_empty(),
        "ffmpeg decode errors on {CMAF}:\n{errors}"
    );
}

/// A thousand viewers blocked on the next part through Varnish cause one origin request: they
/// all get the same 200 body, which lists that part.
#[test]
fn llhls_thousand_viewers_waiting_on_the_next_part_cause_one_origin_request() {
    if !require("ffmpeg") || !require("varnishd") {
        return;
    }
    const VIEWERS: usize = 1000;
    let s = Sluice::start(&[]);
    let varnish = Varnish::start(s.http_port);
    let _pub = ffmpeg_publish(&s.rtmp(STREAM), 60, &[]);
    wait_ll(&s, 1);
    let playlist_requests = |s: &Sluice| {
        metric(
            &s.get("/metrics").text(),
            "sluice_http_requests_total",
            &["route=\"playlist"],
        )
    };
    // The next part from the origin itself, then nothing but the viewers asks for playlists.
    let p = parse_ll(&s.get(CMAF).text());
    let (msn, part) = p.next_part();
    let before = playlist_requests(&s);
    let path = format!("{CMAF}?_HLS_msn={msn}&_HLS_part={part}");
    let base = format!("http://127.0.0.1:{}", varnish.port);
    let go = Arc::new(Barrier::new(VIEWERS));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            let (base, path, go) = (base.clone(), path.clone(), go.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    go.wait();
                    http_get(&base, &path).map(|r| (r.status, r.body))
                })
                .unwrap()
        })
        .collect();
    let answers: Vec<(u16, Vec<u8>)> = viewers
        .into_iter()
        .map(|h| h.join().unwrap().expect("viewer request"))
        .collect();
    let after = playlist_requests(&s);
    let statuses: HashSet<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, HashSet::from([200]), "statuses {statuses:?}");
    let body = &answers[0].1;
    assert!(
        answers.iter().all(|a| &a.1 == body),
        "viewers got different playlists"
    );
    let text = String::from_utf8_lossy(body);
    assert!(
        parse_ll(&text).has_part(msn, part),
        "answer lacks part {part} of {msn}:\n{text}"
    );
    assert_eq!(
        after - before,
        1.0,
        "{VIEWERS} viewers waiting on {path} through Varnish must cause one origin request"
    );
    // The hinted part through Varnish (streamed as it grows, do_stream): the same bytes as the
    // origin's complete part, and cached once complete.
    let hinted = parse_ll(&s.get(CMAF).text())
        .preload_hint
        .expect("preload hint");
    let part_path = format!("/live/ll/{}", file_name(&hinted));
    let via = http_get(&base, &part_path).expect("hinted part via Varnish");
    assert_eq!(via.status, 200, "{part_path}");
    let direct = s.get(&part_path);
    assert_eq!(direct.status, 200);
    assert!(!via.body.is_empty());
    assert_eq!(via.body, direct.body, "{part_path} through Varnish");
    let again = http_get(&base, &part_path).expect("cached part");
    assert_eq!(again.body, direct.body);
}

#[test]
fn parse_ll_numbers_parts_by_parent() {
    let pl = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PART-INF:PART-TARGET=0.33334\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n\
#EXTINF:2.0,\nseg-7.m4s\n\
#EXT-X-PART:DURATION=0.33,URI=\"p-8-0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.33,URI=\"p-8-1.m4s\"\n#EXTINF:2.0,\nseg-8.m4s\n\
#EXT-X-PART:DURATION=0.33,URI=\"p-9-0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p-9-1.m4s\"\n";
    let p = parse_ll(pl);
    assert_eq!(p.part_target_s, Some(0.33334));
    assert_eq!(p.parts[0], (8, 0, "p-8-0.m4s".into()));
    assert_eq!(p.parts[2], (9, 0, "p-9-0.m4s".into()));
    assert_eq!(p.next_part(), (9, 1));
    assert_eq!(p.preload_hint.as_deref(), Some("p-9-1.m4s"));
    assert!(p.has_part(8, 1) && p.has_part(9, 0) && !p.has_part(9, 1));
}
