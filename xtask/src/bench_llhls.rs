//! `cargo xtask bench`, LL-HLS phase (RFC 8216bis §6.2.5.2 blocking playlist reload, §4.4.5.3
//! preload hints, Appendix C player behaviour), two parts:
//! 1. Live latency in hls.js: one paced publisher per server of a 360p source encoded with
//!    `-tune zerolatency` (no B-frames, 2 s GOP), so decoding is not what the machine waits on;
//!    `tests/browser/llhls.mjs` plays, side by side in one headless Chromium page, Sluice's
//!    LL-HLS `cmaf.m3u8`
//!    (`lowLatencyMode: true`, once with hls.js's other defaults and once allowed to catch up at
//!    1.5x), Sluice's standard `index.m3u8` and nginx-rtmp's `index.m3u8`, and
//!    samples `hls.latency` every 500 ms, plus (Sluice only: nginx-rtmp writes no
//!    `EXT-X-PROGRAM-DATE-TIME`) the delay from a part's last frame reaching the origin to the part
//!    being in hls.js's buffer.
//! 2. Blocking reloads at N viewers (1000 by default): each viewer is a thread with a keep-alive
//!    connection asking for the next part (`_HLS_msn`/`_HLS_part` from its last answer). Answer
//!    spread: for each part, the time from the first viewer's answer to each other viewer's
//!    answer (measured in the client, so it includes waking 1000 client threads on the same
//!    cores: an upper bound of the server's own fan-out). Cost: playlist answers per CPU-second of
//!    Sluice (procfs), with the publisher's own ingest CPU, measured alone first, subtracted.
//!
//! Alone: `XTASK_BENCH_ONLY=llhls cargo xtask bench` (splices its section into docs/BENCHMARKS.md).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{percentile, row, start_servers, Collected, SLUICE_BENCH_SETS};
use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::load::{PubConfig, Publisher};
use crate::servers::{Kind, Server};

pub(crate) struct LlOpts {
    pub play_secs: u64,
    pub viewers: usize,
    pub blocking_secs: u64,
}

impl LlOpts {
    pub fn new(full: bool) -> Self {
        LlOpts {
            play_secs: if full { 60 } else { 30 },
            viewers: 1000,
            blocking_secs: if full { 40 } else { 20 },
        }
    }
}

const CMAF: &str = "/live/ll/cmaf.m3u8";

/// Both parts, appended to `out`.
pub(crate) fn llhls(
    root: &Path,
    media: &Arc<Media>,
    o: &LlOpts,
    with_sluice: bool,
    out: &mut Collected,
) -> Result<()> {
    if let Err(e) = latency(root, o, with_sluice, out) {
        out.notes
            .push(format!("LL-HLS player latency: not measured: {e:#}"));
    }
    if with_sluice {
        if let Err(e) = blocking(root, media, o, out) {
            out.notes
                .push(format!("LL-HLS blocking reloads: not measured: {e:#}"));
        }
    }
    Ok(())
}

/// The next part a player asks for, from a playlist: (msn of the open parent, parts it has).
/// Parts count per parent from `#EXT-X-MEDIA-SEQUENCE` (RFC 8216bis §4.4.4.9); `None` without
/// parts.
pub(crate) fn next_part(playlist: &str) -> Option<(u64, u32)> {
    let (mut msn, mut index, mut any) = (0u64, 0u32, false);
    for l in playlist.lines() {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().ok()?;
        } else if let Some(v) = l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            msn += v.split(',').next()?.trim().parse::<u64>().ok()?;
        } else if l.starts_with("#EXT-X-PART:") {
            index += 1;
            any = true;
        } else if !l.is_empty() && !l.starts_with('#') {
            msn += 1;
            index = 0;
        }
    }
    any.then_some((msn, index))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what} not ready within {timeout:?}")
}

fn playlist_text(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let r = HttpConn::new(addr).get(path).ok()?;
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// tests/browser/node_modules, installed with `npm ci` if missing.
fn browser_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join("tests/browser");
    let ready = |d: &Path| {
        d.join("node_modules/hls.js").is_dir() && d.join("node_modules/playwright-core").is_dir()
    };
    if !ready(&dir) {
        crate::run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )?;
    }
    if !ready(&dir) {
        bail!("tests/browser/node_modules lacks hls.js or playwright-core");
    }
    Ok(dir)
}

/// The latency source, generated once: 640x360 at 30 fps, H.264 `-tune zerolatency` (no
/// B-frames, no lookahead), fixed 2 s GOP, 800 kbit/s, AAC 128 kbit/s, 30 s (looped).
fn ensure_ll_source(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("ll-source-360p.flv");
    if out.exists() {
        return Ok(out);
    }
    let tmp = dir.join("ll-source-360p.flv.tmp");
    crate::run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", "30", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-tune", "zerolatency", "-b:v", "800k", "-maxrate", "800k"])
            .args(["-bufsize", "1600k", "-g", "60", "-keyint_min", "60"])
            .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv"])
            .arg(&tmp),
    )?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    let mut x: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    x.sort_by(f64::total_cmp);
    x
}

/// Part 1: hls.js latency, three players side by side in one page.
fn latency(root: &Path, o: &LlOpts, with_sluice: bool, out: &mut Collected) -> Result<()> {
    let dir = browser_dir(root)?;
    eprintln!("bench: LL-HLS latency in hls.js, {} s", o.play_secs);
    // The latency source: 360p, zerolatency (the shared 720p source keeps B-frames).
    let media = &Arc::new(crate::flv::load(&ensure_ll_source(root)?)?);
    let servers = start_servers(root, "llhls", with_sluice)?;
    let pubs: Vec<Publisher> = servers
        .iter()
        .map(|s| {
            Publisher::spawn(
                media.clone(),
                PubConfig {
                    addr: s.rtmp,
                    app: "live".into(),
                    stream: "ll".into(),
                    paced: true,
                    record_keyframes: false,
                    max_duration: None,
                },
            )
        })
        .collect();
    let mut players: Vec<(Kind, &str, String)> = Vec::new();
    for s in &servers {
        let index = Server::playlist_path("ll");
        wait_for(
            &format!("{} playlist", s.kind.name()),
            Duration::from_secs(40),
            || {
                playlist_text(s.http, &index)
                    .is_some_and(|t| crate::load::parse_playlist(&t).segments.len() >= 3)
            },
        )?;
        if s.kind == Kind::Sluice {
            match wait_for("Sluice LL-HLS parts", Duration::from_secs(20), || {
                playlist_text(s.http, CMAF).is_some_and(|t| next_part(&t).is_some())
            }) {
                Ok(()) => {
                    players.push((s.kind, "ll", format!("http://{}{CMAF}", s.http)));
                    players.push((s.kind, "llsync", format!("http://{}{CMAF}", s.http)));
                }
                Err(e) => out
                    .notes
                    .push(format!("Sluice LL-HLS latency not measured: {e:#}")),
            }
        }
        players.push((s.kind, "std", format!("http://{}{index}", s.http)));
    }
    // All players in one page, so they see the same moment of the same run: at 360p without
    // B-frames four software decoders keep up on a loaded 2-core machine.
    eprintln!(
        "bench: hls.js {} players side by side, {} s",
        players.len(),
        o.play_secs
    );
    let res = Command::new("node")
        .arg(dir.join("llhls.mjs"))
        .arg(o.play_secs.to_string())
        .args(players.iter().map(|(_, mode, url)| format!("{mode}:{url}")))
        .output()
        .context("node llhls.mjs")?;
    let stdout = String::from_utf8_lossy(&res.stdout);
    if !res.status.success() {
        bail!(
            "llhls.mjs: {}{}",
            String::from_utf8_lossy(&res.stderr),
            stdout
        );
    }
    let page: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).context("llhls.mjs report")?;
    let reports: Vec<serde_json::Value> = (0..players.len())
        .map(|i| {
            serde_json::json!({ "hlsjs": page["hlsjs"].clone(), "players": [page["players"][i].clone()] })
        })
        .collect();
    drop(pubs);
    drop(servers);
    let mut medians = Vec::new();
    for ((kind, mode, url), report) in players.iter().zip(&reports) {
        let r = &report["players"][0];
        let lat = f64s(&r["latency"]);
        let pdt = f64s(&r["pdtDelay"]);
        let part = f64s(&r["partDelay"]);
        let name = match (kind, *mode) {
            (Kind::Sluice, "ll") => "Sluice LL-HLS (cmaf.m3u8, hls.js defaults + lowLatencyMode)",
            (Kind::Sluice, "llsync") => {
                "Sluice LL-HLS (cmaf.m3u8, lowLatencyMode + maxLiveSyncPlaybackRate 1.5)"
            }
            (Kind::Sluice, _) => "Sluice standard HLS (index.m3u8, TS)",
            _ => "nginx-rtmp HLS (index.m3u8)",
        };
        out.notes.push(format!(
            "{name}: hls.latency p10/p50/p90 {:.2}/{:.2}/{:.2} s over {} samples (hls.js {} target latency {}); \
             now - playingDate p50 {}; part available -> in hls.js buffer p50/p90/p99 {} over {} parts; \
             first frame played {} ms after page load; bufferStalledError {}, <video> waiting {}, fatal errors {} {}; {url}",
            percentile(&lat, 0.1),
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            lat.len(),
            report["hlsjs"].as_str().unwrap_or("?"),
            r["targetLatency"],
            if pdt.is_empty() { "— (no PROGRAM-DATE-TIME)".to_string() } else { format!("{:.2} s", percentile(&pdt, 0.5)) },
            if part.is_empty() {
                "—".to_string()
            } else {
                format!(
                    "{:.2}/{:.2}/{:.2} s",
                    percentile(&part, 0.5),
                    percentile(&part, 0.9),
                    percentile(&part, 0.99)
                )
            },
            part.len(),
            r["firstPlayingMs"],
            r["stalls"],
            r["waiting"],
            r["fatal"].as_array().map_or(0, |a| a.len()),
            r["fatal"].get(0).map(|f| f.to_string()).unwrap_or_default(),
        ));
        medians.push((*kind, *mode, percentile(&lat, 0.5), part));
    }
    let get = |k: Kind, m: &str| {
        medians
            .iter()
            .find(|x| x.0 == k && x.1 == m)
            .map(|x| x.2)
            .filter(|v| v.is_finite())
    };
    let nginx = get(Kind::Nginx, "std");
    let ll = get(Kind::Sluice, "ll");
    let mut r = row(
        "hls.js live latency (`hls.latency` median): Sluice LL-HLS vs nginx-rtmp HLS",
        "s",
        &[],
        Some(("<=", 0.5)),
        format!(
            "same page, same run; target <= 1.5 s, aim <= 1.0 s: {}",
            ll.map_or("not measured", |v| crate::bench::met_abs(v, "<=", 1.5))
        ),
    );
    (r.sluice, r.nginx) = (ll, nginx);
    out.rows.push(r);
    let mut r = row(
        "hls.js live latency (`hls.latency` median): Sluice LL-HLS with catch-up (`maxLiveSyncPlaybackRate: 1.5`) vs nginx-rtmp HLS",
        "s",
        &[],
        Some(("<=", 0.5)),
        "hls.js may play up to 1.5x to reach PART-HOLD-BACK (its default is 1x: never catch up after start)",
    );
    (r.sluice, r.nginx) = (get(Kind::Sluice, "llsync"), nginx);
    out.rows.push(r);
    let mut r = row(
        "hls.js live latency (`hls.latency` median): Sluice standard HLS vs nginx-rtmp HLS",
        "s",
        &[],
        None,
        "Sluice's TS `index.m3u8`, hls.js default settings for both",
    );
    (r.sluice, r.nginx) = (get(Kind::Sluice, "std"), nginx);
    out.rows.push(r);
    if let Some((_, _, _, part)) = medians.iter().find(|x| x.0 == Kind::Sluice && x.1 == "ll") {
        let mut r = row(
            "Part available at the origin -> in hls.js's buffer (p50)",
            "s",
            &[],
            None,
            format!(
                "p90 {:.2} s, p99 {:.2} s over {} parts (EXT-X-PROGRAM-DATE-TIME is the arrival time of a segment's first frame)",
                percentile(part, 0.9),
                percentile(part, 0.99),
                part.len()
            ),
        );
        r.sluice = Some(percentile(part, 0.5)).filter(|v| v.is_finite());
        out.rows.push(r);
    }
    Ok(())
}

/// One blocking viewer: keep-alive connection, always asking for the next part.
fn viewer(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> Vec<((u64, u32), Instant)> {
    let mut conn = HttpConn::new(addr);
    let mut seen = Vec::new();
    let mut next = None;
    while !stop.load(Relaxed) {
        let path = match next {
            Some((m, p)) => format!("{CMAF}?_HLS_msn={m}&_HLS_part={p}"),
            None => CMAF.to_string(),
        };
        match conn.get(&path) {
            Ok(r) if r.status == 200 => {
                let at = Instant::now();
                answered.fetch_add(1, Relaxed);
                if let Some(k) = next {
                    seen.push((k, at));
                }
                next = next_part(&String::from_utf8_lossy(&r.body));
            }
            _ => {
                failed.fetch_add(1, Relaxed);
                next = None;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    seen
}

/// Part 2: N viewers on blocking reloads against Sluice alone.
fn blocking(root: &Path, media: &Arc<Media>, o: &LlOpts, out: &mut Collected) -> Result<()> {
    let n = o.viewers;
    eprintln!(
        "bench: LL-HLS blocking reloads, {n} viewers, {} s",
        o.blocking_secs
    );
    let s = Server::start_sluice(root, SLUICE_BENCH_SETS)?;
    let _pub = Publisher::spawn(
        media.clone(),
        PubConfig {
            addr: s.rtmp,
            app: "live".into(),
            stream: "ll".into(),
            paced: true,
            record_keyframes: false,
            max_duration: None,
        },
    );
    wait_for("Sluice LL-HLS parts", Duration::from_secs(40), || {
        playlist_text(s.http, CMAF).is_some_and(|t| next_part(&t).is_some())
    })?;
    // The publisher alone, to subtract its ingest and remux CPU.
    let (c0, t0) = (s.cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let ingest_cpu_per_s = (s.cpu_seconds() - c0) / t0.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (st, a, f, addr) = (stop.clone(), answered.clone(), failed.clone(), s.http);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || viewer(addr, st, a, f))
        })
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_secs(3));
    let (c1, a1, t1) = (s.cpu_seconds(), answered.load(Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(o.blocking_secs));
    let (c2, a2, secs) = (
        s.cpu_seconds(),
        answered.load(Relaxed),
        t1.elapsed().as_secs_f64(),
    );
    let window = (t1, Instant::now());
    stop.store(true, Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap_or_default());
    }
    let failures = failed.load(Relaxed);
    // Group answers by the part asked for; spread inside each group from its first answer.
    all.retain(|(_, at)| *at >= window.0 && *at <= window.1);
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut spread_ms = Vec::new();
    let mut parts = 0;
    for g in all.chunk_by(|a, b| a.0 == b.0) {
        if g.len() < n / 2 {
            continue;
        }
        parts += 1;
        spread_ms.extend(g.iter().map(|x| (x.1 - g[0].1).as_secs_f64() * 1000.0));
    }
    spread_ms.sort_by(f64::total_cmp);
    let requests = (a2 - a1) as f64;
    let cpu = (c2 - c1) - ingest_cpu_per_s * secs;
    let mut r = row(
        format!("Part available -> blocked request answered, {n} waiting viewers (p50)"),
        "ms",
        &[],
        None,
        format!(
            "p99 {:.1} ms, max {:.1} ms over {parts} parts ({} answers), aim p99 <= 5 ms; measured in the client as each viewer's answer time after the first viewer's answer for the same part (includes waking {n} client threads on the same cores); {failures} failed requests",
            percentile(&spread_ms, 0.99),
            spread_ms.last().copied().unwrap_or(f64::NAN),
            spread_ms.len()
        ),
    );
    r.sluice = Some(percentile(&spread_ms, 0.5)).filter(|v| v.is_finite());
    out.rows.push(r);
    let mut r = row(
        format!("Playlist requests per CPU-second, blocking reloads, {n} viewers on one stream"),
        "req/CPU-s",
        &[],
        None,
        format!(
            "{requests:.0} answers in {secs:.0} s ({:.0}/s); Sluice CPU {:.2} s minus {:.2} s of ingest measured alone",
            requests / secs,
            c2 - c1,
            ingest_cpu_per_s * secs
        ),
    );
    r.sluice = (cpu > 0.0).then(|| requests / cpu);
    out.rows.push(r);
    Ok(())
}

const LL_HOW_TO_READ: &str = "
How to read it: `hls.latency` is hls.js's own distance from the live edge it computes from the
playlist. hls.js's defaults never speed up (`maxLiveSyncPlaybackRate` 1) nor seek forward
(`liveMaxLatencyDurationCount` Infinity) once playing, so a player whose start was slow (a busy
machine, a part it had to wait for) stays that much further behind for the whole run: compare
the \"first frame played\" times above before reading a difference between players, and rerun.
\"Part available -> in the buffer\" uses the origin's `EXT-X-PROGRAM-DATE-TIME` (arrival time of
a segment's first frame) plus the part's offset and duration, so it is what the origin, the HTTP
hop and hls.js's loader add after the part's last frame arrived, on one machine's clock. The
blocked-request spread is measured by 1000 client threads on the same 2 cores as the server: it
bounds the server's fan-out from above.
";

/// `XTASK_BENCH_ONLY=llhls`: this phase alone; its table and notes replace the LL-HLS section of
/// docs/BENCHMARKS.md, the rest of the file is kept.
pub(crate) fn run_alone(root: &Path, full: bool) -> Result<()> {
    let started = Instant::now();
    let (media, with_sluice) = crate::bench_report::prepare_alone(root)?;
    let mut out = Collected::default();
    llhls(root, &media, &LlOpts::new(full), with_sluice, &mut out)?;
    let mut sec = crate::bench_report::PhaseSection::new(
        "llhls",
        "LL-HLS: player latency and blocking reloads",
        full,
        started,
        &format!(
            "Sluice with its defaults (LL-HLS on, 2 s target duration); Chromium, the viewers, the publishers and both servers share these cores. Players: hls.js in headless Chromium, side by side in one page for {} s while both servers receive a real-time publisher of a 360p source (x264 `-tune zerolatency`, 800 kbit/s, 2 s GOP); latency figures are medians of 500 ms samples taken once playback started. Blocking reloads: the 720p bench source.",
            LlOpts::new(full).play_secs
        ),
    );
    sec.push_rows(&out.rows, &out.notes);
    sec.push_str(LL_HOW_TO_READ);
    sec.write(root)
}

#[cfg(test)]
mod tests {
    use super::next_part;

    #[test]
    fn next_part_counts_parts_of_the_open_parent() {
        let pl = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-PART:DURATION=0.3,URI=\"a\"\n#EXTINF:2,\nseg-4.m4s\n#EXT-X-PART:DURATION=0.3,URI=\"b\"\n#EXT-X-PART:DURATION=0.3,URI=\"c\"\n";
        assert_eq!(next_part(pl), Some((5, 2)));
        let skip = "#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:2,\ns\n#EXT-X-PART:DURATION=0.3,URI=\"b\"\n";
        assert_eq!(next_part(skip), Some((8, 1)));
        assert_eq!(next_part("#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2,\ns\n"), None);
    }
}
